//! The simulator's configuration: defaults, then a TOML file (`--config` or `SIM_CONFIG`), then
//! environment variables, then command-line flags. Every option is listed in docs/wecom-sim.md.
//!
//! Suites use the same shapes as the daikai services (`wecom::suite`): inline `[suites.<id>]`
//! tables in the sim's TOML, else `DAIKAI_SUITES_FILE` or the single-suite `WECOM_SUITE_ID` …
//! variables, so one `.env` can configure both sides. Like `wecom::suite`, this module reads
//! the environment and files only through the closures it is given.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use url::Url;
use wecom::ids::CorpId;
use wecom::suite::{SuiteConfig, SuiteConfigError, Suites};

use crate::faults::{FaultConfig, RateLimit};
use crate::push::DeliveryConfig;
use crate::state::{CorpSpec, Ttls};

/// Everything the simulator is configured with.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Listen address (`SIM_ADDR`, default `0.0.0.0:8090`; port 0 picks a free port).
    pub addr: SocketAddr,
    /// HTTP worker threads (`SIM_WORKERS`, default 2).
    pub workers: usize,
    /// Suite ticket push interval (`SIM_TICKET_INTERVAL_SECS`, default 600; 0 disables).
    pub ticket_interval: Duration,
    /// Push a ticket for every suite right after start (`SIM_TICKET_ON_START`, default true).
    pub ticket_on_start: bool,
    /// Default directory seed, and the seed of fault and delivery draws (`SIM_SEED`, default 42).
    pub seed: u64,
    /// The provider's corp id (`WECOM_PROVIDER_CORP_ID`).
    pub provider_corp_id: CorpId,
    /// The provider secret for `get_provider_token` (`SIM_PROVIDER_SECRET`; unset refuses it).
    pub provider_secret: Option<String>,
    /// Token, ticket and AuthCode lifetimes.
    pub ttl: Ttls,
    /// Callback delivery (base URL, timeout, retries, duplicate/shuffle modes).
    pub delivery: DeliveryConfig,
    /// Fault injection.
    pub faults: FaultConfig,
    /// The suites (templates).
    pub suites: Vec<SuiteConfig>,
    /// Corps to create at start.
    pub corps: Vec<CorpSpec>,
}

impl Default for SimConfig {
    #[expect(
        clippy::expect_used,
        reason = "the default provider corp id is a valid constant"
    )]
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 8090)),
            workers: 2,
            ticket_interval: Duration::from_secs(600),
            ticket_on_start: true,
            seed: 42,
            provider_corp_id: CorpId::parse("wwprovider0000000").expect("a valid corp id"),
            provider_secret: None,
            ttl: Ttls::default(),
            delivery: DeliveryConfig::default(),
            faults: FaultConfig::default(),
            suites: Vec::new(),
            corps: Vec::new(),
        }
    }
}

/// Why the configuration was refused; always names the variable, key, flag or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is invalid.
    #[error("{key}: {reason}")]
    Invalid {
        /// The variable, TOML key or flag.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The config file could not be read or parsed.
    #[error("config file {path}: {message}")]
    File {
        /// The path.
        path: String,
        /// The problem.
        message: String,
    },
    /// The suites are missing or invalid.
    #[error("suites: {0}")]
    Suites(#[from] SuiteConfigError),
    /// A command-line problem.
    #[error("{0} (see --help)")]
    Usage(String),
}

/// The `--help` text.
pub const USAGE: &str = "\
wecom-sim: a local WeCom (server APIs + the WeCom side of callbacks)

USAGE: wecom-sim [--config FILE.toml] [--addr HOST:PORT] [--seed N] [--callback-base URL]

Precedence: flags, then SIM_* environment variables, then the file, then defaults.
Every option is documented in docs/wecom-sim.md.
  --config FILE        TOML configuration (also SIM_CONFIG)
  --addr HOST:PORT     listen address (SIM_ADDR, default 0.0.0.0:8090)
  --seed N             default directory seed (SIM_SEED, default 42)
  --callback-base URL  where callbacks go, e.g. http://ingress:8080 (SIM_CALLBACK_BASE)
";

/// The TOML file shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    addr: Option<String>,
    workers: Option<usize>,
    callback_base: Option<String>,
    ticket_interval_secs: Option<u64>,
    ticket_on_start: Option<bool>,
    seed: Option<u64>,
    provider_corp_id: Option<CorpId>,
    provider_secret: Option<String>,
    ttl: Option<Ttls>,
    delivery: Option<DeliveryConfig>,
    faults: Option<FaultConfig>,
    suites: Option<toml::Table>,
    #[serde(default)]
    corps: Vec<CorpSpec>,
}

