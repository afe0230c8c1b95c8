//! The suites (代开发 templates) a deployment serves, shared by the ingress and the workers
//! (docs/architecture.md §3.5).
//!
//! Each suite has its id (`dk…`), its secret (for `get_suite_token`), and the Token and
//! EncodingAESKey of its callback URLs; the per-corp app callback URL may use a different
//! token/key pair. Suites come from a TOML file (`DAIKAI_SUITES_FILE`) or, for the common
//! single-suite deployment, from four environment variables. This module never reads the
//! environment or the file system itself: callers pass a lookup closure (and a file reader), so
//! tests need no process-global state.
//!
//! Everything is validated here, once: an EncodingAESKey that cannot build a [`CallbackCrypto`]
//! is a configuration error at start, naming the variable or TOML key, never a 400 at the first
//! callback. Secrets never appear in `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::crypto::{CallbackCrypto, CryptoError};
use crate::ids::SuiteId;

/// Environment variable naming the TOML suites file.
pub const SUITES_FILE_VAR: &str = "DAIKAI_SUITES_FILE";
/// Single-suite form: the template id.
pub const SUITE_ID_VAR: &str = "WECOM_SUITE_ID";
/// Single-suite form: the template secret.
pub const SUITE_SECRET_VAR: &str = "WECOM_SUITE_SECRET";
/// Single-suite form: the callback Token.
pub const TOKEN_VAR: &str = "WECOM_TOKEN";
/// Single-suite form: the callback EncodingAESKey.
pub const ENCODING_AES_KEY_VAR: &str = "WECOM_ENCODING_AES_KEY";
/// Single-suite form, optional: the app (data) callback Token when it differs.
pub const APP_TOKEN_VAR: &str = "WECOM_APP_TOKEN";
/// Single-suite form, optional: the app (data) callback EncodingAESKey when it differs.
pub const APP_ENCODING_AES_KEY_VAR: &str = "WECOM_APP_ENCODING_AES_KEY";

/// Why the suites configuration was refused. Every variant names the variable, file or TOML key.
#[derive(Debug, thiserror::Error)]
pub enum SuiteConfigError {
    /// A required environment variable is unset or empty.
    #[error("{0} is not set")]
    MissingVar(&'static str),
    /// A required key is missing from a suite's TOML table.
    #[error("{key} is missing")]
    MissingKey {
        /// The dotted TOML key, e.g. `suites.dk123.token`.
        key: String,
    },
    /// A value is present but invalid.
    #[error("{key}: {reason}")]
    Invalid {
        /// The variable or dotted TOML key.
        key: String,
        /// What is wrong with it (never the value itself).
        reason: String,
    },
    /// The TOML text does not parse.
    #[error("{source_name}: invalid TOML: {message}")]
    Toml {
        /// Where the text came from (a path or `suites TOML`).
        source_name: String,
        /// The parser's message.
        message: String,
    },
    /// The suites file could not be read.
    #[error("{var}={path}: cannot read the file: {message}")]
    File {
        /// The variable that named the file.
        var: &'static str,
        /// The path it named.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// No suite is configured at all.
    #[error("no suite configured: set {SUITES_FILE_VAR} or {SUITE_ID_VAR} and friends")]
    Empty,
}

/// One suite: its identity, its secret and the keys of its two callback URLs.
#[derive(Clone)]
pub struct SuiteConfig {
    /// The template id (`dk…`).
    pub suite_id: SuiteId,
    /// The template secret, for `get_suite_token`.
    pub suite_secret: SecretString,
    /// Token of the template (instruction) callback URL.
    pub token: String,
    /// EncodingAESKey of the template callback URL (43 characters).
    pub encoding_aes_key: String,
    /// Token of the app (data) callback URL when it differs from `token`.
    pub app_token: Option<String>,
    /// EncodingAESKey of the app callback URL when it differs from `encoding_aes_key`.
    pub app_encoding_aes_key: Option<String>,
}

impl fmt::Debug for SuiteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HIDDEN: &str = "[REDACTED]";
        f.debug_struct("SuiteConfig")
            .field("suite_id", &self.suite_id)
            .field("suite_secret", &HIDDEN)
            .field("token", &HIDDEN)
            .field("encoding_aes_key", &HIDDEN)
            .field("app_token", &self.app_token.as_ref().map(|_| HIDDEN))
            .field(
                "app_encoding_aes_key",
                &self.app_encoding_aes_key.as_ref().map(|_| HIDDEN),
            )
            .finish()
    }
}

