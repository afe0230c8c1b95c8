//! What the commands are configured with, captured once into a typed value (secrets wrapped):
//! the URLs and namespace from the command line or environment ([`crate::command::Global`]), the
//! secret keys from the environment. Commands never touch `std::env`.

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use store::Keyring;

use crate::command::Global;
use crate::exit::Fault;

/// `DATABASE_URL`, `AMQP_URL`, `AMQP_NAMESPACE`, `DAIKAI_SECRET_KEY`,
/// `DAIKAI_SECRET_KEYS_PREVIOUS`.
#[derive(Debug, Default)]
pub struct Env {
    database_url: Option<SecretString>,
    amqp_url: Option<SecretString>,
    amqp_namespace: String,
    secret_key: Option<SecretString>,
    previous_keys: Option<SecretString>,
}

impl Env {
    /// The URLs from `global` (flag or environment), the keys through `lookup` (e.g.
    /// `|name| std::env::var(name).ok()`); empty values count as unset.
    pub fn new(global: &Global, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let secret = |value: Option<String>| {
            value
                .filter(|value| !value.trim().is_empty())
                .map(SecretString::from)
        };
        Self {
            database_url: secret(global.database_url.clone()),
            amqp_url: secret(global.amqp_url.clone()),
            amqp_namespace: global.amqp_namespace.clone(),
            secret_key: secret(lookup("DAIKAI_SECRET_KEY")),
            previous_keys: secret(lookup("DAIKAI_SECRET_KEYS_PREVIOUS")),
        }
    }

    /// The database URL (it may carry a password: print it only through [`mask_url`]).
    pub fn database_url(&self) -> anyhow::Result<&str> {
        self.database_url
            .as_ref()
            .map(ExposeSecret::expose_secret)
            .context(
                "DATABASE_URL is not set: point it (or --database-url) at the daikai Postgres \
                 database",
            )
    }

    /// The broker URL, `bus::DEFAULT_AMQP_URL` when unset.
    pub fn broker_url(&self) -> anyhow::Result<bus::BrokerUrl> {
        let raw = self
            .amqp_url
            .as_ref()
            .map_or(bus::DEFAULT_AMQP_URL, ExposeSecret::expose_secret);
        bus::BrokerUrl::parse(raw).map_err(|_| {
            anyhow::Error::new(Fault::Config(format!(
                "AMQP_URL (or --amqp-url) is not an amqp:// URL: {}",
                mask_url(raw)
            )))
        })
    }

    /// The topology under `AMQP_NAMESPACE`.
    pub fn topology(&self) -> anyhow::Result<bus::Topology> {
        let namespace = bus::Namespace::parse(&self.amqp_namespace)
            .map_err(|err| Fault::Config(format!("AMQP_NAMESPACE (or --amqp-namespace): {err}")))?;
        Ok(bus::Topology::new(namespace))
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

/// `url` with its password replaced by `***`, for messages; a URL that does not parse is not
/// shown at all (it could be a password pasted in the wrong place).
pub fn mask_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() && parsed.set_password(Some("***")).is_err() {
                return "(a URL that cannot be shown)".to_owned();
            }
            parsed.to_string()
        }
        Err(_) => "(a value that is not a URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_url("postgres://app:s3cret@db.internal:5432/daikai"),
            "postgres://app:***@db.internal:5432/daikai"
        );
        assert_eq!(
            mask_url("postgres://postgres@127.0.0.1/daikai"),
            "postgres://postgres@127.0.0.1/daikai"
        );
        assert!(!mask_url("s3cret not a url").contains("s3cret"));
    }
}
