//! `create_auth` and `reset_permanent_code`: the single-use AuthCode → permanent code exchange.
//!
//! WeCom answers an AuthCode once: the permanent code in that answer is never given again (a
//! second call gets 40078). Everything here is arranged so that answer reaches the database.
//!
//! 1. The AuthCode is persisted on arrival (`auth_codes`, sealed) and committed on its own.
//! 2. The code is *claimed* in one committed statement (`claim_auth_code`: a claim id and a
//!    two-minute lease). A duplicate delivery, a redelivery or the expiry sweep finds the claim
//!    and leaves the code alone (`Busy`: retry later), so it is never sent to WeCom twice at
//!    once. No transaction is open during any WeCom call.
//! 3. `get_permanent_code` v2 (v1 when v2 is unavailable). The answer is decoded tolerantly by
//!    the client: the permanent code and corp id are kept whatever shape the rest has.
//! 4. At once, before any other call: one transaction re-takes the code's row lock, stores the
//!    sealed permanent code (tenant activated, or its secret rotated) and marks the code
//!    `exchanged` under the claim id; commit. A failed commit is retried on fresh transactions
//!    for minutes: each retry re-takes the row lock and recognises its own earlier commit by the
//!    claim id (a commit that succeeded but whose acknowledgement was lost), and a permanent code
//!    in hand overrides a `failed` another worker wrote meanwhile.
//! 5. Then, as separate and retryable steps on committed state: `get_auth_info` (agent id, corp
//!    name, scope; done again on a redelivery while the tenant has none), and the `tenant.*`
//!    event (see `notify`).
//!
//! Outcomes of the exchange call: 40078 or another refusal marks the code `failed` (one error
//! line and a metric, no retry loop) — as `expired` when the code's ten minutes are over;
//! transient failures (`-1`, timeouts, rate limits, no suite token yet) give the claim up and
//! retry the message within the code's remaining life.
//!
//! Neither the AuthCode nor the permanent code is ever logged: log lines carry the code's hash
//! prefix (`AuthCodeHash`), and the secrets travel as `SecretString`.

use std::time::Duration;

use bus::consumer::{HandlerError, Message};
use chrono::Utc;
use secrecy::SecretString;
use serde_json::Value;
use sqlx::{Postgres, Transaction};
use store::auth_codes::{
    self, AuthCodeHash, AuthCodeKind, AuthCodeState, Claim, ClaimedAuthCode, NewAuthCode,
};
use store::tenants::{self, Activation, TenantStatus};
use store::{CorpId, StoreError, SuiteId};
use tokens::TokenError;
use uuid::Uuid;
use wecom::api::{ApiError, AuthInfoResponse, ErrorClass};
use wecom::event::{CreateAuth, ResetPermanentCode};

use crate::error::{Doing, WorkerError};
use crate::notify;
use crate::state::{AuthHandler, Suite};
use crate::wecom_calls::{self, ExchangeAnswer};

/// How long a permanent code in hand is retried into the database before giving up (it is the
/// only copy: patience is cheap, losing it is not).
const STORE_PATIENCE: Duration = Duration::from_secs(300);
/// Longest pause between two attempts at storing it.
const STORE_MAX_PAUSE: Duration = Duration::from_secs(5);
/// A claim younger than this is most likely held by a live exchange, finishing within a second.
const YOUNG_CLAIM: Duration = Duration::from_secs(10);

/// A create_auth: exchange the code and activate the tenant.
pub(crate) async fn create_auth(
    h: &AuthHandler,
    message: &Message,
    event: &CreateAuth,
) -> Result<(), WorkerError> {
    let code = Code {
        kind: AuthCodeKind::CreateAuth,
        value: event.auth_code.expose(),
        suite_id: &event.suite_id,
        wecom_time: event.timestamp,
        state: event.state.as_deref(),
    };
    run(h, message, &code).await
}

/// A reset_permanent_code: exchange the code and rotate the tenant's secret.
pub(crate) async fn reset_permanent_code(
    h: &AuthHandler,
    message: &Message,
    event: &ResetPermanentCode,
) -> Result<(), WorkerError> {
    let code = Code {
        kind: AuthCodeKind::ResetPermanentCode,
        value: event.auth_code.expose(),
        suite_id: &event.suite_id,
        wecom_time: event.timestamp,
        state: None,
    };
    run(h, message, &code).await
}

