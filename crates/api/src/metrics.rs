//! Prometheus metrics of the provider API, in a registry owned by the application (no global
//! state, so parallel tests each see their own counters).
//!
//! - `daikai_api_requests_total{route, key, outcome}`: every request by route pattern, key id
//!   (`-` before a key is known) and outcome (`ok` or the problem code, docs/api.md §3).
//! - `daikai_api_request_duration_seconds{route}`: handling time.
//! - `daikai_api_cache_total{credential, result}`: corp tokens and JS-SDK tickets served from
//!   the shared cache (`hit`) or fetched from WeCom by this replica (`refresh`).
//! - `daikai_api_wecom_errors_total{call, errcode}`: WeCom's refusals of the calls the API made
//!   (`transport` when there was no errcode).
//! - `daikai_api_database_ready`: 1 while the last readiness probe reached Postgres.
//! - `daikai_wecom_calls_total{api, class}`: every WeCom call the API made, by endpoint and
//!   errcode class (`ok`, `retryable`, `token_expired`, `rate_limited`, `tenant_broken`,
//!   `permanent`), and `daikai_token_refreshes_total{kind, outcome}`: the corp token and JS-SDK
//!   ticket refreshes this replica attempted (`corp`, `jsapi`, `agent_config`; `ok`, `error`).
//!   Both are the auth worker's and contact sync's too (`runtime::metrics`).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use runtime::metrics::{TokenRefreshes, WecomCalls};

/// Latency buckets in seconds: cache hits take a millisecond, WeCom calls up to its timeout.
const BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.0, 4.0,
    8.0,
];

/// The API's metrics and the registry that exposes them.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route, key and outcome.
    pub requests: IntCounterVec,
    /// Handling time by route.
    pub request_seconds: HistogramVec,
    /// Cache hits and refreshes by credential.
    pub cache: IntCounterVec,
    /// WeCom errors by call and errcode.
    pub wecom_errors: IntCounterVec,
    /// 1 while Postgres answered the last readiness probe.
    pub database_ready: IntGauge,
    /// Every WeCom call by endpoint and errcode class.
    pub wecom_calls: WecomCalls,
    /// Token and ticket refreshes by kind and outcome.
    pub token_refreshes: TokenRefreshes,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let requests = counter(
            "daikai_api_requests_total",
            "Provider API requests by route, key id and outcome",
            &["route", "key", "outcome"],
        )?;
        let cache = counter(
            "daikai_api_cache_total",
            "Corp tokens and JS-SDK tickets served from the shared cache (hit) or fetched (refresh)",
            &["credential", "result"],
        )?;
        let wecom_errors = counter(
            "daikai_api_wecom_errors_total",
            "WeCom refusals of the calls the provider API made, by call and errcode",
            &["call", "errcode"],
        )?;
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "daikai_api_request_duration_seconds",
                "Provider API request handling time by route",
            )
            .buckets(BUCKETS.to_vec()),
            &["route"],
        )?;
        registry.register(Box::new(request_seconds.clone()))?;
        let database_ready = IntGauge::new(
            "daikai_api_database_ready",
            "1 while Postgres answered the last readiness probe",
        )?;
        registry.register(Box::new(database_ready.clone()))?;
        let wecom_calls = WecomCalls::register(&registry)?;
        let token_refreshes = TokenRefreshes::register(&registry)?;
        Ok(Self {
            registry,
            requests,
            request_seconds,
            cache,
            wecom_errors,
            database_ready,
            wecom_calls,
            token_refreshes,
        })
    }

    /// Counts a credential served: `refreshed` when this replica fetched it from WeCom.
    pub fn credential(&self, credential: &str, refreshed: bool) {
        let result = if refreshed { "refresh" } else { "hit" };
        self.cache.with_label_values(&[credential, result]).inc();
    }

    /// Counts a WeCom refusal of `call`.
    pub fn wecom_error(&self, call: &str, err: &wecom::api::ApiError) {
        let code = err
            .code()
            .map_or_else(|| "transport".to_owned(), |c| c.to_string());
        self.wecom_errors.with_label_values(&[call, &code]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::with_capacity(8 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
