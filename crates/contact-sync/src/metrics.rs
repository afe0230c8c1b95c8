//! The worker's Prometheus metrics, served on `/metrics`.
//!
//! What an operator watches: full syncs in progress, failing, or not completed for long (the
//! directory is stale); WeCom calls by API and errcode class (a rising `rate_limited` means the
//! shared budget is too generous); corp token refreshes; rows written; the change events
//! handled. `daikai_wecom_calls_total` and `daikai_token_refreshes_total` are the ones the auth
//! worker and the API export too (`runtime::metrics`).

use std::time::Duration;

use bus::consumer::{Observer, Outcome};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use runtime::metrics::{TokenRefreshes, WecomCalls};

/// Every metric of the worker, in its own registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `daikai_contact_messages_total{kind, outcome}`.
    pub messages: IntCounterVec,
    /// `daikai_contact_message_duration_seconds{kind}`.
    pub message_duration: HistogramVec,
    /// `daikai_sync_runs_in_progress`: full syncs this replica is running.
    pub runs_in_progress: IntGauge,
    /// `daikai_sync_runs_total{reason, result}`: `completed`, `failed`, `lost` (taken over or
    /// cancelled), `busy` (coalesced into a running one).
    pub runs: IntCounterVec,
    /// `daikai_sync_run_failures_total`.
    pub run_failures: IntCounter,
    /// `daikai_sync_last_success_timestamp_seconds`: when this replica last completed a run.
    pub last_success: IntGauge,
    /// `daikai_sync_pages_total{phase}`: listing pages processed by full syncs.
    pub pages: IntCounterVec,
    /// `daikai_sync_rows_written_total{table}`.
    pub rows: IntCounterVec,
    /// `daikai_wecom_calls_total{api, class}`: every WeCom call (each retry too), `ok` or the
    /// errcode's class: `retryable`, `token_expired`, `rate_limited`, `tenant_broken`,
    /// `permanent`.
    pub wecom_calls: WecomCalls,
    /// `daikai_token_refreshes_total{kind, outcome}`: corp token refreshes of this replica.
    pub token_refreshes: TokenRefreshes,
    /// `daikai_sync_rate_limit_waits_total`: waits for the shared budget or a 45009 window.
    pub rate_limit_waits: IntCounter,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let messages = counter_vec(
            "daikai_contact_messages_total",
            "Messages taken from wecom.contacts, by kind and what became of them",
            &["kind", "outcome"],
        )?;
        let runs = counter_vec(
            "daikai_sync_runs_total",
            "Full syncs by reason and result",
            &["reason", "result"],
        )?;
        let pages = counter_vec(
            "daikai_sync_pages_total",
            "Listing pages processed by full syncs",
            &["phase"],
        )?;
        let rows = counter_vec(
            "daikai_sync_rows_written_total",
            "Directory rows written",
            &["table"],
        )?;
        let wecom_calls = WecomCalls::register(&registry)?;
        let token_refreshes = TokenRefreshes::register(&registry)?;
        let message_duration = HistogramVec::new(
            HistogramOpts::new(
                "daikai_contact_message_duration_seconds",
                "From delivery to ack (or retry / dead letter), by kind",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0,
            ]),
            &["kind"],
        )?;
        registry.register(Box::new(message_duration.clone()))?;
        let runs_in_progress = IntGauge::new(
            "daikai_sync_runs_in_progress",
            "Full syncs this replica is running",
        )?;
        registry.register(Box::new(runs_in_progress.clone()))?;
        let run_failures = IntCounter::new(
            "daikai_sync_run_failures_total",
            "Full syncs that failed (alert when rising)",
        )?;
        registry.register(Box::new(run_failures.clone()))?;
        let last_success = IntGauge::new(
            "daikai_sync_last_success_timestamp_seconds",
            "Unix time this replica last completed a full sync",
        )?;
        registry.register(Box::new(last_success.clone()))?;
        let rate_limit_waits = IntCounter::new(
            "daikai_sync_rate_limit_waits_total",
            "Waits for the shared per-corp budget or a 45009 window",
        )?;
        registry.register(Box::new(rate_limit_waits.clone()))?;
        Ok(Self {
            registry,
            messages,
            message_duration,
            runs_in_progress,
            runs,
            run_failures,
            last_success,
            pages,
            rows,
            wecom_calls,
            token_refreshes,
            rate_limit_waits,
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

impl Observer for Metrics {
    fn observe(&self, kind: &str, outcome: Outcome, elapsed: Duration) {
        let outcome = outcome.as_str();
        // Kinds come from WeCom's XML: keep the label set bounded.
        let kind = if kind.starts_with("change_contact.") || kind.starts_with("tenant.") {
            kind
        } else {
            "other"
        };
        self.messages.with_label_values(&[kind, outcome]).inc();
        self.message_duration
            .with_label_values(&[kind])
            .observe(elapsed.as_secs_f64());
    }
}