impl SuiteConfig {
    /// The crypto of the template (instruction) callback URL.
    pub fn callback_crypto(&self) -> Result<CallbackCrypto, CryptoError> {
        CallbackCrypto::new(&self.token, &self.encoding_aes_key)
    }

    /// The crypto of the app (data) callback URL: the app token/key where configured, else the
    /// template's.
    pub fn app_callback_crypto(&self) -> Result<CallbackCrypto, CryptoError> {
        CallbackCrypto::new(
            self.app_token.as_deref().unwrap_or(&self.token),
            self.app_encoding_aes_key
                .as_deref()
                .unwrap_or(&self.encoding_aes_key),
        )
    }

    /// The template secret, for the one call that needs it.
    pub fn expose_suite_secret(&self) -> &str {
        self.suite_secret.expose_secret()
    }

    /// Checks every field; `key` maps a field name to the variable or TOML key to blame.
    fn validate(&self, key: impl Fn(&str) -> String) -> Result<(), SuiteConfigError> {
        let invalid = |field: &str, reason: &str| SuiteConfigError::Invalid {
            key: key(field),
            reason: reason.to_owned(),
        };
        if self.expose_suite_secret().is_empty() {
            return Err(invalid("suite_secret", "must not be empty"));
        }
        check_token(&self.token).map_err(|r| invalid("token", r))?;
        if let Some(token) = &self.app_token {
            check_token(token).map_err(|r| invalid("app_token", r))?;
        }
        check_key(&self.encoding_aes_key).map_err(|r| invalid("encoding_aes_key", r))?;
        if let Some(aes_key) = &self.app_encoding_aes_key {
            check_key(aes_key).map_err(|r| invalid("app_encoding_aes_key", r))?;
        }
        Ok(())
    }
}

fn check_token(token: &str) -> Result<(), &'static str> {
    if token.is_empty() {
        Err("must not be empty")
    } else {
        Ok(())
    }
}

fn check_key(aes_key: &str) -> Result<(), &'static str> {
    CallbackCrypto::new("t", aes_key)
        .map(drop)
        .map_err(|_| "EncodingAESKey must be 43 base64 characters decoding to 32 bytes")
}

/// Every configured suite, by suite id.
#[derive(Debug, Clone)]
pub struct Suites {
    by_id: BTreeMap<SuiteId, SuiteConfig>,
}

/// The TOML shape: `[suites.<suite_id>]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuitesFile {
    #[serde(default)]
    suites: BTreeMap<String, SuiteEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteEntry {
    suite_secret: Option<SecretString>,
    token: Option<String>,
    encoding_aes_key: Option<String>,
    app_token: Option<String>,
    app_encoding_aes_key: Option<String>,
}

impl Suites {
    /// Builds the registry from already validated suites.
    pub fn new(suites: impl IntoIterator<Item = SuiteConfig>) -> Result<Self, SuiteConfigError> {
        let mut by_id = BTreeMap::new();
        for suite in suites {
            let id = suite.suite_id.clone();
            suite.validate(|field| format!("suite {id}: {field}"))?;
            if by_id.insert(id.clone(), suite).is_some() {
                return Err(SuiteConfigError::Invalid {
                    key: format!("suite {id}"),
                    reason: "configured twice".into(),
                });
            }
        }
        if by_id.is_empty() {
            return Err(SuiteConfigError::Empty);
        }
        Ok(Self { by_id })
    }

