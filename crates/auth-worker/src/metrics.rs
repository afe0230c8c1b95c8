//! The worker's Prometheus metrics, served on `/metrics`.
//!
//! What an operator alerts on: the suite-ticket age (WeCom pushes one every 10 minutes; past 20
//! minutes something is wrong, past 30 the suite token cannot be refreshed), AuthCodes that
//! failed (each one is a corp whose installation needs a human), dead-lettered messages,
//! `tenant.*` events that could not be published, and token refreshes that keep failing. Also
//! the tenants by status (refreshed from Postgres by the sweep) and every WeCom call by errcode
//! class. `daikai_wecom_calls_total` and `daikai_token_refreshes_total` are the ones contact
//! sync and the API export too (`runtime::metrics`).

use std::time::Duration;

use bus::consumer::{Observer, Outcome};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use runtime::metrics::{TokenRefreshes, WecomCalls};

/// Every metric of the worker, registered in its own registry (no global state).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `daikai_auth_messages_total{kind, outcome}`.
    pub messages: IntCounterVec,
    /// `daikai_auth_message_duration_seconds{kind}`.
    pub message_duration: HistogramVec,
    /// `daikai_suite_ticket_age_seconds{suite_id}`: now minus the stored ticket's WeCom time.
    pub ticket_age: IntGaugeVec,
    /// `daikai_suite_ticket_missing{suite_id}`: 1 while a configured suite has no stored ticket.
    pub ticket_missing: IntGaugeVec,
    /// `daikai_suite_tickets_total{suite_id, result}`: `stored` or `ignored_older`.
    pub tickets: IntCounterVec,
    /// `daikai_auth_code_exchanges_total{kind, api}`: successful exchanges (`v2` or `v1`).
    pub exchanges: IntCounterVec,
    /// `daikai_auth_code_failures_total{kind, reason}`: `burnt` (40078), `expired`, `refused`.
    pub auth_code_failures: IntCounterVec,
    /// `daikai_tenant_events_published_total{kind}`.
    pub tenant_events: IntCounterVec,
    /// `daikai_tenant_event_publish_failures_total{kind}` (retried with the message).
    pub tenant_event_failures: IntCounterVec,
    /// `daikai_inbox_pruned_total`: inbox entries this replica deleted past the retention.
    pub inbox_pruned: IntCounter,
    /// `daikai_tenants{status}`: tenants per status, from Postgres at each sweep (every replica
    /// reports the same numbers).
    pub tenants: IntGaugeVec,
    /// `daikai_wecom_calls_total{api, class}`: every WeCom call of this replica.
    pub wecom_calls: WecomCalls,
    /// `daikai_token_refreshes_total{kind, outcome}`: suite and corp token refreshes.
    pub token_refreshes: TokenRefreshes,
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
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let messages = counter_vec(
            "daikai_auth_messages_total",
            "Messages taken from wecom.auth, by kind and what became of them",
            &["kind", "outcome"],
        )?;
        let message_duration = HistogramVec::new(
            HistogramOpts::new(
                "daikai_auth_message_duration_seconds",
                "From delivery to ack (or retry / dead letter), by kind",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["kind"],
        )?;
        registry.register(Box::new(message_duration.clone()))?;
        let ticket_age = gauge_vec(
            "daikai_suite_ticket_age_seconds",
            "Age of the newest stored suite_ticket (alert above 1200: WeCom pushes every 600)",
            &["suite_id"],
        )?;
        let ticket_missing = gauge_vec(
            "daikai_suite_ticket_missing",
            "1 while a configured suite has no stored suite_ticket (alert: no suite token possible)",
            &["suite_id"],
        )?;
        let tickets = counter_vec(
            "daikai_suite_tickets_total",
            "suite_ticket pushes, stored or ignored because a newer one is stored",
            &["suite_id", "result"],
        )?;
        let exchanges = counter_vec(
            "daikai_auth_code_exchanges_total",
            "AuthCodes exchanged for a permanent code, by event kind and API version",
            &["kind", "api"],
        )?;
        let auth_code_failures = counter_vec(
            "daikai_auth_code_failures_total",
            "AuthCodes that could not be exchanged (each needs a re-authorization or a \
             secret reset)",
            &["kind", "reason"],
        )?;
        let tenant_events = counter_vec(
            "daikai_tenant_events_published_total",
            "internal.tenant.* events published (confirmed)",
            &["kind"],
        )?;
        let tenant_event_failures = counter_vec(
            "daikai_tenant_event_publish_failures_total",
            "internal.tenant.* publishes that failed (the message is retried)",
            &["kind"],
        )?;
        let inbox_pruned = IntCounter::new(
            "daikai_inbox_pruned_total",
            "Inbox entries deleted by this replica because they were past INBOX_RETENTION_HOURS",
        )?;
        registry.register(Box::new(inbox_pruned.clone()))?;
        let tenants = gauge_vec(
            "daikai_tenants",
            "Tenants by status (pending, active, suspended, revoked), as stored in Postgres",
            &["status"],
        )?;
        let wecom_calls = WecomCalls::register(&registry)?;
        let token_refreshes = TokenRefreshes::register(&registry)?;
        Ok(Self {
            registry,
            messages,
            message_duration,
            ticket_age,
            ticket_missing,
            tickets,
            exchanges,
            auth_code_failures,
            tenant_events,
            tenant_event_failures,
            inbox_pruned,
            tenants,
            wecom_calls,
            token_refreshes,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

impl Observer for Metrics {
    fn observe(&self, kind: &str, outcome: Outcome, elapsed: Duration) {
        self.messages
            .with_label_values(&[kind, outcome.as_str()])
            .inc();
        self.message_duration
            .with_label_values(&[kind])
            .observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_by_kind() {
        let metrics = Metrics::new().unwrap();
        metrics.observe("create_auth", Outcome::Acked, Duration::from_millis(12));
        metrics.observe("create_auth", Outcome::Retried, Duration::from_millis(3));
        let text = metrics.render().unwrap();
        assert!(
            text.contains(r#"daikai_auth_messages_total{kind="create_auth",outcome="acked"} 1"#)
        );
        assert!(
            text.contains(r#"daikai_auth_messages_total{kind="create_auth",outcome="retried"} 1"#)
        );
        assert!(
            text.contains("daikai_auth_message_duration_seconds_count{kind=\"create_auth\"} 2")
        );
    }
}
