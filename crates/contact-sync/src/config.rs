//! The contact-sync worker's configuration, read once at start from the environment
//! (docs/architecture.md §3.5). Every error names the variable at fault and never quotes a
//! secret.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bus::{BrokerUrl, DEFAULT_AMQP_URL, Namespace};
pub use runtime::config::{ConfigError, DEFAULT_DATABASE_URL, LogFormat};
use runtime::config::{invalid, keyring, parse_or, positive, wecom_api_base};
use secrecy::SecretString;
use store::Keyring;
use url::Url;

/// Default `HEALTH_ADDR`.
pub const DEFAULT_HEALTH_ADDR: &str = "0.0.0.0:9091";

/// Everything the contact-sync worker needs to run.
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`.
    pub database_url: SecretString,
    /// `DATABASE_MAX_CONNECTIONS` (default 20), at least `2 × CONTACT_SYNC_PREFETCH + 4`: a
    /// message may hold a transaction while the token service takes a second connection, and
    /// the schedule and `/readyz` take one each.
    pub database_max_connections: u32,
    /// `AMQP_URL`.
    pub amqp_url: BrokerUrl,
    /// `AMQP_NAMESPACE`: prefix of every exchange and queue name (empty in production).
    pub amqp_namespace: Namespace,
    /// `WECOM_API_BASE` (default the real WeCom).
    pub wecom_api_base: Url,
    /// `DAIKAI_SECRET_KEY` and `DAIKAI_SECRET_KEYS_PREVIOUS` (to open permanent codes and tokens).
    pub keyring: Keyring,
    /// `HEALTH_ADDR`: `/healthz`, `/readyz`, `/metrics` (port 0 picks a free port).
    pub health_addr: SocketAddr,
    /// `CONTACT_SYNC_PREFETCH` (default 16): messages handled at once.
    pub prefetch: u16,
    /// `CONTACT_SYNC_MAX_ATTEMPTS` (default 8): deliveries before a transient failure
    /// dead-letters a message.
    pub max_attempts: u32,
    /// `SYNC_CONCURRENCY` (default 8): WeCom calls in flight per full sync.
    pub sync_concurrency: usize,
    /// `SYNC_RECONCILE_SECS` (default 86400): how often each active tenant is reconciled (a full
    /// sync that counts drift), spread ±25 % so tenants do not all come due at once.
    pub reconcile_every: Duration,
    /// `SYNC_LEASE_SECS` (default 60): how long a full sync's owner may go without a checkpoint
    /// before another replica takes the run over.
    pub sync_lease: Duration,
    /// `SYNC_API_LIMIT_PER_MINUTE` (default 10000): calls per corp, per WeCom API and minute all
    /// replicas together stay under (WeCom's documented per-corp frequency limit).
    pub api_limit_per_minute: u32,
    /// `SYNC_RATE_LIMIT_HOLD_SECS` (default 60): after a 45009, how long every replica holds
    /// off that API for that corp (WeCom blocks for the rest of its window and does not say
    /// how long that is; its limits are per minute and per hour).
    pub rate_limit_hold: Duration,
    /// `SYNC_TICK_SECS` (default 30): how often a replica looks for due reconciliations and runs
    /// whose owner died.
    pub tick: Duration,
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
            .field("health_addr", &self.health_addr)
            .field("prefetch", &self.prefetch)
            .field("max_attempts", &self.max_attempts)
            .field("sync_concurrency", &self.sync_concurrency)
            .field("reconcile_every", &self.reconcile_every)
            .field("sync_lease", &self.sync_lease)
            .field("api_limit_per_minute", &self.api_limit_per_minute)
            .field("rate_limit_hold", &self.rate_limit_hold)
            .field("tick", &self.tick)
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

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let secs = |v: &str| positive(v).map(Duration::from_secs);
        let prefetch = parse_or(&get, "CONTACT_SYNC_PREFETCH", "16", positive::<u16>)?;
        let database_max_connections =
            parse_or(&get, "DATABASE_MAX_CONNECTIONS", "40", positive::<u32>)?;
        let needed = 2 * u32::from(prefetch) + 4;
        if database_max_connections < needed {
            return Err(invalid(
                "DATABASE_MAX_CONNECTIONS",
                format!("must be at least 2 × CONTACT_SYNC_PREFETCH + 4 = {needed}"),
            ));
        }
        Ok(Self {
            database_url: SecretString::from(
                get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            ),
            database_max_connections,
            amqp_url: parse_or(&get, "AMQP_URL", DEFAULT_AMQP_URL, |v| {
                BrokerUrl::parse(v).map_err(|e| e.to_string())
            })?,
            amqp_namespace: parse_or(&get, "AMQP_NAMESPACE", "", |v| {
                Namespace::parse(v).map_err(|e| e.to_string())
            })?,
            wecom_api_base: wecom_api_base(&get)?,
            keyring: keyring(&get)?,
            health_addr: parse_or(&get, "HEALTH_ADDR", DEFAULT_HEALTH_ADDR, |v| {
                v.trim().parse::<SocketAddr>().map_err(|e| e.to_string())
            })?,
            prefetch,
            max_attempts: parse_or(&get, "CONTACT_SYNC_MAX_ATTEMPTS", "8", positive::<u32>)?,
            sync_concurrency: parse_or(&get, "SYNC_CONCURRENCY", "8", positive::<usize>)?,
            reconcile_every: parse_or(&get, "SYNC_RECONCILE_SECS", "86400", secs)?,
            sync_lease: parse_or(&get, "SYNC_LEASE_SECS", "60", secs)?,
            api_limit_per_minute: parse_or(
                &get,
                "SYNC_API_LIMIT_PER_MINUTE",
                "10000",
                positive::<u32>,
            )?,
            rate_limit_hold: parse_or(&get, "SYNC_RATE_LIMIT_HOLD_SECS", "60", secs)?,
            tick: parse_or(&get, "SYNC_TICK_SECS", "30", secs)?,
            log_format: parse_or(&get, "LOG_FORMAT", "json", LogFormat::parse)?,
            log_filter: get("RUST_LOG").unwrap_or_else(|| "info".to_owned()),
        })
    }
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
        assert_eq!(c.health_addr.to_string(), DEFAULT_HEALTH_ADDR);
        assert_eq!(c.prefetch, 16);
        assert_eq!(c.reconcile_every, Duration::from_secs(86400));
        assert_eq!(c.api_limit_per_minute, 10000);
        assert_eq!(c.sync_concurrency, 8);
    }

    #[test]
    fn every_error_names_its_variable() {
        for (var, value) in [
            ("HEALTH_ADDR", "nowhere"),
            ("AMQP_URL", "http://x"),
            ("WECOM_API_BASE", "ftp://x"),
            ("DAIKAI_SECRET_KEY", "k1:c2hvcnQ="),
            ("DATABASE_MAX_CONNECTIONS", "10"),
            ("CONTACT_SYNC_PREFETCH", "0"),
            ("SYNC_RECONCILE_SECS", "daily"),
            ("SYNC_CONCURRENCY", "0"),
            ("SYNC_API_LIMIT_PER_MINUTE", "-5"),
            ("LOG_FORMAT", "xml"),
        ] {
            let err = config(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
        }
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let c = config(&[("DATABASE_URL", "postgres://u:pg-hunter2@h/db")]).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("pg-hunter2") && !debug.contains("AQEBAQEB"));
    }
}
