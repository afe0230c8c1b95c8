//! Realistic failure modes of the server APIs: per-corp per-API frequency limits (45009 for the
//! rest of the window, as WeCom blocks), a `-1` system-busy rate, added latency, and refusals
//! WeCom gives that a test cannot otherwise provoke (48002 API not allowed for this app, 45029
//! response too large).
//!
//! All off by default; set at start (`[faults]`, `SIM_FAULT_RATE`, …) or at run time with
//! `POST /sim/faults`. The token and AuthCode rules are not faults: they always apply.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::errcode::{self, ApiFailure};
use crate::rng::SplitMix64;

/// A frequency limit: at most `limit` calls per `window_secs`, per corp and API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Calls allowed per window.
    pub limit: u32,
    /// Window length in seconds (WeCom blocks for the rest of the window).
    pub window_secs: u64,
}

/// The fault settings, as `GET /sim/faults` shows them and `POST /sim/faults` replaces them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// A limit applied to every API (per corp and API); `null` for none.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Per-API limits (keys like `user/get`), overriding `rate_limit`.
    #[serde(default)]
    pub rate_limits: BTreeMap<String, RateLimit>,
    /// Probability (0..=1) that a call answers `-1` system busy.
    #[serde(default)]
    pub fault_rate: f64,
    /// APIs the fault rate and latency apply to (keys like `user/list`); empty = all.
    #[serde(default)]
    pub fault_apis: Vec<String>,
    /// Latency added to every call, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Up to this much more latency, drawn uniformly, in milliseconds.
    #[serde(default)]
    pub latency_jitter_ms: u64,
    /// APIs that answer this errcode to every call (keys like `department/list`), e.g.
    /// `{"department/list": 45029, "user/list": 48002}`.
    #[serde(default)]
    pub refuse: BTreeMap<String, i64>,
}

impl FaultConfig {
    /// Checks ranges (probability in 0..=1, windows longer than zero).
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.fault_rate) {
            return Err("fault_rate must be between 0 and 1".to_owned());
        }
        let limits = self.rate_limit.iter().chain(self.rate_limits.values());
        if limits.into_iter().any(|l| l.window_secs == 0) {
            return Err("rate limit window_secs must be at least 1".to_owned());
        }
        if self.refuse.values().any(|code| *code == 0) {
            return Err("refuse: an errcode of 0 is not a refusal".to_owned());
        }
        Ok(())
    }

    fn applies_to(&self, api: &str) -> bool {
        self.fault_apis.is_empty() || self.fault_apis.iter().any(|a| a == api)
    }
}

/// One fixed window of one (key, API).
#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: i64,
    calls: u32,
}

#[derive(Debug)]
struct State {
    config: FaultConfig,
    windows: HashMap<(String, String), Window>,
    rng: SplitMix64,
}

/// The live fault settings and the rate-limit windows.
#[derive(Debug)]
pub struct Faults {
    state: Mutex<State>,
}