    /// Parses the TOML form:
    ///
    /// ```toml
    /// [suites.dk0123456789]
    /// suite_secret = "…"
    /// token = "…"
    /// encoding_aes_key = "…"          # 43 characters
    /// # app_token = "…"               # when the app callback URL uses another token
    /// # app_encoding_aes_key = "…"    # … or another key
    /// ```
    pub fn from_toml(text: &str) -> Result<Self, SuiteConfigError> {
        Self::from_toml_named(text, "suites TOML")
    }

    fn from_toml_named(text: &str, source_name: &str) -> Result<Self, SuiteConfigError> {
        let file: SuitesFile = toml::from_str(text).map_err(|e| SuiteConfigError::Toml {
            source_name: source_name.to_owned(),
            message: e.message().to_owned(),
        })?;
        let mut suites = BTreeMap::new();
        for (suite_id, entry) in file.suites {
            let key = |field: &str| format!("suites.{suite_id}.{field}");
            let suite_id = parse_suite_id(&suite_id, || format!("suites.{suite_id}"))?;
            let required = |value: Option<String>, field: &str| {
                value
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| SuiteConfigError::MissingKey { key: key(field) })
            };
            let suite = SuiteConfig {
                suite_secret: entry
                    .suite_secret
                    .filter(|s| !s.expose_secret().is_empty())
                    .ok_or_else(|| SuiteConfigError::MissingKey {
                        key: key("suite_secret"),
                    })?,
                token: required(entry.token, "token")?,
                encoding_aes_key: required(entry.encoding_aes_key, "encoding_aes_key")?,
                app_token: entry.app_token,
                app_encoding_aes_key: entry.app_encoding_aes_key,
                suite_id: suite_id.clone(),
            };
            suite.validate(key)?;
            suites.insert(suite_id, suite);
        }
        if suites.is_empty() {
            return Err(SuiteConfigError::Empty);
        }
        Ok(Self { by_id: suites })
    }

    /// The single-suite environment form: `WECOM_SUITE_ID`, `WECOM_SUITE_SECRET`, `WECOM_TOKEN`,
    /// `WECOM_ENCODING_AES_KEY`, and optionally `WECOM_APP_TOKEN` / `WECOM_APP_ENCODING_AES_KEY`.
    /// `lookup` is usually `|name| std::env::var(name).ok()`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SuiteConfigError> {
        let get = |var: &str| lookup(var).filter(|v| !v.is_empty());
        let required = |var: &'static str| get(var).ok_or(SuiteConfigError::MissingVar(var));
        let suite = SuiteConfig {
            suite_id: parse_suite_id(&required(SUITE_ID_VAR)?, || SUITE_ID_VAR.to_owned())?,
            suite_secret: SecretString::from(required(SUITE_SECRET_VAR)?),
            token: required(TOKEN_VAR)?,
            encoding_aes_key: required(ENCODING_AES_KEY_VAR)?,
            app_token: get(APP_TOKEN_VAR),
            app_encoding_aes_key: get(APP_ENCODING_AES_KEY_VAR),
        };
        suite.validate(|field| env_var_of(field).to_owned())?;
        Ok(Self {
            by_id: BTreeMap::from([(suite.suite_id.clone(), suite)]),
        })
    }

    /// What every service does at start: the TOML file named by `DAIKAI_SUITES_FILE` if that
    /// variable is set, else the single-suite environment form. Setting both is refused, so a
    /// forgotten variable can never silently win.
    pub fn load(
        lookup: impl Fn(&str) -> Option<String>,
        read_file: impl FnOnce(&Path) -> std::io::Result<String>,
    ) -> Result<Self, SuiteConfigError> {
        let Some(path) = lookup(SUITES_FILE_VAR).filter(|p| !p.is_empty()) else {
            return Self::from_lookup(lookup);
        };
        if lookup(SUITE_ID_VAR).is_some_and(|v| !v.is_empty()) {
            return Err(SuiteConfigError::Invalid {
                key: SUITE_ID_VAR.into(),
                reason: format!("set either {SUITES_FILE_VAR} or {SUITE_ID_VAR}, not both"),
            });
        }
        let text = read_file(Path::new(&path)).map_err(|e| SuiteConfigError::File {
            var: SUITES_FILE_VAR,
            path: path.clone(),
            message: e.to_string(),
        })?;
        Self::from_toml_named(&text, &format!("{SUITES_FILE_VAR}={path}"))
    }

    /// The suite with this id, if configured.
    pub fn get(&self, suite_id: &SuiteId) -> Option<&SuiteConfig> {
        self.by_id.get(suite_id)
    }

    /// Every suite, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &SuiteConfig> {
        self.by_id.values()
    }

    /// How many suites are configured (at least one).
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Always false: a registry holds at least one suite.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// A suite id from the configuration; `key` names where it came from.
fn parse_suite_id(value: &str, key: impl FnOnce() -> String) -> Result<SuiteId, SuiteConfigError> {
    SuiteId::parse(value).map_err(|error| SuiteConfigError::Invalid {
        key: key(),
        reason: format!("the suite id {}", error.reason),
    })
}