/// The AuthCode event, whichever kind.
pub(crate) struct Code<'a> {
    pub(crate) kind: AuthCodeKind,
    pub(crate) value: &'a str,
    pub(crate) suite_id: &'a SuiteId,
    pub(crate) wecom_time: i64,
    pub(crate) state: Option<&'a str>,
}

/// What an exchange answered, v1 or v2.
struct Exchanged {
    corp_id: CorpId,
    corp_name: Option<String>,
    agent_id: Option<i64>,
    permanent_code: SecretString,
    state: Option<String>,
    auth_info: Option<Value>,
    api: &'static str,
}

/// How the exchange call went.
enum Exchange {
    Done(Box<Exchanged>),
    /// WeCom refused the code: mark it failed. `reason` label for the metric.
    Refused {
        label: &'static str,
        reason: String,
    },
    /// Worth retrying while the code lives.
    Transient(HandlerError),
}

/// Whether the exchange result just committed came from this delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// This delivery stored it.
    Now,
    /// An earlier attempt of this same claim had committed it already.
    Earlier,
}

pub(crate) async fn run(
    h: &AuthHandler,
    message: &Message,
    code: &Code<'_>,
) -> Result<(), WorkerError> {
    let suite = h.suite(code.suite_id)?;
    let hash = AuthCodeHash::of(code.value);
    persist_on_arrival(h, message, code, &suite).await?;
    let ctx = Ctx {
        h,
        code,
        suite: &suite,
    };

    let claim = {
        let mut conn = h.connection("claiming the AuthCode").await?;
        auth_codes::claim_auth_code(&mut conn, &h.secrets, &hash, h.claim_lease)
            .await
            .doing("claiming the AuthCode")?
    };
    let mut fresh = false;
    match claim {
        Claim::Ready(claimed) => fresh = ctx.exchange_claimed(claimed).await?,
        Claim::Busy { until } => {
            // Wait without spending an attempt: a claimant that died must not make this
            // delivery run out of attempts before its claim lapses at `until`. A young claim's
            // holder is usually done within a second: look again soon. An older one may have
            // died: come back when the claim lapses.
            let lapses_in = (until - Utc::now()).to_std().unwrap_or_default();
            let claimed_for = h
                .claim_lease
                .to_std()
                .unwrap_or_default()
                .saturating_sub(lapses_in);
            let wait = if claimed_for < YOUNG_CLAIM {
                lapses_in.min(Duration::from_secs(1))
            } else {
                lapses_in
            };
            return Err(HandlerError::waiting(
                format!("AuthCode {hash} is claimed by another exchange until {until}"),
                wait,
            )
            .into());
        }
        Claim::Expired(record) => {
            report_failure(h, code.kind, &hash, "expired", &expired_reason(&record));
        }
        Claim::AlreadyExchanged { corp_id } => {
            tracing::info!(auth_code = %hash, corp_id = ?corp_id.as_ref().map(CorpId::as_str),
                "AuthCode already exchanged");
        }
        Claim::AlreadyFailed { reason } => {
            tracing::info!(auth_code = %hash, %reason, "AuthCode already failed: nothing to do");
        }
        Claim::NotFound => {
            return Err(HandlerError::transient(format!(
                "AuthCode {hash} was recorded but is not found"
            ))
            .into());
        }
    }
    ctx.complete(message, &hash, fresh).await
}

/// Step 1: the code is in `auth_codes` before anything else is tried.
async fn persist_on_arrival(
    h: &AuthHandler,
    message: &Message,
    code: &Code<'_>,
    suite: &Suite,
) -> Result<(), WorkerError> {
    let mut conn = h.connection("recording the AuthCode").await?;
    let new = NewAuthCode {
        suite_id: &suite.id,
        kind: code.kind,
        code: code.value,
        wecom_time: code.wecom_time,
        received_at: message.envelope.received_at,
    };
    let (record, created) = auth_codes::record_auth_code(&mut conn, &h.secrets, &new)
        .await
        .doing("recording the AuthCode")?;
    if created {
        tracing::info!(
            auth_code = %record.hash,
            kind = code.kind.as_str(),
            expires_at = %record.expires_at,
            "AuthCode recorded"
        );
    }
    Ok(())
}

/// The pieces one exchange needs.
struct Ctx<'a> {
    h: &'a AuthHandler,
    code: &'a Code<'a>,
    suite: &'a Suite,
}