impl Faults {
    /// Faults as configured, drawing from a generator seeded with `seed`.
    pub(crate) fn new(config: FaultConfig, seed: u64) -> Self {
        Self {
            state: Mutex::new(State {
                config,
                windows: HashMap::new(),
                rng: SplitMix64::new(seed ^ 0xFA17_FA17),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current settings.
    pub fn config(&self) -> FaultConfig {
        self.lock().config.clone()
    }

    /// Replaces the settings; open rate-limit windows are forgotten.
    pub fn set(&self, config: FaultConfig) {
        let mut state = self.lock();
        state.config = config;
        state.windows.clear();
    }

    /// The latency to add before answering a call to `api`.
    pub(crate) fn latency(&self, api: &str) -> Duration {
        let mut state = self.lock();
        if !state.config.applies_to(api) {
            return Duration::ZERO;
        }
        let jitter = state.config.latency_jitter_ms;
        let extra = if jitter == 0 {
            0
        } else {
            state.rng.below(jitter + 1)
        };
        Duration::from_millis(state.config.latency_ms.saturating_add(extra))
    }

    /// Counts a call to `api` by `key` (a corp id, or a suite id for provider-side APIs) at
    /// `now_ms`, then decides whether it fails: the configured refusal of `api`, 45009 once over
    /// the window's limit (until the window ends), else `-1` with the configured probability.
    pub(crate) fn check(&self, key: &str, api: &str, now_ms: i64) -> Result<(), ApiFailure> {
        let mut state = self.lock();
        if let Some(code) = state.config.refuse.get(api) {
            return Err(errcode::refusal(*code));
        }
        let limit = state
            .config
            .rate_limits
            .get(api)
            .copied()
            .or(state.config.rate_limit);
        if let Some(limit) = limit {
            let window_ms =
                i64::try_from(limit.window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            let window = state
                .windows
                .entry((key.to_owned(), api.to_owned()))
                .or_insert(Window {
                    start_ms: now_ms,
                    calls: 0,
                });
            if now_ms.saturating_sub(window.start_ms) >= window_ms {
                *window = Window {
                    start_ms: now_ms,
                    calls: 0,
                };
            }
            window.calls = window.calls.saturating_add(1);
            if window.calls > limit.limit {
                return Err(errcode::FREQUENCY_LIMIT);
            }
        }
        let rate = state.config.fault_rate;
        if state.config.applies_to(api) && state.rng.chance(rate) {
            return Err(errcode::SYSTEM_BUSY);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_api_answers_its_errcode_and_others_are_untouched() {
        let faults = Faults::new(
            FaultConfig {
                refuse: BTreeMap::from([("department/list".to_owned(), 48002)]),
                ..FaultConfig::default()
            },
            1,
        );
        let refused = faults.check("ww1", "department/list", 0).unwrap_err();
        assert_eq!((refused.code, refused.message), (48002, "api forbidden"));
        assert!(faults.check("ww1", "department/simplelist", 0).is_ok());
        let zero = FaultConfig {
            refuse: BTreeMap::from([("user/list".to_owned(), 0)]),
            ..FaultConfig::default()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn window_blocks_until_it_ends_per_key_and_api() {
        let faults = Faults::new(
            FaultConfig {
                rate_limits: BTreeMap::from([(
                    "user/get".to_owned(),
                    RateLimit {
                        limit: 2,
                        window_secs: 60,
                    },
                )]),
                ..FaultConfig::default()
            },
            1,
        );
        assert!(faults.check("ww1", "user/get", 0).is_ok());
        assert!(faults.check("ww1", "user/get", 1).is_ok());
        assert_eq!(
            faults.check("ww1", "user/get", 2),
            Err(errcode::FREQUENCY_LIMIT)
        );
        assert_eq!(
            faults.check("ww1", "user/get", 59_999),
            Err(errcode::FREQUENCY_LIMIT)
        );
        assert!(faults.check("ww2", "user/get", 3).is_ok());
        assert!(faults.check("ww1", "user/list", 3).is_ok());
        assert!(faults.check("ww1", "user/get", 60_000).is_ok());
    }

    #[test]
    fn fault_rate_one_always_fails_only_listed_apis() {
        let faults = Faults::new(
            FaultConfig {
                fault_rate: 1.0,
                fault_apis: vec!["user/list".into()],
                ..FaultConfig::default()
            },
            1,
        );
        assert_eq!(
            faults.check("ww1", "user/list", 0),
            Err(errcode::SYSTEM_BUSY)
        );
        assert!(faults.check("ww1", "user/get", 0).is_ok());
    }

    #[test]
    fn latency_and_validation() {
        let faults = Faults::new(
            FaultConfig {
                latency_ms: 5,
                latency_jitter_ms: 3,
                ..FaultConfig::default()
            },
            1,
        );
        let latency = faults.latency("user/get");
        assert!(latency >= Duration::from_millis(5) && latency <= Duration::from_millis(8));
        let bad = FaultConfig {
            fault_rate: 1.5,
            ..FaultConfig::default()
        };
        assert!(bad.validate().is_err());
        assert!(FaultConfig::default().validate().is_ok());
    }
}