/// Command-line flags.
#[derive(Debug, Default)]
struct Flags {
    config: Option<String>,
    addr: Option<String>,
    seed: Option<String>,
    callback_base: Option<String>,
}

impl SimConfig {
    /// Loads the configuration from `args` (without the program name), the environment as
    /// seen through `lookup`, and files read through `read_file`.
    pub fn load(
        args: &[String],
        lookup: impl Fn(&str) -> Option<String>,
        read_file: impl Fn(&Path) -> std::io::Result<String>,
    ) -> Result<Self, ConfigError> {
        let lookup = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let flags = parse_flags(args)?;
        let mut config = Self::default();
        let path = flags.config.clone().or_else(|| lookup("SIM_CONFIG"));
        let file = match &path {
            Some(path) => read_toml(path, &read_file)?,
            None => FileConfig::default(),
        };
        let inline_suites = file.suites.clone();
        config.apply_file(file)?;
        config.apply_env(&lookup)?;
        config.apply_flags(flags)?;
        let suites = match inline_suites {
            Some(table) => suites_from_table(table)?,
            None => Suites::load(lookup, |p| read_file(p))?,
        };
        config.suites = suites.iter().cloned().collect();
        config.validate()?;
        Ok(config)
    }

    fn apply_file(&mut self, file: FileConfig) -> Result<(), ConfigError> {
        if let Some(addr) = file.addr {
            self.addr = parse_value("addr", &addr)?;
        }
        if let Some(base) = file.callback_base {
            self.delivery.callback_base = Some(parse_url("callback_base", &base)?);
        }
        set(&mut self.workers, file.workers);
        set(&mut self.ticket_on_start, file.ticket_on_start);
        set(&mut self.seed, file.seed);
        set(&mut self.provider_corp_id, file.provider_corp_id);
        if let Some(secs) = file.ticket_interval_secs {
            self.ticket_interval = Duration::from_secs(secs);
        }
        self.provider_secret = file.provider_secret.or(self.provider_secret.take());
        set(&mut self.ttl, file.ttl);
        if let Some(delivery) = file.delivery {
            let base = self.delivery.callback_base.take();
            self.delivery = delivery;
            self.delivery.callback_base = self.delivery.callback_base.take().or(base);
        }
        set(&mut self.faults, file.faults);
        self.corps = file.corps;
        Ok(())
    }

