//! The metrics every service that calls WeCom exports under the same names and labels, so one
//! dashboard panel and one alert cover the auth worker, contact sync and the provider API (the
//! scrape's `job` label tells the services apart). Each service registers them on its own
//! registry, next to its own metrics, and hands them to the libraries as their hooks:
//!
//! - [`WecomCalls`], `daikai_wecom_calls_total{api, class}`: every HTTP call the service's
//!   [`wecom::api::Client`] makes, by endpoint (`gettoken`, `user/list_id`, …) and outcome:
//!   `ok` or the errcode's [`wecom::api::ErrorClass`] (`retryable`, `token_expired`,
//!   `rate_limited`, `tenant_broken`, `permanent`). Each attempt counts, retries included.
//! - [`TokenRefreshes`], `daikai_token_refreshes_total{kind, outcome}`: every refresh the
//!   service's [`tokens::TokenService`] attempts, by kind (`suite`, `corp`, `jsapi`,
//!   `agent_config`) and outcome (`ok`, `error`).

use std::sync::Arc;

use prometheus::{IntCounterVec, Opts, Registry};
use tokens::{RefreshKind, RefreshObserver, TokenError, TokenService};
use wecom::api::{ApiError, CallObserver, Client};

/// `daikai_wecom_calls_total{api, class}`: the [`CallObserver`] of a service's WeCom client.
#[derive(Debug, Clone)]
pub struct WecomCalls {
    calls: IntCounterVec,
}

impl WecomCalls {
    /// Creates the counter and registers it on `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let calls = IntCounterVec::new(
            Opts::new(
                "daikai_wecom_calls_total",
                "WeCom API calls by endpoint and outcome: ok, or the errcode's class (retryable, \
                 token_expired, rate_limited, tenant_broken, permanent); retries count each",
            ),
            &["api", "class"],
        )?;
        registry.register(Box::new(calls.clone()))?;
        Ok(Self { calls })
    }

    /// `client`, counting every call it makes here.
    #[must_use]
    pub fn counting(&self, client: Client) -> Client {
        client.with_observer(Arc::new(self.clone()))
    }

    /// The count of (api, class) so far (tests).
    pub fn get(&self, api: &str, class: &str) -> u64 {
        self.calls
            .get_metric_with_label_values(&[api, class])
            .map_or(0, |c| c.get())
    }
}

impl CallObserver for WecomCalls {
    fn observe(&self, api: &'static str, outcome: Result<(), &ApiError>) {
        let class = outcome.map_or_else(|err| err.class().as_str(), |()| "ok");
        self.calls.with_label_values(&[api, class]).inc();
    }
}

/// `daikai_token_refreshes_total{kind, outcome}`: the [`RefreshObserver`] of a service's token
/// service.
#[derive(Debug, Clone)]
pub struct TokenRefreshes {
    refreshes: IntCounterVec,
}

impl TokenRefreshes {
    /// Creates the counter and registers it on `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let refreshes = IntCounterVec::new(
            Opts::new(
                "daikai_token_refreshes_total",
                "Token and JS-SDK ticket refreshes this process attempted, by kind (suite, corp, \
                 jsapi, agent_config) and outcome (ok, error: no fresh token was had)",
            ),
            &["kind", "outcome"],
        )?;
        registry.register(Box::new(refreshes.clone()))?;
        Ok(Self { refreshes })
    }

    /// `tokens`, counting every refresh it attempts here.
    #[must_use]
    pub fn counting(&self, tokens: TokenService) -> TokenService {
        tokens.with_observer(Arc::new(self.clone()))
    }

    /// The count of (kind, outcome) so far (tests).
    pub fn get(&self, kind: &str, outcome: &str) -> u64 {
        self.refreshes
            .get_metric_with_label_values(&[kind, outcome])
            .map_or(0, |c| c.get())
    }
}

impl RefreshObserver for TokenRefreshes {
    fn refreshed(&self, kind: RefreshKind, outcome: Result<(), &TokenError>) {
        let outcome = if outcome.is_ok() { "ok" } else { "error" };
        self.refreshes
            .with_label_values(&[kind.as_str(), outcome])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder as _, TextEncoder};

    fn render(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn calls_are_counted_by_api_and_class() {
        let registry = Registry::new();
        let calls = WecomCalls::register(&registry).unwrap();
        calls.observe("gettoken", Ok(()));
        calls.observe("user/list_id", Err(&ApiError::wecom(-1, "busy")));
        calls.observe("user/list_id", Err(&ApiError::wecom(45009, "limit")));
        calls.observe("user/get", Err(&ApiError::wecom(42001, "expired")));
        calls.observe("gettoken", Err(&ApiError::wecom(40001, "secret")));
        calls.observe("tag/get", Err(&ApiError::Http { status: 400 }));
        let text = render(&registry);
        for line in [
            r#"daikai_wecom_calls_total{api="gettoken",class="ok"} 1"#,
            r#"daikai_wecom_calls_total{api="user/list_id",class="retryable"} 1"#,
            r#"daikai_wecom_calls_total{api="user/list_id",class="rate_limited"} 1"#,
            r#"daikai_wecom_calls_total{api="user/get",class="token_expired"} 1"#,
            r#"daikai_wecom_calls_total{api="gettoken",class="tenant_broken"} 1"#,
            r#"daikai_wecom_calls_total{api="tag/get",class="permanent"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert_eq!(calls.get("user/list_id", "retryable"), 1);
        assert_eq!(calls.get("user/list_id", "ok"), 0);
    }

    #[test]
    fn refreshes_are_counted_by_kind_and_outcome() {
        let registry = Registry::new();
        let refreshes = TokenRefreshes::register(&registry).unwrap();
        refreshes.refreshed(RefreshKind::Corp, Ok(()));
        refreshes.refreshed(RefreshKind::AgentConfig, Ok(()));
        let err = TokenError::Call(ApiError::wecom(-1, "busy"));
        refreshes.refreshed(RefreshKind::Suite, Err(&err));
        refreshes.refreshed(RefreshKind::Jsapi, Err(&err));
        let text = render(&registry);
        for line in [
            r#"daikai_token_refreshes_total{kind="corp",outcome="ok"} 1"#,
            r#"daikai_token_refreshes_total{kind="agent_config",outcome="ok"} 1"#,
            r#"daikai_token_refreshes_total{kind="suite",outcome="error"} 1"#,
            r#"daikai_token_refreshes_total{kind="jsapi",outcome="error"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert_eq!(refreshes.get("suite", "error"), 1);
    }

    #[test]
    fn both_register_on_one_registry_and_twice_is_refused() {
        let registry = Registry::new();
        WecomCalls::register(&registry).unwrap();
        TokenRefreshes::register(&registry).unwrap();
        assert!(WecomCalls::register(&registry).is_err());
    }
}
