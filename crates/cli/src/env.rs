//! The environment the CLI reads, captured once into a typed value (secrets wrapped), so the
//! commands never touch `std::env` and tests pass their own values.

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use store::Keyring;

/// `DATABASE_URL`, `DAIKAI_SECRET_KEY`, `DAIKAI_SECRET_KEYS_PREVIOUS`.
#[derive(Debug, Default)]
pub struct Env {
    database_url: Option<SecretString>,
    secret_key: Option<SecretString>,
    previous_keys: Option<SecretString>,
}

impl Env {
    /// Reads the variables through `lookup` (e.g. `|name| std::env::var(name).ok()`); empty
    /// values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            lookup(name)
                .filter(|value| !value.trim().is_empty())
                .map(SecretString::from)
        };
        Self {
            database_url: get("DATABASE_URL"),
            secret_key: get("DAIKAI_SECRET_KEY"),
            previous_keys: get("DAIKAI_SECRET_KEYS_PREVIOUS"),
        }
    }

    /// The database URL (it may carry a password, so it is never printed).
    pub fn database_url(&self) -> anyhow::Result<&str> {
        self.database_url
            .as_ref()
            .map(ExposeSecret::expose_secret)
            .context("DATABASE_URL is not set: point it at the daikai Postgres database")
    }

    /// True when `DAIKAI_SECRET_KEY` is set.
    pub fn has_secret_key(&self) -> bool {
        self.secret_key.is_some()
    }

    /// The keyring from `DAIKAI_SECRET_KEY` (active) and `DAIKAI_SECRET_KEYS_PREVIOUS`.
    pub fn keyring(&self) -> anyhow::Result<Keyring> {
        let active = self.secret_key.as_ref().context(
            "DAIKAI_SECRET_KEY is not set: the active key, `ID:base64` of 32 bytes \
             (create one with `daikai secret-key generate`)",
        )?;
        let previous = self
            .previous_keys
            .as_ref()
            .map_or("", |keys| keys.expose_secret());
        Keyring::parse(active.expose_secret(), previous)
            .context("DAIKAI_SECRET_KEY or DAIKAI_SECRET_KEYS_PREVIOUS is invalid")
    }
}