    fn apply_env(&mut self, lookup: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let var = |name: &'static str| lookup(name).map(|value| (name, value));
        if let Some((key, value)) = var("SIM_ADDR") {
            self.addr = parse_value(key, &value)?;
        }
        if let Some((key, value)) = var("SIM_CALLBACK_BASE") {
            self.delivery.callback_base = Some(parse_url(key, &value)?);
        }
        env_value(lookup, "SIM_WORKERS", &mut self.workers)?;
        env_value(lookup, "SIM_TICKET_ON_START", &mut self.ticket_on_start)?;
        env_value(lookup, "SIM_SEED", &mut self.seed)?;
        if let Some(secs) = env_parse::<u64>(lookup, "SIM_TICKET_INTERVAL_SECS")? {
            self.ticket_interval = Duration::from_secs(secs);
        }
        if let Some((key, id)) = var("WECOM_PROVIDER_CORP_ID") {
            self.provider_corp_id = parse_value(key, &id)?;
        }
        if let Some((_, secret)) = var("SIM_PROVIDER_SECRET") {
            self.provider_secret = Some(secret);
        }
        let ttl = &mut self.ttl;
        env_value(
            lookup,
            "SIM_SUITE_TOKEN_TTL_SECS",
            &mut ttl.suite_token_secs,
        )?;
        env_value(lookup, "SIM_CORP_TOKEN_TTL_SECS", &mut ttl.corp_token_secs)?;
        env_value(
            lookup,
            "SIM_PROVIDER_TOKEN_TTL_SECS",
            &mut ttl.provider_token_secs,
        )?;
        env_value(lookup, "SIM_AUTH_CODE_TTL_SECS", &mut ttl.auth_code_secs)?;
        env_value(
            lookup,
            "SIM_SUITE_TICKET_TTL_SECS",
            &mut ttl.suite_ticket_secs,
        )?;
        let d = &mut self.delivery;
        env_value(lookup, "SIM_CALLBACK_TIMEOUT_MS", &mut d.timeout_ms)?;
        env_value(lookup, "SIM_CALLBACK_RETRIES", &mut d.retries)?;
        env_value(
            lookup,
            "SIM_CALLBACK_RETRY_INTERVAL_MS",
            &mut d.retry_interval_ms,
        )?;
        env_value(
            lookup,
            "SIM_CALLBACK_CONCURRENCY",
            &mut d.concurrency_per_url,
        )?;
        env_value(lookup, "SIM_DUPLICATE_RATE", &mut d.duplicate_rate)?;
        env_value(lookup, "SIM_DUPLICATE_COPIES", &mut d.duplicate_copies)?;
        env_value(lookup, "SIM_SHUFFLE", &mut d.shuffle)?;
        env_value(lookup, "SIM_SHUFFLE_WINDOW_MS", &mut d.shuffle_window_ms)?;
        let f = &mut self.faults;
        env_value(lookup, "SIM_FAULT_RATE", &mut f.fault_rate)?;
        env_value(lookup, "SIM_LATENCY_MS", &mut f.latency_ms)?;
        env_value(lookup, "SIM_LATENCY_JITTER_MS", &mut f.latency_jitter_ms)?;
        if let Some((key, value)) = var("SIM_RATE_LIMIT") {
            f.rate_limit = Some(parse_rate_limit(key, &value)?);
        }
        Ok(())
    }

    fn apply_flags(&mut self, flags: Flags) -> Result<(), ConfigError> {
        if let Some(addr) = flags.addr {
            self.addr = parse_value("--addr", &addr)?;
        }
        if let Some(seed) = flags.seed {
            self.seed = parse_value("--seed", &seed)?;
        }
        if let Some(base) = flags.callback_base {
            self.delivery.callback_base = Some(parse_url("--callback-base", &base)?);
        }
        Ok(())
    }

    /// Checks ranges once everything is merged.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            key: key.to_owned(),
            reason,
        };
        if self.workers == 0 {
            return Err(invalid("workers", "must be at least 1".to_owned()));
        }
        self.delivery
            .validate()
            .map_err(|reason| invalid("delivery", reason))?;
        self.faults
            .validate()
            .map_err(|reason| invalid("faults", reason))?;
        let t = &self.ttl;
        let ttls = [
            t.suite_token_secs,
            t.corp_token_secs,
            t.provider_token_secs,
            t.auth_code_secs,
            t.suite_ticket_secs,
        ];
        if ttls.contains(&0) {
            return Err(invalid(
                "ttl",
                "every lifetime must be at least 1 second".to_owned(),
            ));
        }
        Ok(())
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