impl Ctx<'_> {
    /// Steps 3–4 for a claimed code; `true` when this call stored a permanent code.
    async fn exchange_claimed(&self, claimed: ClaimedAuthCode) -> Result<bool, WorkerError> {
        let h = self.h;
        let hash = claimed.hash;
        match self.exchange(&claimed.code).await {
            Exchange::Done(exchanged) => {
                let stored = self.store(&claimed, &exchanged).await?;
                h.metrics
                    .exchanges
                    .with_label_values(&[self.code.kind.as_str(), exchanged.api])
                    .inc();
                tracing::info!(
                    auth_code = %hash,
                    corp_id = exchanged.corp_id.as_str(),
                    agent_id = ?exchanged.agent_id,
                    api = exchanged.api,
                    kind = self.code.kind.as_str(),
                    earlier_commit = stored == Stored::Earlier,
                    "AuthCode exchanged; permanent code stored"
                );
                Ok(true)
            }
            Exchange::Refused { label, reason } => {
                // A code WeCom no longer knows after its ten minutes expired; say so.
                let (label, reason) = if label == "burnt" && Utc::now() >= claimed.expires_at {
                    (
                        "expired",
                        format!("{}; {reason}", auth_codes::EXPIRED_REASON),
                    )
                } else {
                    (label, reason)
                };
                self.mark_failed(&hash, label, &reason).await?;
                Ok(false)
            }
            Exchange::Transient(error) => {
                self.record_transient(&hash, claimed.claim_id, error.reason())
                    .await;
                tracing::warn!(
                    auth_code = %hash,
                    attempt = claimed.attempt,
                    expires_at = %claimed.expires_at,
                    reason = error.reason(),
                    "AuthCode exchange failed transiently; will retry while the code is valid"
                );
                Err(within_life(error, claimed.expires_at).into())
            }
        }
    }

    /// The exchange call, and what its outcome means for the code.
    async fn exchange(&self, code: &SecretString) -> Exchange {
        let answer =
            wecom_calls::exchange_auth_code(self.h, &self.suite.id, &self.suite.secret, code).await;
        match answer {
            Ok(answer) => match into_exchanged(answer) {
                Ok(exchanged) => Exchange::Done(Box::new(exchanged)),
                Err(reason) => Exchange::Refused {
                    label: "refused",
                    reason,
                },
            },
            Err(TokenError::Call(err)) => classify_call(&err),
            // No suite token (no ticket yet, bad ticket, database): the code was not sent, so
            // it is intact; retry while it lives.
            Err(err) => Exchange::Transient(HandlerError::transient(format!(
                "no suite access token for the exchange: {err}"
            ))),
        }
    }

    /// Step 4: stores the exchange's result, retrying on fresh transactions for as long as
    /// [`STORE_PATIENCE`] allows.
    async fn store(
        &self,
        claimed: &ClaimedAuthCode,
        exchanged: &Exchanged,
    ) -> Result<Stored, WorkerError> {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(100);
        let mut attempt = 1_u32;
        let error = loop {
            match self.apply(claimed, exchanged).await {
                Ok(stored) => return Ok(stored),
                Err(error) if error.is_transient() && started.elapsed() < STORE_PATIENCE => {
                    tracing::warn!(%error, attempt, auth_code = %claimed.hash,
                        "storing the exchanged permanent code failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(STORE_MAX_PAUSE);
                    attempt += 1;
                }
                Err(error) => break error,
            }
        };
        tracing::error!(
            auth_code = %claimed.hash,
            corp_id = exchanged.corp_id.as_str(),
            %error,
            attempts = attempt,
            "the permanent code was obtained but could not be stored; the AuthCode is used up: \
             reset the secret of this corp's app in the provider console (重新获取secret)"
        );
        Err(WorkerError::Store {
            doing: "storing the exchanged permanent code",
            source: error,
        })
    }

    /// One attempt at step 4: re-take the code's row lock; if this claim's result is already
    /// committed, that is success; otherwise tenant write + code `exchanged`, committed together.
    async fn apply(
        &self,
        claimed: &ClaimedAuthCode,
        exchanged: &Exchanged,
    ) -> Result<Stored, StoreError> {
        let mut tx = self.h.pool.begin().await?;
        let record = auth_codes::lock_auth_code(&mut tx, &claimed.hash).await?;
        if let Some(record) = record.filter(|r| r.state == AuthCodeState::Exchanged) {
            tx.commit().await?;
            if record.claim_id != Some(claimed.claim_id) {
                tracing::warn!(auth_code = %claimed.hash,
                    "AuthCode was exchanged under another claim as well; keeping the stored code");
            }
            return Ok(Stored::Earlier);
        }
        match self.code.kind {
            AuthCodeKind::CreateAuth => self.activate(&mut tx, exchanged).await?,
            AuthCodeKind::ResetPermanentCode => self.rotate(&mut tx, exchanged).await?,
        }
        let record = auth_codes::mark_auth_code_exchanged(
            &mut tx,
            &claimed.hash,
            &exchanged.corp_id,
            claimed.claim_id,
        )
        .await?;
        tx.commit().await?;
        if let Some(superseded) = &record.superseded_failure {
            tracing::warn!(auth_code = %claimed.hash, %superseded,
                "a failure recorded meanwhile was overridden: this worker holds the permanent code");
        }
        Ok(Stored::Now)
    }

    async fn activate(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        exchanged: &Exchanged,
    ) -> Result<(), StoreError> {
        let activation = Activation {
            suite_id: &self.suite.id,
            corp_id: &exchanged.corp_id,
            corp_name: exchanged.corp_name.as_deref(),
            agent_id: exchanged.agent_id,
            permanent_code: &exchanged.permanent_code,
            auth_info: exchanged.auth_info.as_ref(),
            state: exchanged.state.as_deref().or(self.code.state),
            event_time: self.code.wecom_time,
        };
        let transition = tenants::activate_tenant(tx, &self.h.secrets, &activation).await?;
        tracing::info!(
            corp_id = exchanged.corp_id.as_str(),
            outcome = ?transition.outcome,
            status = transition.tenant.status.as_str(),
            "create_auth applied"
        );
        Ok(())
    }

    /// reset_permanent_code: rotate the secret (dropping the cached corp token). A tenant this
    /// worker never saw active (its create_auth failed) is activated with the new secret; a
    /// revoked one keeps no secret.
    async fn rotate(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        exchanged: &Exchanged,
    ) -> Result<(), StoreError> {
        let existing = tenants::tenant(tx, &self.suite.id, &exchanged.corp_id).await?;
        match existing.map(|t| t.status) {
            None | Some(TenantStatus::Pending) => self.activate(tx, exchanged).await,
            Some(TenantStatus::Revoked) => {
                tracing::warn!(
                    corp_id = exchanged.corp_id.as_str(),
                    "reset_permanent_code for a revoked tenant: the new secret is not stored"
                );
                Ok(())
            }
            Some(TenantStatus::Active | TenantStatus::Suspended) => {
                let transition = tenants::rotate_permanent_code(
                    tx,
                    &self.h.secrets,
                    &self.suite.id,
                    &exchanged.corp_id,
                    &exchanged.permanent_code,
                    self.code.wecom_time,
                )
                .await?;
                tracing::info!(
                    corp_id = exchanged.corp_id.as_str(),
                    outcome = ?transition.outcome,
                    "permanent code rotated; cached corp token dropped"
                );
                Ok(())
            }
        }
    }

    /// Marks the code failed and reports it once; a code another claimant exchanged meanwhile
    /// is left as it is.
    async fn mark_failed(
        &self,
        hash: &AuthCodeHash,
        label: &'static str,
        reason: &str,
    ) -> Result<(), WorkerError> {
        let mut conn = self.h.connection("marking the AuthCode failed").await?;
        match auth_codes::mark_auth_code_failed(&mut conn, hash, reason).await {
            Ok(_) => {
                report_failure(self.h, self.code.kind, hash, label, reason);
                Ok(())
            }
            Err(error) if error.is_transient() => Err(error).doing("marking the AuthCode failed"),
            Err(error) => {
                tracing::info!(auth_code = %hash, %error, %reason,
                    "WeCom refused the AuthCode, which is settled already");
                Ok(())
            }
        }
    }

    /// Keeps a transient error on the code's row and gives the claim up.
    async fn record_transient(&self, hash: &AuthCodeHash, claim_id: Uuid, error: &str) {
        let recorded = async {
            let mut conn = self.h.pool.acquire().await?;
            auth_codes::record_auth_code_error(&mut conn, hash, claim_id, error).await
        }
        .await;
        if let Err(error) = recorded {
            tracing::warn!(auth_code = %hash, %error, "cannot record the exchange error");
        }
    }

    /// Step 5, on committed state and on every delivery: auth info for a tenant that has none
    /// yet (or, right after an exchange, a fresh read of it), then the `tenant.*` event.
    async fn complete(
        &self,
        message: &Message,
        hash: &AuthCodeHash,
        fresh: bool,
    ) -> Result<(), WorkerError> {
        let h = self.h;
        let mut conn = h.connection("reading the AuthCode").await?;
        let record = auth_codes::auth_code(&mut conn, hash)
            .await
            .doing("reading the AuthCode")?;
        let Some(corp_id) = record
            .filter(|r| r.state == AuthCodeState::Exchanged)
            .and_then(|r| r.corp_id)
        else {
            return Ok(());
        };
        let tenant = tenants::tenant(&mut conn, &self.suite.id, &corp_id)
            .await
            .doing("reading the tenant")?;
        let Some(tenant) = tenant.filter(|t| t.status == TenantStatus::Active) else {
            return Ok(());
        };
        if fresh || tenant.auth_info.is_none() {
            let code = tenants::permanent_code(&mut conn, &h.secrets, &self.suite.id, &corp_id)
                .await
                .doing("reading the permanent code")?;
            drop(conn);
            self.refresh_auth_info(&corp_id, &code).await?;
        }
        let event_for = match self.code.kind {
            AuthCodeKind::CreateAuth => notify::activated,
            AuthCodeKind::ResetPermanentCode => notify::changed_if_active,
        };
        notify::publish_committed(h, message, &self.suite.id, &corp_id, event_for).await
    }

    /// `get_auth_info` and store it. A transient failure retries the message (the redelivery
    /// finds the code exchanged and comes back here); a refusal is logged and the tenant keeps
    /// what it has (change_auth re-reads it later).
    async fn refresh_auth_info(
        &self,
        corp_id: &CorpId,
        code: &SecretString,
    ) -> Result<(), WorkerError> {
        let suite = self.suite;
        let answer = wecom_calls::auth_info(self.h, &suite.id, &suite.secret, corp_id, code).await;
        let info = match answer {
            Ok(info) => info,
            Err(source) => {
                let error = WorkerError::Token {
                    doing: "get_auth_info after the exchange",
                    source,
                };
                let decided = HandlerError::from(error);
                if matches!(decided, HandlerError::Permanent { .. }) {
                    tracing::warn!(%corp_id, reason = decided.reason(),
                        "get_auth_info refused after the exchange; the tenant keeps no auth info");
                    return Ok(());
                }
                return Err(decided.into());
            }
        };
        let value = serde_json::to_value(&info)
            .map_err(|e| HandlerError::permanent(format!("encoding auth info: {e}")))?;
        let update = tenants::AuthInfoUpdate {
            suite_id: &suite.id,
            corp_id,
            corp_name: info.auth_corp_info.corp_name.as_deref(),
            agent_id: info.auth_info.agent.first().map(|a| a.agentid),
            auth_info: &value,
        };
        let mut conn = self.h.connection("storing auth info").await?;
        match tenants::update_auth_info(&mut conn, &update).await {
            Ok(_) => Ok(()),
            // Revoked meanwhile: nothing to keep.
            Err(error) if !error.is_transient() => {
                tracing::info!(%corp_id, %error, "auth info not stored");
                Ok(())
            }
            Err(error) => Err(error).doing("storing auth info"),
        }
    }
}

