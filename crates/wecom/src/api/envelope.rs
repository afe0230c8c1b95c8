//! The one place a WeCom answer is turned into a typed value or an [`ApiError`].
//!
//! Every endpoint answers `{"errcode":…,"errmsg":…, …payload}`. The status is read first, so an
//! error answer never has to match the payload's shape; only then is the payload decoded.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::ApiError;

/// Largest body accepted from WeCom. `user/list` of a big department is the largest answer
/// (WeCom itself gives up with 45029 before this); anything bigger is treated as garbage.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The `errcode`/`errmsg` pair of every answer. Both default when absent:
/// `get_suite_token` and `get_provider_token` omit them on success.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `0` on success.
    #[serde(default)]
    pub errcode: i64,
    /// `"ok"` on success; informative text otherwise.
    #[serde(default)]
    pub errmsg: String,
}

impl Status {
    /// The success status, `{"errcode":0,"errmsg":"ok"}`.
    pub fn ok() -> Self {
        Self {
            errcode: 0,
            errmsg: "ok".to_owned(),
        }
    }

    /// An error status, as WeCom (or a simulator) sends it.
    pub fn error(errcode: i64, errmsg: impl Into<String>) -> Self {
        Self {
            errcode,
            errmsg: errmsg.into(),
        }
    }
}

/// A full answer: the status plus the endpoint's payload, flattened into one JSON object.
/// The client never decodes through this type; it exists so a simulator serves the real shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// `errcode` / `errmsg`.
    #[serde(flatten)]
    pub status: Status,
    /// The payload fields.
    #[serde(flatten)]
    pub body: T,
}

impl<T> Envelope<T> {
    /// A success answer carrying `body`.
    pub fn ok(body: T) -> Self {
        Self {
            status: Status::ok(),
            body,
        }
    }
}

/// Decodes a 2xx body: the status first, then (on `errcode == 0`) the payload.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let status: Status = serde_json::from_slice(body).map_err(|err| decode_error(&err))?;
    if status.errcode != 0 {
        return Err(ApiError::wecom(status.errcode, status.errmsg));
    }
    serde_json::from_slice(body).map_err(|err| decode_error(&err))
}

fn decode_error(err: &serde_json::Error) -> ApiError {
    ApiError::Decode(err.to_string())
}

/// Reads the body of `response`, refusing more than [`MAX_BODY_BYTES`].
pub(crate) async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, ApiError> {
    let declared = response.content_length().unwrap_or(0);
    if usize::try_from(declared).map_or(true, |len| len > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn too_large() -> ApiError {
    ApiError::Decode(format!("response body exceeds {MAX_BODY_BYTES} bytes"))
}

/// Maps a reqwest failure to [`ApiError`] without its URL: the URL carries the access token
/// (or, for `gettoken`, the corp secret) in its query string.
pub(crate) fn transport_error(err: reqwest::Error) -> ApiError {
    let err = err.without_url();
    if err.is_builder() {
        return ApiError::InvalidConfig(error_chain(&err));
    }
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else if err.is_body() || err.is_decode() {
        "body"
    } else {
        "request"
    };
    ApiError::Transport(format!("{kind}: {}", error_chain(&err)))
}

/// `err: source: source…`, so a timeout hidden under "error sending request" stays visible.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Maps a non-2xx status: 5xx is WeCom (or a proxy) having trouble, so retryable.
pub(crate) fn status_error(status: reqwest::StatusCode) -> ApiError {
    if status.is_server_error() {
        ApiError::Transport(format!("HTTP {}", status.as_u16()))
    } else {
        ApiError::Http {
            status: status.as_u16(),
        }
    }
}