fn env_var_of(field: &str) -> &'static str {
    match field {
        "suite_id" => SUITE_ID_VAR,
        "suite_secret" => SUITE_SECRET_VAR,
        "token" => TOKEN_VAR,
        "app_token" => APP_TOKEN_VAR,
        "app_encoding_aes_key" => APP_ENCODING_AES_KEY_VAR,
        _ => ENCODING_AES_KEY_VAR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    const OTHER_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn single_suite_env() -> Vec<(&'static str, &'static str)> {
        vec![
            (SUITE_ID_VAR, "dk1"),
            (SUITE_SECRET_VAR, "s3cr3t"),
            (TOKEN_VAR, "QDG6eK"),
            (ENCODING_AES_KEY_VAR, KEY),
        ]
    }

    #[test]
    fn single_suite_from_env() {
        let suites = Suites::from_lookup(env(&single_suite_env())).unwrap();
        let suite = suites.get(&"dk1".parse().unwrap()).unwrap();
        assert_eq!(suite.expose_suite_secret(), "s3cr3t");
        assert_eq!(suites.len(), 1);
        assert!(suite.app_token.is_none());
        suite.app_callback_crypto().unwrap();
    }

    #[test]
    fn missing_variable_is_named() {
        for missing in [
            SUITE_ID_VAR,
            SUITE_SECRET_VAR,
            TOKEN_VAR,
            ENCODING_AES_KEY_VAR,
        ] {
            let vars: Vec<_> = single_suite_env()
                .into_iter()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = Suites::from_lookup(env(&vars)).unwrap_err();
            assert!(err.to_string().contains(missing), "{err}");
        }
    }

    #[test]
    fn bad_key_names_the_variable_without_quoting_it() {
        let mut vars = single_suite_env();
        vars[3] = (ENCODING_AES_KEY_VAR, "short");
        let err = Suites::from_lookup(env(&vars)).unwrap_err().to_string();
        assert!(err.contains(ENCODING_AES_KEY_VAR), "{err}");
        assert!(!err.contains("short"), "{err}");

        let mut vars = single_suite_env();
        vars.push((APP_ENCODING_AES_KEY_VAR, "bad!"));
        let err = Suites::from_lookup(env(&vars)).unwrap_err().to_string();
        assert!(err.contains(APP_ENCODING_AES_KEY_VAR), "{err}");
    }

    #[test]
    fn toml_with_two_suites_and_an_app_key() {
        let text = format!(
            r#"
            [suites.dk1]
            suite_secret = "a"
            token = "t1"
            encoding_aes_key = "{KEY}"

            [suites.dk2]
            suite_secret = "b"
            token = "t2"
            encoding_aes_key = "{KEY}"
            app_token = "apptoken"
            app_encoding_aes_key = "{OTHER_KEY}"
            "#
        );
        let suites = Suites::from_toml(&text).unwrap();
        assert_eq!(
            suites
                .iter()
                .map(|s| s.suite_id.as_str())
                .collect::<Vec<_>>(),
            ["dk1", "dk2"]
        );
        let dk2 = suites.get(&"dk2".parse().unwrap()).unwrap();
        assert_eq!(dk2.app_token.as_deref(), Some("apptoken"));
        // The app crypto really uses the app token: signatures differ from the template's.
        let template = dk2.callback_crypto().unwrap().signature("1", "2", "x");
        let app = dk2.app_callback_crypto().unwrap().signature("1", "2", "x");
        assert_ne!(template, app);
    }

    #[test]
    fn toml_errors_name_the_key() {
        let missing = "[suites.dk1]\nsuite_secret = \"a\"\ntoken = \"t\"\n";
        let err = Suites::from_toml(missing).unwrap_err().to_string();
        assert!(err.contains("suites.dk1.encoding_aes_key"), "{err}");

        let bad = "[suites.dk1]\nsuite_secret = \"a\"\ntoken = \"t\"\nencoding_aes_key = \"x\"\n";
        let err = Suites::from_toml(bad).unwrap_err().to_string();
        assert!(err.contains("suites.dk1.encoding_aes_key"), "{err}");

        let unknown = format!(
            "[suites.dk1]\nsuite_secret = \"a\"\ntoken = \"t\"\nencoding_aes_key = \"{KEY}\"\ntokn = \"x\"\n"
        );
        let err = Suites::from_toml(&unknown).unwrap_err().to_string();
        assert!(err.contains("tokn"), "{err}");

        assert!(matches!(
            Suites::from_toml("").unwrap_err(),
            SuiteConfigError::Empty
        ));
        assert!(matches!(
            Suites::from_toml("[suites").unwrap_err(),
            SuiteConfigError::Toml { .. }
        ));
    }

    #[test]
    fn load_prefers_the_file_and_refuses_both_forms() {
        let text = format!(
            "[suites.dkf]\nsuite_secret = \"a\"\ntoken = \"t\"\nencoding_aes_key = \"{KEY}\"\n"
        );
        let from_file = Suites::load(env(&[(SUITES_FILE_VAR, "/etc/suites.toml")]), |p| {
            assert_eq!(p, Path::new("/etc/suites.toml"));
            Ok(text.clone())
        })
        .unwrap();
        assert!(from_file.get(&"dkf".parse().unwrap()).is_some());

        let mut both = single_suite_env();
        both.push((SUITES_FILE_VAR, "/etc/suites.toml"));
        let err = Suites::load(env(&both), |_| Ok(text.clone())).unwrap_err();
        assert!(err.to_string().contains(SUITES_FILE_VAR), "{err}");

        let err = Suites::load(env(&[(SUITES_FILE_VAR, "/nope")]), |_| {
            Err(std::io::Error::from(std::io::ErrorKind::NotFound))
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("DAIKAI_SUITES_FILE=/nope"),
            "{err}"
        );

        let from_env = Suites::load(env(&single_suite_env()), |_| unreachable!()).unwrap();
        assert!(from_env.get(&"dk1".parse().unwrap()).is_some());
    }

    #[test]
    fn debug_redacts_every_secret() {
        let mut vars = single_suite_env();
        vars.push((APP_TOKEN_VAR, "apptok"));
        let suites = Suites::from_lookup(env(&vars)).unwrap();
        let shown = format!("{suites:?}");
        for secret in ["s3cr3t", "QDG6eK", KEY, "apptok"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("dk1"));
    }

    #[test]
    fn duplicate_suite_is_refused() {
        let one = Suites::from_lookup(env(&single_suite_env())).unwrap();
        let suite = one.get(&"dk1".parse().unwrap()).unwrap().clone();
        let err = Suites::new([suite.clone(), suite]).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }
}
