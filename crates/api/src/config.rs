//! The provider API's configuration, read once at start from the environment
//! (docs/architecture.md §3.5, docs/api.md §8).
//!
//! Parsing goes through a lookup closure so tests build configs without touching the process
//! environment. Every error names the variable at fault and never quotes a secret; secrets are
//! wrapped so that `Debug` cannot print them.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

pub use runtime::config::{ConfigError, LogFormat};
use runtime::config::{invalid, parse_or, positive};
use secrecy::SecretString;
use store::{Keyring, SecretError};
use url::Url;

/// Default `API_ADDR`.
pub const DEFAULT_ADDR: &str = "0.0.0.0:8081";
/// Default `DATABASE_URL`: the local Postgres with trust auth.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Everything the provider API needs to run.
#[derive(Clone)]
pub struct Config {
    /// `API_ADDR`: where to listen (port 0 picks a free port).
    pub addr: SocketAddr,
    /// `DATABASE_URL`.
    pub database_url: SecretString,
    /// `DATABASE_MAX_CONNECTIONS` (default 20): pool size. A request holds one connection at a
    /// time (a token or ticket refresh holds its own for its WeCom call).
    pub database_max_connections: u32,
    /// `WECOM_API_BASE` (default the real WeCom).
    pub wecom_api_base: Url,
    /// `DAIKAI_SECRET_KEY` (active key) and `DAIKAI_SECRET_KEYS_PREVIOUS` (keys being retired).
    pub keyring: Keyring,
    /// `API_WORKERS`: HTTP worker threads (default: one per CPU core).
    pub workers: Option<usize>,
    /// `API_RATE_LIMIT` (default 100): requests per second a key may make on one replica when
    /// the key names no limit of its own.
    pub default_rate_limit: u32,
    /// `API_KEY_CACHE_SECS` (default 10; 0 disables the cache): how long a replica trusts what it
    /// read about a key, so how long a revocation may take to reach it.
    pub key_cache: Duration,
    /// `LOG_FORMAT`: `json` (default) or `pretty`.
    pub log_format: LogFormat,
    /// `RUST_LOG` (default `info`).
    pub log_filter: String,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("database_url", &"<redacted>")
            .field("database_max_connections", &self.database_max_connections)
            .field("wecom_api_base", &self.wecom_api_base.as_str())
            .field("keyring", &self.keyring.key_ids())
            .field("workers", &self.workers)
            .field("default_rate_limit", &self.default_rate_limit)
            .field("key_cache", &self.key_cache)
            .field("log_format", &self.log_format)
            .field("log_filter", &self.log_filter)
            .finish()
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let addr = parse_or(&get, "API_ADDR", DEFAULT_ADDR, |v| {
            v.trim().parse::<SocketAddr>().map_err(|e| e.to_string())
        })?;
        let database_url = SecretString::from(
            get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
        );
        let database_max_connections =
            parse_or(&get, "DATABASE_MAX_CONNECTIONS", "20", positive::<u32>)?;
        let wecom_api_base = parse_or(&get, "WECOM_API_BASE", wecom::api::DEFAULT_BASE_URL, |v| {
            let url = Url::parse(v.trim()).map_err(|e| e.to_string())?;
            if matches!(url.scheme(), "http" | "https") {
                Ok(url)
            } else {
                Err("must be an http(s) URL".to_owned())
            }
        })?;
        let keyring = keyring(&get)?;
        // actix-server panics on more than 512 workers.
        let workers = get("API_WORKERS")
            .map(|v| match positive::<usize>(&v) {
                Ok(n) if n > 512 => Err(invalid("API_WORKERS", "must be at most 512")),
                parsed => parsed.map_err(|reason| invalid("API_WORKERS", reason)),
            })
            .transpose()?;
        let default_rate_limit = parse_or(&get, "API_RATE_LIMIT", "100", positive::<u32>)?;
        let key_cache = parse_or(&get, "API_KEY_CACHE_SECS", "10", |v| {
            v.trim()
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| "must be a whole number of seconds (0 disables the cache)".to_owned())
        })?;
        let log_format = parse_or(&get, "LOG_FORMAT", "json", LogFormat::parse)?;
        let log_filter = get("RUST_LOG").unwrap_or_else(|| "info".to_owned());
        Ok(Self {
            addr,
            database_url,
            database_max_connections,
            wecom_api_base,
            keyring,
            workers,
            default_rate_limit,
            key_cache,
            log_format,
            log_filter,
        })
    }
}

/// `DAIKAI_SECRET_KEY` (required) and `DAIKAI_SECRET_KEYS_PREVIOUS` (optional).
fn keyring(get: &impl Fn(&str) -> Option<String>) -> Result<Keyring, ConfigError> {
    let active = get("DAIKAI_SECRET_KEY").ok_or(ConfigError::Missing("DAIKAI_SECRET_KEY"))?;
    let previous = get("DAIKAI_SECRET_KEYS_PREVIOUS").unwrap_or_default();
    let refused = |var, error: SecretError| invalid(var, error.to_string());
    // Parse the active key alone first, so an error names the variable that holds the bad key.
    Keyring::parse(&active, "").map_err(|e| refused("DAIKAI_SECRET_KEY", e))?;
    Keyring::parse(&active, &previous).map_err(|e| refused("DAIKAI_SECRET_KEYS_PREVIOUS", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET_KEY: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

    fn config(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut vars: HashMap<String, String> =
            HashMap::from([("DAIKAI_SECRET_KEY".to_owned(), SECRET_KEY.to_owned())]);
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(c.database_max_connections, 20);
        assert_eq!(c.wecom_api_base.as_str(), "https://qyapi.weixin.qq.com/");
        assert_eq!(c.default_rate_limit, 100);
        assert_eq!(c.key_cache, Duration::from_secs(10));
        assert_eq!(c.workers, None);
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn the_secret_key_is_required() {
        let err = Config::from_lookup(|_| None).unwrap_err();
        assert!(err.to_string().contains("DAIKAI_SECRET_KEY"), "{err}");
    }

    #[test]
    fn every_error_names_its_variable() {
        for (var, value) in [
            ("API_ADDR", "nowhere"),
            ("DATABASE_MAX_CONNECTIONS", "0"),
            ("WECOM_API_BASE", "ftp://x"),
            ("DAIKAI_SECRET_KEY", "short"),
            ("DAIKAI_SECRET_KEYS_PREVIOUS", "bad"),
            ("API_WORKERS", "513"),
            ("API_RATE_LIMIT", "0"),
            ("API_KEY_CACHE_SECS", "-1"),
            ("LOG_FORMAT", "xml"),
        ] {
            let err = config(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
        }
    }

    #[test]
    fn debug_hides_the_database_password_and_keys() {
        let c = config(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("AQEB"), "{debug}");
    }
}
