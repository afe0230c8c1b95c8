//! Prometheus metrics of the ingress, in a registry owned by the application (no global state,
//! so parallel tests each see their own counters).
//!
//! - `ingress_requests_total{route, outcome}`: every callback request and how it ended.
//! - `ingress_rejections_total{cause}`: why requests were refused (signature, stale, …).
//! - `ingress_receive_id_mismatch_total{route, expected, actual}`: authentic pushes addressed to
//!   another id. The label values are the ids themselves: only requests with a valid signature
//!   get here, so the set is small and an operator needs exactly those ids to fix the setup.
//! - `ingress_receive_id_provider_total{route}`: pushes accepted because they carried the
//!   provider corp id (the tolerated WeCom quirk, see the callback module).
//! - `ingress_unparsed_events_total`: authentic XML that did not fit its typed event and was
//!   published as `unknown`.
//! - `ingress_published_total{source, kind}`: events confirmed by the broker.
//! - `ingress_publish_confirm_seconds`: publish → broker confirm.
//! - `ingress_request_duration_seconds{route}`: first byte handled → answer ready.
//! - `ingress_broker_ready`: 1 while the publisher is connected.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Latency buckets in seconds, from sub-millisecond confirms to the 2 s publish timeout and past.
const BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.0, 4.0,
];

/// The ingress's metrics and the registry that exposes them.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route and outcome.
    pub requests: IntCounterVec,
    /// Rejections by cause.
    pub rejections: IntCounterVec,
    /// receiveid mismatches after a valid signature.
    pub receive_id_mismatch: IntCounterVec,
    /// Pushes accepted with the provider corp id as receiveid.
    pub receive_id_provider: IntCounterVec,
    /// Authentic events published as `unknown` because their fields did not parse.
    pub unparsed_events: IntCounter,
    /// Confirmed publishes by source and kind.
    pub published: IntCounterVec,
    /// Publish-to-confirm latency.
    pub confirm_seconds: Histogram,
    /// Request handling latency by route.
    pub request_seconds: HistogramVec,
    /// 1 while the broker connection is up.
    pub broker_ready: IntGauge,
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
            "ingress_requests_total",
            "Callback requests by route and outcome",
            &["route", "outcome"],
        )?;
        let rejections = counter(
            "ingress_rejections_total",
            "Refused callback requests by cause",
            &["cause"],
        )?;
        let receive_id_mismatch = counter(
            "ingress_receive_id_mismatch_total",
            "Authentic callbacks whose receiveid is not one this route accepts",
            &["route", "expected", "actual"],
        )?;
        let receive_id_provider = counter(
            "ingress_receive_id_provider_total",
            "Callbacks accepted because their receiveid was the provider corp id",
            &["route"],
        )?;
        let published = counter(
            "ingress_published_total",
            "Events confirmed by the broker, by source and kind",
            &["source", "kind"],
        )?;
        let unparsed_events = IntCounter::new(
            "ingress_unparsed_events_total",
            "Authentic callbacks whose XML did not fit their typed event, published as unknown",
        )?;
        registry.register(Box::new(unparsed_events.clone()))?;
        let confirm_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "ingress_publish_confirm_seconds",
                "Time from publish to the broker's confirm",
            )
            .buckets(BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(confirm_seconds.clone()))?;
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "ingress_request_duration_seconds",
                "Callback handling time, from routing to the answer",
            )
            .buckets(BUCKETS.to_vec()),
            &["route"],
        )?;
        registry.register(Box::new(request_seconds.clone()))?;
        let broker_ready =
            IntGauge::new("ingress_broker_ready", "1 while the broker is connected")?;
        registry.register(Box::new(broker_ready.clone()))?;
        Ok(Self {
            registry,
            requests,
            rejections,
            receive_id_mismatch,
            receive_id_provider,
            unparsed_events,
            published,
            confirm_seconds,
            request_seconds,
            broker_ready,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::with_capacity(8 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