/// A transient exchange failure, retried before the code expires: the retry comes no later than
/// halfway through the code's remaining life, so a second try still has time.
fn within_life(error: HandlerError, expires_at: chrono::DateTime<Utc>) -> HandlerError {
    let remaining = (expires_at - Utc::now()).to_std().unwrap_or_default();
    error.retry_before(remaining / 2)
}

/// What must be kept of either answer of the exchange; an unusable corp id or an empty
/// permanent code refuses it.
fn into_exchanged(answer: ExchangeAnswer) -> Result<Exchanged, String> {
    let (permanent_code, corp, state, agent_id, auth_info, api) = match answer {
        ExchangeAnswer::V2(a) => (
            a.permanent_code,
            a.auth_corp_info,
            a.state,
            None,
            None,
            "v2",
        ),
        ExchangeAnswer::V1(a) => {
            let agent_id = a.auth_info.agent.first().map(|agent| agent.agentid);
            // The auth info part of the v1 answer, without the secret fields.
            let info = AuthInfoResponse {
                dealer_corp_info: a.dealer_corp_info,
                auth_corp_info: a.auth_corp_info.clone(),
                auth_info: a.auth_info,
            };
            let info = serde_json::to_value(&info).ok();
            (
                a.permanent_code,
                a.auth_corp_info,
                a.state,
                agent_id,
                info,
                "v1",
            )
        }
    };
    let corp_id = CorpId::parse(corp.corpid)
        .map_err(|e| format!("the exchange answered an unusable corp id: {e}"))?;
    if permanent_code.is_empty() {
        return Err("the exchange answered an empty permanent code".to_owned());
    }
    Ok(Exchanged {
        corp_id,
        corp_name: corp.corp_name,
        agent_id,
        permanent_code: SecretString::from(permanent_code),
        state,
        auth_info,
        api,
    })
}

