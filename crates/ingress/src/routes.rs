//! The HTTP layer: routes of docs/architecture.md §3.1, each a thin shell around
//! [`crate::callback`] and the publisher, and the one place outcomes become status codes, metrics
//! and log lines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse, web};
use bus::{CallbackOrigin, Envelope, PublishError, Publisher, Source};
use wecom::callback::EncryptedEnvelope;
use wecom::ids::{CorpId, SuiteId};

use crate::callback::{Authenticator, Query, Rejection, Route, Signed, Target, parse_event};
use crate::metrics::Metrics;
use crate::request_id::RequestId;

/// What every handler shares.
#[derive(Debug)]
pub struct State {
    /// Callback authentication for every suite.
    pub auth: Authenticator,
    /// The confirmed publisher.
    pub publisher: Publisher,
    /// The metrics registry.
    pub metrics: Metrics,
    /// `INGRESS_MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// `INGRESS_BODY_TIMEOUT_MS`.
    pub body_timeout: Duration,
    /// Set when shutdown starts, so `/readyz` turns false before the listener closes.
    pub shutting_down: Arc<AtomicBool>,
}

/// How a callback request ended, before it becomes a response.
enum Failure {
    Rejected(Rejection),
    Unavailable(PublishError),
}

impl From<Rejection> for Failure {
    fn from(r: Rejection) -> Self {
        Self::Rejected(r)
    }
}

/// The four callback routes of docs/architecture.md §3.1, dispatched by hand: actix's router
/// matches patterns with dynamic segments through a regex engine, which showed up in the ingress's
/// profile at several percent of its CPU for two fixed shapes of path.
///
/// - `GET|POST /callback/suite/{suite_id}`
/// - `GET|POST /callback/app/{suite_id}/{corp_id}`
pub async fn callback(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> HttpResponse {
    let Some(target) = CallbackPath::parse(req.path()) else {
        return plain(HttpResponse::NotFound(), "not found");
    };
    let post = match *req.method() {
        Method::GET => false,
        Method::POST => true,
        _ => return plain(HttpResponse::MethodNotAllowed(), "method not allowed"),
    };
    let route = match (target.corp_id.is_some(), post) {
        (false, false) => Route::SuiteGet,
        (false, true) => Route::SuitePost,
        (true, false) => Route::AppGet,
        (true, true) => Route::AppPost,
    };
    let target = Target {
        route,
        suite_id: target.suite_id,
        corp_id: target.corp_id,
    };
    let started = Instant::now();
    let result = if post {
        publish(&req, target, payload, &state)
            .await
            .map(|()| "success".to_owned())
    } else {
        echo(&req, target, &state)
    };
    match result {
        Ok(body) => {
            state.finish(route, started, "success");
            plain(HttpResponse::Ok(), body)
        }
        Err(failure) => state.fail(route, started, &failure),
    }
}

/// `{suite_id}` and `{corp_id}` of a callback path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CallbackPath<'a> {
    suite_id: &'a str,
    corp_id: Option<&'a str>,
}

impl<'a> CallbackPath<'a> {
    fn parse(path: &'a str) -> Option<Self> {
        let rest = path.strip_prefix("/callback/")?;
        let mut segments = rest.split('/');
        let kind = segments.next()?;
        let suite_id = segments.next().filter(|s| !s.is_empty())?;
        let corp_id = match kind {
            "suite" => None,
            "app" => Some(segments.next().filter(|s| !s.is_empty())?),
            _ => return None,
        };
        segments
            .next()
            .is_none()
            .then_some(Self { suite_id, corp_id })
    }
}

fn plain(mut builder: actix_web::HttpResponseBuilder, body: impl Into<String>) -> HttpResponse {
    builder
        .content_type(ContentType::plaintext())
        .body(body.into())
}

fn echo(req: &HttpRequest, target: Target<'_>, state: &State) -> Result<String, Failure> {
    if !state.auth.knows(target.suite_id) {
        return Err(Rejection::UnknownSuite.into());
    }
    let query = Query::parse(req.query_string())?;
    let echostr = query
        .params
        .echostr
        .as_deref()
        .ok_or(Rejection::MissingEchostr)?;
    let signed = Signed {
        query: &query,
        encrypt: echostr,
    };
    let verified = state.auth.verify(target, signed, &state.metrics)?;
    Ok(verified.decrypted.message)
}

async fn publish(
    req: &HttpRequest,
    target: Target<'_>,
    payload: web::Payload,
    state: &State,
) -> Result<(), Failure> {
    if !state.auth.knows(target.suite_id) {
        return Err(Rejection::UnknownSuite.into());
    }
    let query = Query::parse(req.query_string())?;
    let body = read_body(req, payload, state.max_body_bytes, state.body_timeout).await?;
    let envelope = EncryptedEnvelope::parse(&body).map_err(Rejection::Envelope)?;
    let signed = Signed {
        query: &query,
        encrypt: &envelope.encrypt,
    };
    let verified = state.auth.verify(target, signed, &state.metrics)?;
    let event = parse_event(&verified.decrypted.message, &state.metrics)?;
    // Ids of the path, typed: the suite is a configured one; the corp is the receiveid the
    // plaintext was just checked against.
    let suite_id = SuiteId::parse(target.suite_id).map_err(|_| Rejection::UnknownSuite)?;
    let corp_id =
        target
            .corp_id
            .map(CorpId::parse)
            .transpose()
            .map_err(|_| Rejection::ReceiveId {
                expected: target.corp_id.into_iter().map(str::to_owned).collect(),
                actual: verified.decrypted.receive_id.clone(),
            })?;
    let origin = CallbackOrigin {
        source: if target.route == Route::AppPost {
            Source::App
        } else {
            Source::Suite
        },
        suite_id: &suite_id,
        corp_id: corp_id.as_ref(),
        receive_id: &verified.decrypted.receive_id,
    };
    let envelope = Envelope::from_callback(origin, verified.decrypted.message, event);
    let request_id = RequestId::of(req);
    let confirm_started = Instant::now();
    state
        .publisher
        .publish(&envelope, request_id.as_str())
        .await
        .map_err(Failure::Unavailable)?;
    state.published(&envelope, confirm_started);
    Ok(())
}