fn parse_flags(args: &[String]) -> Result<Flags, ConfigError> {
    let mut flags = Flags::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let slot = match name {
            "--config" => &mut flags.config,
            "--addr" => &mut flags.addr,
            "--seed" => &mut flags.seed,
            "--callback-base" => &mut flags.callback_base,
            other => return Err(ConfigError::Usage(format!("unknown argument {other}"))),
        };
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .cloned()
                .ok_or_else(|| ConfigError::Usage(format!("{name} needs a value")))?,
        };
        *slot = Some(value);
    }
    Ok(flags)
}

fn read_toml(
    path: &str,
    read_file: &impl Fn(&Path) -> std::io::Result<String>,
) -> Result<FileConfig, ConfigError> {
    let file_error = |message: String| ConfigError::File {
        path: path.to_owned(),
        message,
    };
    let text = read_file(Path::new(path)).map_err(|e| file_error(e.to_string()))?;
    toml::from_str(&text).map_err(|e| file_error(e.message().to_owned()))
}

/// Inline `[suites.<id>]` tables, validated by `wecom::suite` exactly as the services do.
fn suites_from_table(table: toml::Table) -> Result<Suites, ConfigError> {
    let mut root = toml::Table::new();
    root.insert("suites".to_owned(), toml::Value::Table(table));
    let text = toml::to_string(&root).map_err(|e| ConfigError::Invalid {
        key: "suites".to_owned(),
        reason: e.to_string(),
    })?;
    Ok(Suites::from_toml(&text)?)
}

fn parse_value<T: FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| ConfigError::Invalid {
            key: key.to_owned(),
            reason: format!("cannot parse {value:?}: {e}"),
        })
}

fn parse_url(key: &str, value: &str) -> Result<Url, ConfigError> {
    let url: Url = parse_value(key, value)?;
    crate::push::check_base(&url).map_err(|reason| ConfigError::Invalid {
        key: key.to_owned(),
        reason,
    })?;
    Ok(url)
}

/// `LIMIT/WINDOW_SECS`, e.g. `10000/60`.
fn parse_rate_limit(key: &str, value: &str) -> Result<RateLimit, ConfigError> {
    let (limit, window) = value.split_once('/').ok_or_else(|| ConfigError::Invalid {
        key: key.to_owned(),
        reason: "expected LIMIT/WINDOW_SECS, e.g. 10000/60".to_owned(),
    })?;
    Ok(RateLimit {
        limit: parse_value(key, limit)?,
        window_secs: parse_value(key, window)?,
    })
}

fn env_parse<T: FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    lookup(name).map(|v| parse_value(name, &v)).transpose()
}