/// What a failed exchange call means for the code.
fn classify_call(err: &ApiError) -> Exchange {
    if err.code() == Some(40078) {
        return Exchange::Refused {
            label: "burnt",
            reason: format!(
                "40078: WeCom refused the AuthCode (already used, expired or unknown): {err}"
            ),
        };
    }
    match err.class() {
        ErrorClass::Retryable | ErrorClass::TokenExpired(_) => Exchange::Transient(
            HandlerError::transient(format!("get_permanent_code failed: {err}")),
        ),
        ErrorClass::RateLimited { retry_after } => {
            Exchange::Transient(HandlerError::transient_after(
                format!("get_permanent_code rate-limited: {err}"),
                retry_after,
            ))
        }
        ErrorClass::TenantBroken | ErrorClass::Permanent => Exchange::Refused {
            label: "refused",
            reason: format!("get_permanent_code refused: {err}"),
        },
    }
}

/// One error line and one metric per failed code.
fn report_failure(
    h: &AuthHandler,
    kind: AuthCodeKind,
    hash: &AuthCodeHash,
    label: &'static str,
    reason: &str,
) {
    h.metrics
        .auth_code_failures
        .with_label_values(&[kind.as_str(), label])
        .inc();
    tracing::error!(
        auth_code = %hash,
        kind = kind.as_str(),
        failure = label,
        %reason,
        "AuthCode failed: the corp needs to re-authorize, or the provider to reset the app's \
         secret (重新获取secret)"
    );
}

