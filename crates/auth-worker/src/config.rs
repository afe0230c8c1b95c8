//! The auth worker's configuration, read once at start from the environment
//! (docs/architecture.md §3.5).
//!
//! Parsing goes through a lookup closure so tests build configs without touching the process
//! environment. Every error names the variable at fault and never quotes a secret; secrets are
//! wrapped so that `Debug` cannot print them.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bus::{BrokerUrl, DEFAULT_AMQP_URL, Namespace};
use chrono::TimeDelta;
pub use runtime::config::{ConfigError, LogFormat};
use runtime::config::{invalid, keyring, parse_or, positive};
use secrecy::SecretString;
use store::Keyring;
use url::Url;
use wecom::suite::Suites;

/// Default `HEALTH_ADDR`.
pub const DEFAULT_HEALTH_ADDR: &str = "0.0.0.0:9090";
pub use runtime::config::DEFAULT_DATABASE_URL;
/// Longest `INBOX_RETENTION_HOURS`: ten years (Postgres timestamps end, and nothing needs more).
const MAX_INBOX_RETENTION_HOURS: u64 = 24 * 365 * 10;

/// Everything the auth worker needs to run.
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`.
    pub database_url: SecretString,
    /// `DATABASE_MAX_CONNECTIONS` (default 20): pool size. An in-flight message holds one
    /// connection for its transaction and may need a second one at the same time (the token
    /// service reads or refreshes a token on its own connection), and the sweep and `/readyz`
    /// take one more each, so it must be at least `2 × AUTH_WORKER_PREFETCH + 2`.
    pub database_max_connections: u32,
    /// `AMQP_URL`.
    pub amqp_url: BrokerUrl,
    /// `AMQP_NAMESPACE`: prefix of every exchange and queue name (empty in production).
    pub amqp_namespace: Namespace,
    /// `WECOM_API_BASE` (default the real WeCom).
    pub wecom_api_base: Url,
    /// `DAIKAI_SECRET_KEY` (active key) and `DAIKAI_SECRET_KEYS_PREVIOUS` (keys being retired).
    pub keyring: Keyring,
    /// `DAIKAI_SUITES_FILE`, or the single-suite `WECOM_SUITE_ID`… form.
    pub suites: Suites,
    /// `HEALTH_ADDR`: `/healthz`, `/readyz`, `/metrics` (port 0 picks a free port).
    pub health_addr: SocketAddr,
    /// `AUTH_WORKER_PREFETCH` (default 8): messages handled at once.
    pub prefetch: u16,
    /// `AUTH_WORKER_MAX_ATTEMPTS` (default 5): deliveries of a message before a transient
    /// failure dead-letters it (retries after 1 s, 10 s, 60 s, 600 s).
    pub max_attempts: u32,
    /// `AUTH_WORKER_PUBLISH_TIMEOUT_MS` (default 5000): confirm deadline of `tenant.*` events.
    pub publish_timeout: Duration,
    /// `AUTH_WORKER_CLAIM_LEASE_SECS` (default 120, at least 15): how long an AuthCode claimed
    /// for exchange holds off every other delivery of it. A replica that dies during the
    /// exchange call leaves its claim to lapse; only then is the code sent again. It must outlast
    /// the longest exchange (four attempts of up to 10 s each): a shorter lease lets a second
    /// replica send a code the first may still be exchanging. Below 60 s is for tests.
    pub claim_lease: TimeDelta,
    /// `AUTH_WORKER_SWEEP_SECS` (default 30): how often expired AuthCodes are reported, the
    /// suite-ticket age and tenants-by-status metrics refreshed and the inbox pruned.
    pub sweep_interval: Duration,
    /// `INBOX_RETENTION_HOURS` (default 168, at most 87600): how long inbox entries (the dedupe
    /// keys of applied messages) are kept. It must outlast every redelivery: the retry queues
    /// (about 11 minutes), WeCom's retries (seconds), and an operator replaying dead letters
    /// (days); a message redelivered after its entry was pruned applies again.
    pub inbox_retention: Duration,
    /// `LOG_FORMAT`: `json` (default) or `pretty`.
    pub log_format: LogFormat,
    /// `RUST_LOG` (default `info`).
    pub log_filter: String,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &"<redacted>")
            .field("database_max_connections", &self.database_max_connections)
            .field("amqp_url", &self.amqp_url)
            .field("amqp_namespace", &self.amqp_namespace)
            .field("wecom_api_base", &self.wecom_api_base.as_str())
            .field("keyring", &self.keyring.key_ids())
            .field("suites", &self.suites.len())
            .field("health_addr", &self.health_addr)
            .field("prefetch", &self.prefetch)
            .field("max_attempts", &self.max_attempts)
            .field("publish_timeout", &self.publish_timeout)
            .field("claim_lease", &self.claim_lease)
            .field("sweep_interval", &self.sweep_interval)
            .field("inbox_retention", &self.inbox_retention)
            .field("log_format", &self.log_format)
            .field("log_filter", &self.log_filter)
            .finish()
    }
}

impl Config {
    /// Reads the process environment (and the suites file it names).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(
            |name| std::env::var(name).ok(),
            |path| std::fs::read_to_string(path),
        )
    }

    /// Reads variables through `lookup` and files through `read_file`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        read_file: impl FnOnce(&Path) -> std::io::Result<String>,
    ) -> Result<Self, ConfigError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let database_url = SecretString::from(
            get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
        );
        let amqp_url = parse_or(&get, "AMQP_URL", DEFAULT_AMQP_URL, |v| {
            BrokerUrl::parse(v).map_err(|e| e.to_string())
        })?;
        let amqp_namespace = parse_or(&get, "AMQP_NAMESPACE", "", |v| {
            Namespace::parse(v).map_err(|e| e.to_string())
        })?;
        let wecom_api_base = runtime::config::wecom_api_base(&get)?;
        let keyring = keyring(&get)?;
        let health_addr = parse_or(&get, "HEALTH_ADDR", DEFAULT_HEALTH_ADDR, |v| {
            v.trim().parse::<SocketAddr>().map_err(|e| e.to_string())
        })?;
        let database_max_connections =
            parse_or(&get, "DATABASE_MAX_CONNECTIONS", "20", positive::<u32>)?;
        let prefetch = parse_or(&get, "AUTH_WORKER_PREFETCH", "8", positive::<u16>)?;
        let max_attempts = parse_or(&get, "AUTH_WORKER_MAX_ATTEMPTS", "5", positive::<u32>)?;
        let publish_timeout = parse_or(&get, "AUTH_WORKER_PUBLISH_TIMEOUT_MS", "5000", |v| {
            positive(v).map(Duration::from_millis)
        })?;
        let claim_lease = parse_or(&get, "AUTH_WORKER_CLAIM_LEASE_SECS", "120", |v| {
            let secs = positive::<i64>(v)?;
            if secs < 15 {
                return Err("must be at least 15 seconds".to_owned());
            }
            Ok(TimeDelta::seconds(secs))
        })?;
        let sweep_interval = parse_or(&get, "AUTH_WORKER_SWEEP_SECS", "30", |v| {
            positive(v).map(Duration::from_secs)
        })?;
        let inbox_retention = parse_or(&get, "INBOX_RETENTION_HOURS", "168", |v| {
            let hours = positive::<u64>(v)?;
            if hours > MAX_INBOX_RETENTION_HOURS {
                return Err(format!(
                    "must be at most {MAX_INBOX_RETENTION_HOURS} hours (10 years)"
                ));
            }
            Ok(Duration::from_secs(hours * 3600))
        })?;
        let needed = 2 * u32::from(prefetch) + 2;
        if database_max_connections < needed {
            return Err(invalid(
                "DATABASE_MAX_CONNECTIONS",
                format!(
                    "must be at least 2 × AUTH_WORKER_PREFETCH + 2 = {needed}: each message in \
                     flight may hold two connections at once"
                ),
            ));
        }
        let log_format = parse_or(&get, "LOG_FORMAT", "json", LogFormat::parse)?;
        let log_filter = get("RUST_LOG").unwrap_or_else(|| "info".to_owned());
        let suites = Suites::load(&lookup, read_file)?;
        Ok(Self {
            database_url,
            database_max_connections,
            amqp_url,
            amqp_namespace,
            wecom_api_base,
            keyring,
            suites,
            health_addr,
            prefetch,
            max_attempts,
            publish_timeout,
            claim_lease,
            sweep_interval,
            inbox_retention,
            log_format,
            log_filter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    // base64 of 32 bytes 0x01..
    const SECRET_KEY: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

    fn config(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut vars: HashMap<String, String> = [
            ("WECOM_SUITE_ID", "dk1"),
            ("WECOM_SUITE_SECRET", "suite-secret-value"),
            ("WECOM_TOKEN", "token"),
            ("WECOM_ENCODING_AES_KEY", AES_KEY),
            ("DAIKAI_SECRET_KEY", SECRET_KEY),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        Config::from_lookup(|name| vars.get(name).cloned(), |_| unreachable!())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.health_addr.to_string(), DEFAULT_HEALTH_ADDR);
        assert_eq!(c.prefetch, 8);
        assert_eq!(c.database_max_connections, 20);
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.inbox_retention, Duration::from_secs(168 * 3600));
        assert_eq!(c.wecom_api_base.as_str(), "https://qyapi.weixin.qq.com/");
        assert_eq!(c.amqp_namespace.as_str(), "");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.keyring.key_ids()[0].as_str(), "k1");
        assert!(c.suites.get(&"dk1".parse().unwrap()).is_some());
    }

    #[test]
    fn the_secret_key_is_required() {
        let err = Config::from_lookup(|_| None, |_| unreachable!()).unwrap_err();
        assert_eq!(err.to_string(), "DAIKAI_SECRET_KEY is not set");
    }

    #[test]
    fn amqp_namespace_is_trimmed() {
        let c = config(&[("AMQP_NAMESPACE", " t1. ")]).unwrap();
        assert_eq!(c.amqp_namespace.as_str(), "t1.");
    }

    #[test]
    fn every_error_names_its_variable() {
        for (var, value) in [
            ("HEALTH_ADDR", "nowhere"),
            ("AMQP_URL", "http://x"),
            ("AMQP_NAMESPACE", "a b"),
            ("WECOM_API_BASE", "ftp://x"),
            ("DAIKAI_SECRET_KEY", "k1:c2hvcnQ="),
            ("DAIKAI_SECRET_KEYS_PREVIOUS", "not base64!"),
            ("DATABASE_MAX_CONNECTIONS", "0"),
            ("DATABASE_MAX_CONNECTIONS", "17"),
            ("AUTH_WORKER_PREFETCH", "70000"),
            ("AUTH_WORKER_MAX_ATTEMPTS", "-1"),
            ("AUTH_WORKER_PUBLISH_TIMEOUT_MS", "soon"),
            ("AUTH_WORKER_SWEEP_SECS", "0"),
            ("INBOX_RETENTION_HOURS", "0"),
            ("INBOX_RETENTION_HOURS", "a week"),
            ("INBOX_RETENTION_HOURS", "100000"),
            ("LOG_FORMAT", "xml"),
            ("WECOM_ENCODING_AES_KEY", "short"),
        ] {
            let err = config(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
        }
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let c = config(&[
            ("DATABASE_URL", "postgres://u:pg-hunter2@h/db"),
            ("AMQP_URL", "amqp://u:mq-hunter2@h:5672/%2f"),
        ])
        .unwrap();
        let debug = format!("{c:?}");
        for secret in [
            "pg-hunter2",
            "mq-hunter2",
            "AQEBAQEB",
            "suite-secret-value",
            AES_KEY,
        ] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }
}
