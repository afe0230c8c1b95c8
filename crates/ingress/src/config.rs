//! The ingress configuration, read once at start from the environment (docs/architecture.md §3.5).
//!
//! Parsing goes through a lookup closure so tests build configs without touching the process
//! environment. Every error names the variable at fault and never quotes a secret.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bus::{BrokerUrl, DEFAULT_AMQP_URL, Namespace};
pub use runtime::config::{ConfigError, LogFormat};
use runtime::config::{invalid, parse_or, positive};
use wecom::suite::Suites;

/// Default `INGRESS_ADDR`.
pub const DEFAULT_ADDR: &str = "0.0.0.0:8080";

/// Everything the ingress needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `INGRESS_ADDR`: where to listen (port 0 picks a free port).
    pub addr: SocketAddr,
    /// `AMQP_URL`.
    pub amqp_url: BrokerUrl,
    /// `AMQP_NAMESPACE`: prefix of every exchange and queue name (empty in production).
    pub amqp_namespace: Namespace,
    /// `DAIKAI_SUITES_FILE`, or the single-suite `WECOM_SUITE_ID`… form.
    pub suites: Suites,
    /// `WECOM_PROVIDER_CORP_ID`: the provider's own corp id, accepted as receiveid where WeCom
    /// may use it (see the receiveid rules in the callback module).
    pub provider_corp_id: Option<String>,
    /// `INGRESS_PUBLISH_TIMEOUT_MS` (default 2000): how long to wait for the broker's confirm.
    pub publish_timeout: Duration,
    /// `INGRESS_MAX_CLOCK_SKEW_SECS` (default 600; `0` disables the check).
    pub max_clock_skew: Option<Duration>,
    /// `INGRESS_MAX_BODY_BYTES` (default 65536).
    pub max_body_bytes: usize,
    /// `INGRESS_WORKERS`: HTTP worker threads (default: one per CPU core).
    pub workers: Option<usize>,
    /// `INGRESS_HEADER_TIMEOUT_MS` (default 5000): how long a new connection may take to send its
    /// first request's headers; slower clients get 408 and the connection is closed.
    pub header_timeout: Duration,
    /// `INGRESS_BODY_TIMEOUT_MS` (default 5000): how long a callback's body may take to arrive
    /// once its headers are in; slower clients get 408 and the connection is closed.
    pub body_timeout: Duration,
    /// `INGRESS_KEEP_ALIVE_SECS` (default 0, off: every connection closes after its answer):
    /// how long an idle connection is kept open for a next request. Off by default because actix
    /// bounds the head of a connection's first request only; a client could start a second
    /// request on a kept-alive connection and stall in its head for as long as it likes.
    pub keep_alive: Option<Duration>,
    /// `INGRESS_MAX_CONNECTIONS` (default 10000): open connections over all workers; past it
    /// the listener stops accepting until some close.
    pub max_connections: usize,
    /// `INGRESS_PUBLISH_CHANNELS`: confirm-mode AMQP channels publishes are spread over
    /// (default 1).
    pub publish_channels: usize,
    /// `LOG_FORMAT`: `json` (default) or `pretty`.
    pub log_format: LogFormat,
    /// `RUST_LOG` (default `info`).
    pub log_filter: String,
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
        let addr = parse_or(&get, "INGRESS_ADDR", DEFAULT_ADDR, |v: &str| {
            v.parse::<SocketAddr>().map_err(|e| e.to_string())
        })?;
        let amqp_url = parse_or(&get, "AMQP_URL", DEFAULT_AMQP_URL, |v: &str| {
            BrokerUrl::parse(v).map_err(|e| e.to_string())
        })?;
        let amqp_namespace = parse_or(&get, "AMQP_NAMESPACE", "", |v: &str| {
            Namespace::parse(v).map_err(|e| e.to_string())
        })?;
        let publish_timeout = parse_or(&get, "INGRESS_PUBLISH_TIMEOUT_MS", "2000", |v: &str| {
            positive(v).map(Duration::from_millis)
        })?;
        let max_clock_skew = parse_or(&get, "INGRESS_MAX_CLOCK_SKEW_SECS", "600", |v: &str| {
            v.trim()
                .parse::<u64>()
                .map(|secs| (secs > 0).then(|| Duration::from_secs(secs)))
                .map_err(|_| "must be a whole number of seconds (0 disables)".to_owned())
        })?;
        let max_body_bytes = parse_or(&get, "INGRESS_MAX_BODY_BYTES", "65536", positive::<usize>)?;
        // actix-server panics on more than 512 workers.
        let workers = get("INGRESS_WORKERS")
            .map(|v| match positive::<usize>(&v) {
                Ok(n) if n > 512 => Err(invalid("INGRESS_WORKERS", "must be at most 512")),
                parsed => parsed.map_err(|reason| invalid("INGRESS_WORKERS", reason)),
            })
            .transpose()?;
        let publish_channels = parse_or(&get, "INGRESS_PUBLISH_CHANNELS", "1", positive::<usize>)?;
        let header_timeout = parse_or(&get, "INGRESS_HEADER_TIMEOUT_MS", "5000", |v: &str| {
            positive(v).map(Duration::from_millis)
        })?;
        let body_timeout = parse_or(&get, "INGRESS_BODY_TIMEOUT_MS", "5000", |v: &str| {
            positive(v).map(Duration::from_millis)
        })?;
        let keep_alive = parse_or(&get, "INGRESS_KEEP_ALIVE_SECS", "0", |v: &str| {
            v.trim()
                .parse::<u64>()
                .map(|secs| (secs > 0).then(|| Duration::from_secs(secs)))
                .map_err(|_| "must be a whole number of seconds (0 disables keep-alive)".to_owned())
        })?;
        let max_connections =
            parse_or(&get, "INGRESS_MAX_CONNECTIONS", "10000", positive::<usize>)?;
        let log_format = parse_or(&get, "LOG_FORMAT", "json", LogFormat::parse)?;
        let provider_corp_id = get("WECOM_PROVIDER_CORP_ID").map(|v| v.trim().to_owned());
        let log_filter = get("RUST_LOG").unwrap_or_else(|| "info".to_owned());
        let suites = Suites::load(&lookup, read_file)?;
        Ok(Self {
            addr,
            amqp_url,
            amqp_namespace,
            suites,
            provider_corp_id,
            publish_timeout,
            max_clock_skew,
            max_body_bytes,
            workers,
            header_timeout,
            body_timeout,
            keep_alive,
            max_connections,
            publish_channels,
            log_format,
            log_filter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

    fn config(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut vars: HashMap<String, String> = [
            ("WECOM_SUITE_ID", "dk1"),
            ("WECOM_SUITE_SECRET", "secret"),
            ("WECOM_TOKEN", "token"),
            ("WECOM_ENCODING_AES_KEY", KEY),
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
        assert_eq!(c.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(c.publish_timeout, Duration::from_secs(2));
        assert_eq!(c.max_clock_skew, Some(Duration::from_secs(600)));
        assert_eq!(c.max_body_bytes, 65536);
        assert_eq!(c.header_timeout, Duration::from_secs(5));
        assert_eq!(c.body_timeout, Duration::from_secs(5));
        assert_eq!(c.keep_alive, None);
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.amqp_namespace.as_str(), "");
        assert!(c.provider_corp_id.is_none());
        assert!(c.suites.get(&"dk1".parse().unwrap()).is_some());
    }

    #[test]
    fn zero_skew_disables_the_check() {
        let c = config(&[("INGRESS_MAX_CLOCK_SKEW_SECS", "0")]).unwrap();
        assert_eq!(c.max_clock_skew, None);
    }

    #[test]
    fn keep_alive_is_opt_in() {
        let c = config(&[("INGRESS_KEEP_ALIVE_SECS", "75")]).unwrap();
        assert_eq!(c.keep_alive, Some(Duration::from_secs(75)));
    }

    #[test]
    fn amqp_namespace_is_trimmed() {
        let c = config(&[("AMQP_NAMESPACE", " t1. ")]).unwrap();
        assert_eq!(c.amqp_namespace.as_str(), "t1.");
    }

    #[test]
    fn every_error_names_its_variable() {
        for (var, value) in [
            ("INGRESS_ADDR", "nowhere"),
            ("AMQP_URL", "http://x"),
            ("AMQP_NAMESPACE", "a b"),
            ("INGRESS_PUBLISH_TIMEOUT_MS", "0"),
            ("INGRESS_MAX_CLOCK_SKEW_SECS", "-1"),
            ("INGRESS_MAX_BODY_BYTES", "lots"),
            ("INGRESS_WORKERS", "0"),
            ("INGRESS_WORKERS", "513"),
            ("INGRESS_PUBLISH_CHANNELS", "none"),
            ("INGRESS_HEADER_TIMEOUT_MS", "0"),
            ("INGRESS_BODY_TIMEOUT_MS", "5s"),
            ("INGRESS_KEEP_ALIVE_SECS", "-1"),
            ("INGRESS_MAX_CONNECTIONS", "0"),
            ("LOG_FORMAT", "xml"),
            ("WECOM_ENCODING_AES_KEY", "short"),
        ] {
            let err = config(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
        }
    }

    #[test]
    fn amqp_password_is_not_in_errors_or_debug() {
        let c = config(&[("AMQP_URL", "amqp://u:hunter2@h:5672/%2f")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{c:?}").contains(KEY));
    }
}