fn expired_reason(record: &auth_codes::AuthCodeRecord) -> String {
    record
        .failure_reason
        .clone()
        .unwrap_or_else(|| auth_codes::EXPIRED_REASON.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use wecom::api::{PermanentCodeV1, PermanentCodeV2};

    #[test]
    fn a_burnt_code_is_refused_not_retried() {
        let burnt = classify_call(&ApiError::wecom(40078, "invalid auth_code"));
        assert!(matches!(burnt, Exchange::Refused { label: "burnt", .. }));
        let busy = classify_call(&ApiError::wecom(-1, "system busy"));
        assert!(matches!(
            busy,
            Exchange::Transient(HandlerError::Transient { .. })
        ));
        let limited = classify_call(&ApiError::wecom(45009, "freq"));
        assert!(matches!(
            limited,
            Exchange::Transient(HandlerError::Transient {
                retry_after: Some(_),
                ..
            })
        ));
        let refused = classify_call(&ApiError::wecom(60020, "ip not allowed"));
        assert!(matches!(
            refused,
            Exchange::Refused {
                label: "refused",
                ..
            }
        ));
    }

    #[test]
    fn v1_answers_keep_the_agent_and_drop_the_secret_from_auth_info() {
        let v1: PermanentCodeV1 = serde_json::from_value(serde_json::json!({
            "permanent_code": "PERM-SECRET",
            "auth_corp_info": {"corpid": "wwcorp", "corp_name": "Acme"},
            "auth_info": {"agent": [{"agentid": 1_000_002}]},
            "state": "s1"
        }))
        .unwrap();
        let exchanged = into_exchanged(ExchangeAnswer::V1(v1)).unwrap();
        assert_eq!(exchanged.corp_id.as_str(), "wwcorp");
        assert_eq!(exchanged.agent_id, Some(1_000_002));
        assert_eq!(exchanged.api, "v1");
        assert_eq!(exchanged.permanent_code.expose_secret(), "PERM-SECRET");
        let info = exchanged.auth_info.unwrap().to_string();
        assert!(
            info.contains("wwcorp") && !info.contains("PERM-SECRET"),
            "{info}"
        );
    }

    #[test]
    fn an_answer_without_a_corp_is_refused() {
        let v2: PermanentCodeV2 = serde_json::from_value(serde_json::json!({
            "permanent_code": "x",
            "auth_corp_info": {"corpid": ""}
        }))
        .unwrap();
        assert!(into_exchanged(ExchangeAnswer::V2(v2)).is_err());
    }
}