/// Reads the body, refusing more than `limit` bytes (from `Content-Length` up front, and while
/// streaming for chunked bodies or lying headers) and a body still incomplete after `timeout`:
/// actix bounds the time to the end of the headers, nothing bounds the body but this, and a
/// client that announces a body and stalls would otherwise hold its connection forever.
async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    timeout: Duration,
) -> Result<web::Bytes, Rejection> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Rejection::TooLarge);
    }
    match tokio::time::timeout(timeout, payload.to_bytes_limited(limit)).await {
        Ok(Ok(Ok(body))) => Ok(body),
        Ok(Ok(Err(_))) => Err(Rejection::Body),
        Ok(Err(_)) => Err(Rejection::TooLarge),
        Err(_) => Err(Rejection::TooSlow),
    }
}

impl State {
    /// Counts a confirmed event.
    fn published(&self, envelope: &Envelope, confirm_started: Instant) {
        self.metrics
            .confirm_seconds
            .observe(confirm_started.elapsed().as_secs_f64());
        self.metrics
            .published
            .with_label_values(&[envelope.source.as_str(), &envelope.kind])
            .inc();
        tracing::debug!(
            kind = %envelope.kind,
            suite_id = %envelope.suite_id,
            corp_id = envelope.corp_id.as_ref().map(CorpId::as_str),
            message_id = %envelope.id,
            dedupe_key = %envelope.dedupe_key,
            "event published"
        );
    }

    fn finish(&self, route: Route, started: Instant, outcome: &str) {
        self.metrics
            .requests
            .with_label_values(&[route.label(), outcome])
            .inc();
        self.metrics
            .request_seconds
            .with_label_values(&[route.label()])
            .observe(started.elapsed().as_secs_f64());
    }

    fn fail(&self, route: Route, started: Instant, failure: &Failure) -> HttpResponse {
        match failure {
            Failure::Rejected(rejection) => {
                let (mut status, outcome) = match rejection {
                    Rejection::UnknownSuite => (HttpResponse::NotFound(), "unknown_suite"),
                    Rejection::TooLarge => (HttpResponse::PayloadTooLarge(), "too_large"),
                    Rejection::TooSlow => (HttpResponse::RequestTimeout(), "too_slow"),
                    _ => (HttpResponse::BadRequest(), "rejected"),
                };
                if matches!(rejection, Rejection::TooSlow) {
                    // The rest of the body may still come; nothing on this connection is worth
                    // waiting for.
                    status.force_close();
                }
                self.metrics
                    .rejections
                    .with_label_values(&[rejection.cause()])
                    .inc();
                self.finish(route, started, outcome);
                tracing::info!(
                    route = route.label(),
                    cause = rejection.cause(),
                    reason = %rejection,
                    "callback rejected"
                );
                tracing::debug!(detail = ?rejection, "rejection detail");
                plain(status, rejection.to_string())
            }
            Failure::Unavailable(error) => {
                self.finish(route, started, "unavailable");
                tracing::warn!(route = route.label(), %error, "event not published; answering 503");
                let mut unavailable = HttpResponse::ServiceUnavailable();
                unavailable.insert_header((header::RETRY_AFTER, "1"));
                plain(unavailable, "broker unavailable")
            }
        }
    }

    fn is_ready(&self) -> bool {
        let ready = self.publisher.is_ready() && !self.shutting_down.load(Ordering::SeqCst);
        self.metrics.broker_ready.set(i64::from(ready));
        ready
    }
}

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> HttpResponse {
    plain(HttpResponse::Ok(), "ok")
}

/// `GET /readyz`: connected to the broker and not shutting down.
pub async fn readyz(state: web::Data<State>) -> HttpResponse {
    if state.is_ready() {
        plain(HttpResponse::Ok(), "ready")
    } else {
        plain(HttpResponse::ServiceUnavailable(), "not ready")
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(state: web::Data<State>) -> HttpResponse {
    state.is_ready();
    match state.metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(error) => {
            tracing::error!(%error, "cannot render metrics");
            HttpResponse::InternalServerError().finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_paths() {
        let parse = CallbackPath::parse;
        assert_eq!(
            parse("/callback/suite/dk1"),
            Some(CallbackPath {
                suite_id: "dk1",
                corp_id: None
            })
        );
        assert_eq!(
            parse("/callback/app/dk1/ww2"),
            Some(CallbackPath {
                suite_id: "dk1",
                corp_id: Some("ww2")
            })
        );
        for bad in [
            "/callback/suite/",
            "/callback/suite/dk1/extra",
            "/callback/app/dk1",
            "/callback/app/dk1/",
            "/callback/app/dk1/ww2/x",
            "/callback/other/dk1",
            "/callbacks/suite/dk1",
            "/",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