fn env_value<T: FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    slot: &mut T,
) -> Result<(), ConfigError>
where
    T::Err: std::fmt::Display,
{
    if let Some(value) = env_parse(lookup, name)? {
        *slot = value;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

    fn load(
        args: &[&str],
        env: &[(&str, &str)],
        files: &[(&str, &str)],
    ) -> Result<SimConfig, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let files: HashMap<String, String> = files
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        SimConfig::load(
            &args,
            |name| env.get(name).cloned(),
            |path| {
                files
                    .get(path.to_str().unwrap_or_default())
                    .cloned()
                    .ok_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")
                    })
            },
        )
    }

    fn single_suite_env() -> Vec<(&'static str, &'static str)> {
        vec![
            ("WECOM_SUITE_ID", "dkenv"),
            ("WECOM_SUITE_SECRET", "secret"),
            ("WECOM_TOKEN", "token"),
            ("WECOM_ENCODING_AES_KEY", KEY),
        ]
    }

    #[test]
    fn defaults_with_the_single_suite_environment() {
        let config = load(&[], &single_suite_env(), &[]).unwrap();
        assert_eq!(config.addr, "0.0.0.0:8090".parse().unwrap());
        assert_eq!(config.ticket_interval, Duration::from_secs(600));
        assert_eq!(config.delivery.timeout_ms, 5000);
        assert_eq!(config.delivery.retries, 3);
        assert_eq!(config.ttl.auth_code_secs, 600);
        assert!(config.delivery.callback_base.is_none());
        assert_eq!(config.suites.len(), 1);
        assert_eq!(config.suites[0].suite_id, "dkenv");
    }

    #[test]
    fn file_then_env_then_flags() {
        let file = format!(
            r#"
            addr = "127.0.0.1:9000"
            callback_base = "http://file:1"
            ticket_interval_secs = 60
            seed = 5
            [ttl]
            corp_token_secs = 30
            [delivery]
            retries = 1
            [faults]
            fault_rate = 0.25
            [faults.rate_limits]
            "user/get" = {{ limit = 5, window_secs = 60 }}
            [suites.dkfile]
            suite_secret = "s"
            token = "t"
            encoding_aes_key = "{KEY}"
            [[corps]]
            corp_id = "wwdemo"
            users = 10
            authorize = true
            "#
        );
        let mut env = single_suite_env();
        env.extend([
            ("SIM_CALLBACK_BASE", "http://env:2"),
            ("SIM_SEED", "6"),
            ("SIM_RATE_LIMIT", "100/60"),
            ("SIM_CALLBACK_RETRIES", "2"),
        ]);
        let config = load(
            &["--config", "sim.toml", "--seed=7"],
            &env,
            &[("sim.toml", &file)],
        )
        .unwrap();
        assert_eq!(config.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(
            config.delivery.callback_base.unwrap().as_str(),
            "http://env:2/"
        );
        assert_eq!(config.seed, 7);
        assert_eq!(config.ticket_interval, Duration::from_secs(60));
        assert_eq!(config.ttl.corp_token_secs, 30);
        assert_eq!(config.ttl.suite_token_secs, 7200);
        assert_eq!(config.delivery.retries, 2);
        assert!((config.faults.fault_rate - 0.25).abs() < f64::EPSILON);
        assert_eq!(config.faults.rate_limit.unwrap().limit, 100);
        assert_eq!(config.faults.rate_limits["user/get"].limit, 5);
        // Inline suites win over the environment form.
        assert_eq!(config.suites.len(), 1);
        assert_eq!(config.suites[0].suite_id, "dkfile");
        assert_eq!(
            config.corps[0].corp_id.as_ref().map(CorpId::as_str),
            Some("wwdemo")
        );
    }

    #[test]
    fn errors_name_the_culprit() {
        let env = single_suite_env();
        let mut bad = env.clone();
        bad.push(("SIM_CALLBACK_RETRIES", "many"));
        let err = load(&[], &bad, &[]).unwrap_err().to_string();
        assert!(err.starts_with("SIM_CALLBACK_RETRIES"), "{err}");
        let mut bad = env.clone();
        bad.push(("SIM_CALLBACK_BASE", "ftp://x"));
        assert!(
            load(&[], &bad, &[])
                .unwrap_err()
                .to_string()
                .starts_with("SIM_CALLBACK_BASE")
        );
        let mut bad = env.clone();
        bad.push(("SIM_DUPLICATE_RATE", "2"));
        assert!(
            load(&[], &bad, &[])
                .unwrap_err()
                .to_string()
                .contains("duplicate_rate")
        );
        assert!(matches!(
            load(&["--bogus"], &env, &[]),
            Err(ConfigError::Usage(_))
        ));
        assert!(matches!(
            load(&["--config", "missing.toml"], &env, &[]),
            Err(ConfigError::File { .. })
        ));
        assert!(matches!(load(&[], &[], &[]), Err(ConfigError::Suites(_))));
        let unknown_key = [("x.toml", "colour = 1")];
        assert!(matches!(
            load(&["--config", "x.toml"], &env, &unknown_key),
            Err(ConfigError::File { .. })
        ));
    }
}
