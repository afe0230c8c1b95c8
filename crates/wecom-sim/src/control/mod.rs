//! The control API under `/sim/…` (JSON): what a test, a demo or a person uses to play the corp
//! admin, the provider console and WeCom's own clock. docs/wecom-sim.md documents every route
//! with curl examples.
//!
//! Routes that make WeCom push a callback take `?push=false` (change the state only, to simulate
//! a lost callback) and `?wait=true` (answer only once the callback was delivered or given up,
//! with the delivery reports).

mod admin;
mod corps;
mod directory;
mod login;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wecom::ids::{CorpId, SuiteId};

use crate::directory::DirectoryError;
use crate::push::{DeliveryReport, Pending, Queued};
use crate::sim::PushOpts;
use crate::state::StateError;

/// Why a control request failed; answered as `{"error": "…"}` with a fitting status.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A state rule (unknown corp, already authorized, …).
    #[error(transparent)]
    State(#[from] StateError),
    /// A directory rule (unknown user, department not empty, …).
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Something broke inside the simulator.
    #[error("{0}")]
    Internal(String),
}

impl ResponseError for ControlError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::State(StateError::UnknownCorp(_) | StateError::UnknownSuite(_))
            | Self::Directory(DirectoryError::NotFound(_)) => StatusCode::NOT_FOUND,
            Self::State(
                StateError::CorpExists(_)
                | StateError::AlreadyAuthorized { .. }
                | StateError::NotAuthorized { .. }
                | StateError::AlreadySwitched { .. },
            )
            | Self::Directory(DirectoryError::AlreadyExists(_) | DirectoryError::NotEmpty(_)) => {
                StatusCode::CONFLICT
            }
            Self::State(StateError::SuiteRequired | StateError::Invalid(_))
            | Self::Directory(DirectoryError::Invalid(_))
            | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .json(serde_json::json!({ "error": self.to_string() }))
    }
}

/// The query options of control routes.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Options {
    /// Push the callback (default true).
    #[serde(default)]
    push: Option<bool>,
    /// Wait for the delivery reports (default false).
    #[serde(default)]
    wait: Option<bool>,
    /// The suite, when several are configured.
    #[serde(default)]
    suite: Option<String>,
    /// Directory view: `full` (default) or `app`.
    #[serde(default)]
    view: Option<String>,
    /// How many delivery reports to show.
    #[serde(default)]
    limit: Option<usize>,
    /// The receiveid of a URL verification (default: the provider corp id).
    #[serde(default)]
    receive_id: Option<String>,
}

impl Options {
    fn push_opts(&self) -> PushOpts {
        PushOpts {
            push: self.push.unwrap_or(true),
            wait: self.wait.unwrap_or(false),
        }
    }

    /// `?suite=`, when given; one that is no valid suite id is an unknown suite (404).
    fn suite(&self) -> Result<Option<SuiteId>, ControlError> {
        self.suite
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(suite_id)
            .transpose()
    }
}

/// The corp a route names; one that is no valid corp id is an unknown corp (404).
fn corp_id(raw: &str) -> Result<CorpId, ControlError> {
    raw.parse()
        .map_err(|_| StateError::UnknownCorp(raw.to_owned()).into())
}

/// The suite a route names; one that is no valid suite id is an unknown suite (404).
fn suite_id(raw: &str) -> Result<SuiteId, ControlError> {
    raw.parse()
        .map_err(|_| StateError::UnknownSuite(raw.to_owned()).into())
}

/// Sends WeCom's URL-verification GET for `destination` with the template (`app == false`) or
/// app keys of `suite_id`.
async fn verify_url(
    sim: &crate::Sim,
    suite_id: &SuiteId,
    destination: crate::push::Destination,
    app: bool,
    receive_id: Option<String>,
) -> Result<HttpResponse, ControlError> {
    let (crypto, receive_id) = {
        let world = sim.read();
        let suite = world
            .suite(suite_id)
            .ok_or_else(|| StateError::UnknownSuite(suite_id.to_string()))?;
        let crypto = if app {
            suite.app_callback_crypto()
        } else {
            suite.callback_crypto()
        };
        let crypto = crypto.map_err(|e| ControlError::Internal(e.to_string()))?;
        let receive_id = receive_id.unwrap_or_else(|| world.provider_corp_id().to_string());
        (crypto, receive_id)
    };
    let report = sim
        .pusher
        .verify_url(&destination, &crypto, &receive_id)
        .await
        .ok_or_else(|| ControlError::BadRequest("no callback base configured".to_owned()))?;
    Ok(HttpResponse::Ok().json(report))
}

/// An answer plus the callbacks it queued and, with `?wait=true`, how they went.
#[derive(Debug, Serialize)]
struct WithPushes<T> {
    #[serde(flatten)]
    body: T,
    pushes: Vec<Queued>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deliveries: Option<Vec<DeliveryReport>>,
}

/// Answers `body` with the pushes; waits for their reports when they carry a receiver.
async fn with_pushes<T: Serialize>(
    status: StatusCode,
    body: T,
    pending: Vec<Pending>,
) -> HttpResponse {
    let waiting = pending.iter().any(|p| p.done.is_some());
    let mut pushes = Vec::with_capacity(pending.len());
    let mut deliveries = Vec::new();
    for pending in pending {
        pushes.push(pending.queued);
        if let Some(done) = pending.done {
            if let Ok(report) = done.await {
                deliveries.push(report);
            } else {
                tracing::warn!("delivery aborted before it finished (shutting down?)");
            }
        }
    }
    HttpResponse::build(status).json(WithPushes {
        body,
        pushes,
        deliveries: waiting.then_some(deliveries),
    })
}

/// Decodes an optional JSON body: empty means the defaults.
fn optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ControlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ControlError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Decodes a required JSON body.
fn required_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ControlError> {
    serde_json::from_slice(body)
        .map_err(|e| ControlError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Mounts every `/sim` route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let query_config = web::QueryConfig::default()
        .error_handler(|err, _| ControlError::BadRequest(err.to_string()).into());
    let path_config = web::PathConfig::default()
        .error_handler(|err, _| ControlError::BadRequest(err.to_string()).into());
    cfg.service(
        web::scope("/sim")
            .app_data(query_config)
            .app_data(path_config)
            .configure(admin::routes)
            .configure(corps::routes)
            .configure(directory::routes)
            .configure(login::routes),
    );
}
