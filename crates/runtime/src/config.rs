//! Helpers for reading a service's configuration through a lookup closure (tests pass a map; the
//! binary passes `std::env::var`). Every error names the variable and never quotes a value, so a
//! secret cannot leak through a start-up error.

use wecom::suite::SuiteConfigError;

/// Why a service refused its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A variable has a value that does not parse or is out of range.
    #[error("{var}: {reason}")]
    Invalid {
        /// The environment variable.
        var: &'static str,
        /// What is wrong (never the value of a secret).
        reason: String,
    },
    /// The suites configuration is missing or invalid.
    #[error(transparent)]
    Suites(#[from] SuiteConfigError),
}

/// Log output format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for containers.
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

impl LogFormat {
    /// Parses `json`, or `pretty`/`text`, in any case.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "pretty" | "text" => Ok(Self::Pretty),
            _ => Err("must be json or pretty".to_owned()),
        }
    }
}

/// A [`ConfigError::Invalid`] for `var`.
pub fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        reason: reason.into(),
    }
}

/// Parses `var` (or `default` when unset) with `parse`, naming `var` in the error.
pub fn parse_or<T>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let value = get(var).unwrap_or_else(|| default.to_owned());
    parse(&value).map_err(|reason| invalid(var, reason))
}

/// A whole number above zero that fits `T`.
pub fn positive<T: TryFrom<u64>>(value: &str) -> Result<T, String> {
    match value.trim().parse::<u64>() {
        Ok(n) if n > 0 => T::try_from(n).map_err(|_| "is too large".to_owned()),
        _ => Err("must be a positive whole number".to_owned()),
    }
}

/// Default `DATABASE_URL`: the local Postgres with trust auth.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// `WECOM_API_BASE` (default the real WeCom): an http(s) URL.
pub fn wecom_api_base(get: &impl Fn(&str) -> Option<String>) -> Result<url::Url, ConfigError> {
    parse_or(get, "WECOM_API_BASE", wecom::api::DEFAULT_BASE_URL, |v| {
        let url = url::Url::parse(v.trim()).map_err(|e| e.to_string())?;
        if matches!(url.scheme(), "http" | "https") {
            Ok(url)
        } else {
            Err("must be an http(s) URL".to_owned())
        }
    })
}

/// `DAIKAI_SECRET_KEY` (required) and `DAIKAI_SECRET_KEYS_PREVIOUS` (optional).
pub fn keyring(get: &impl Fn(&str) -> Option<String>) -> Result<store::Keyring, ConfigError> {
    let active = get("DAIKAI_SECRET_KEY").ok_or(ConfigError::Missing("DAIKAI_SECRET_KEY"))?;
    let previous = get("DAIKAI_SECRET_KEYS_PREVIOUS").unwrap_or_default();
    let refused = |var, error: store::SecretError| invalid(var, error.to_string());
    // Parse the active key alone first, so an error names the variable that holds the bad key.
    store::Keyring::parse(&active, "").map_err(|e| refused("DAIKAI_SECRET_KEY", e))?;
    store::Keyring::parse(&active, &previous).map_err(|e| refused("DAIKAI_SECRET_KEYS_PREVIOUS", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_variable_not_the_value() {
        let get = |_: &str| Some("s3cret".to_owned());
        let err = parse_or(&get, "SOME_LIMIT", "1", positive::<u64>).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("SOME_LIMIT:"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn default_applies_when_unset() {
        let get = |_: &str| None;
        assert_eq!(parse_or(&get, "X", "7", positive::<u64>).unwrap(), 7);
    }

    #[test]
    fn zero_is_not_positive() {
        assert!(positive::<u64>("0").is_err());
        assert!(positive::<u64>(" 3 ").is_ok());
        assert!(positive::<u16>("70000").is_err());
    }

    #[test]
    fn log_format_accepts_both_spellings() {
        assert_eq!(LogFormat::parse("JSON"), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse("text"), Ok(LogFormat::Pretty));
        assert!(LogFormat::parse("xml").is_err());
    }
}
