//! Counters a test can assert on: calls per API and per corp, errcodes answered, tokens issued,
//! AuthCodes minted and consumed, callbacks pushed and delivered (`GET /sim/stats`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// Token counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TokenCounts {
    /// New suite access tokens (a repeat fetch during validity returns the same one: not counted).
    pub suite: u64,
    /// New corp access tokens.
    pub corp: u64,
    /// New provider access tokens.
    pub provider: u64,
}

/// AuthCode counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuthCodeCounts {
    /// Minted by authorize / reset-secret.
    pub issued: u64,
    /// Exchanged successfully (each at most once).
    pub consumed: u64,
    /// Exchange attempts answered 40078.
    pub rejected: u64,
}

/// Callback counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallbackCounts {
    /// Pushes queued (duplicates included).
    pub queued: u64,
    /// Pushes the receiver answered `success`.
    pub delivered: u64,
    /// Pushes given up after the last retry.
    pub failed: u64,
    /// HTTP attempts made (first tries and retries).
    pub attempts: u64,
    /// Extra copies sent by the duplicate delivery mode.
    pub duplicates: u64,
}

/// Everything `GET /sim/stats` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Calls per API (`user/get`, `service/get_suite_token`, …), failures included.
    pub api_calls: BTreeMap<String, u64>,
    /// Calls per corp (or suite, for provider-side APIs) and API.
    pub calls_by_key: BTreeMap<String, BTreeMap<String, u64>>,
    /// Answers per errcode (`0` for success).
    pub errcodes: BTreeMap<String, u64>,
    /// Tokens issued.
    pub tokens_issued: TokenCounts,
    /// AuthCodes.
    pub auth_codes: AuthCodeCounts,
    /// Suite tickets issued.
    pub suite_tickets_issued: u64,
    /// Callback deliveries.
    pub callbacks: CallbackCounts,
}

/// The live counters.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<StatsSnapshot>,
}

impl Stats {
    /// Runs `f` on the counters.
    pub(crate) fn update(&self, f: impl FnOnce(&mut StatsSnapshot)) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut inner);
    }

    /// Counts one API answer.
    pub(crate) fn record_call(&self, api: &str, key: Option<&str>, errcode: i64) {
        self.update(|s| {
            bump(&mut s.api_calls, api);
            if let Some(key) = key {
                match s.calls_by_key.get_mut(key) {
                    Some(by_api) => bump(by_api, api),
                    None => {
                        s.calls_by_key
                            .insert(key.to_owned(), BTreeMap::from([(api.to_owned(), 1)]));
                    }
                }
            }
            bump(&mut s.errcodes, &errcode.to_string());
        });
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Zeroes every counter.
    pub(crate) fn reset(&self) {
        self.update(|s| *s = StatsSnapshot::default());
    }
}

/// Adds one to `map[key]`, allocating the key only the first time.
fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(count) => *count += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_calls_by_api_key_and_code() {
        let stats = Stats::default();
        stats.record_call("user/get", Some("ww1"), 0);
        stats.record_call("user/get", Some("ww1"), 60011);
        stats.record_call("gettoken", None, 40001);
        let s = stats.snapshot();
        assert_eq!(s.api_calls["user/get"], 2);
        assert_eq!(s.calls_by_key["ww1"]["user/get"], 2);
        assert_eq!(s.errcodes["60011"], 1);
        assert_eq!(s.errcodes["40001"], 1);
        stats.reset();
        assert_eq!(stats.snapshot(), StatsSnapshot::default());
    }
}
