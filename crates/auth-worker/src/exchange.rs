//! `create_auth` and `reset_permanent_code`: the single-use AuthCode → permanent code exchange
//! (ARCHITECTURE §4.5, PITFALLS 10).
//!
//! 1. The AuthCode is persisted on arrival (`auth_codes`, sealed), committed on its own, so it
//!    is never silently lost whatever happens next.
//! 2. In the message's transaction: the inbox row, then the code's row lock
//!    (`claim_auth_code`). A duplicate — same push again, or the same code on another replica —
//!    waits on one of those and then finds the code `exchanged` or `failed`: **one exchange**.
//! 3. `get_permanent_code` v2 (falling back to v1 when v2 is unavailable), then `get_auth_info`
//!    for the agent id, corp name and scope; the tenant is activated (create_auth) or its secret
//!    rotated (reset_permanent_code, which also drops the cached corp token); the code is marked
//!    `exchanged`; commit.
//! 4. Outcomes of the exchange call:
//!    - 40078 (burnt or unknown code) or any other refusal: the code is marked `failed` with
//!      the reason, one error line and a metric, and the message is acked — no retry loop;
//!    - transient (`-1`, timeouts, rate limits, no suite token yet): retried inline a few times,
//!      then the message goes back through the retry queues; every retry re-checks the code's
//!      10-minute life, and once it is past, the code is marked `failed` (`expired`) instead.
//!      The sweeper reports codes that expire while their message waits.
//!
//! Once WeCom has answered with a permanent code, the code is burnt: that answer must reach the
//! database. Auth info is therefore best effort (the tenant is activated without it rather than
//! lost), and a failed commit is retried on fresh transactions before giving up.
//!
//! Neither the AuthCode nor the permanent code is ever logged: log lines carry the code's hash
//! prefix (`AuthCodeHash`), and the secrets travel as `SecretString`.

use std::time::Duration;

use bus::TenantEvent;
use bus::consumer::{HandlerError, Message};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sqlx::{Postgres, Transaction};
use store::auth_codes::{
    self, AuthCodeHash, AuthCodeKind, AuthCodeState, Claim, ClaimedAuthCode, NewAuthCode,
};
use store::tenants::{self, Activation, TenantStatus};
use store::{CorpId, StoreError, SuiteId, TokenError};
use wecom::api::{ApiError, AuthInfoResponse, ErrorClass, PermanentCodeV1, PermanentCodeV2};
use wecom::event::{CreateAuth, ResetPermanentCode};

use crate::handler::{AuthHandler, commit, retry_busy, store_error, v2_unavailable};
use crate::notify;

/// Attempts at storing an exchanged permanent code (fresh transaction each) before giving up.
const STORE_ATTEMPTS: u32 = 4;

/// A create_auth: exchange the code and activate the tenant.
pub(crate) async fn create_auth(
    h: &AuthHandler,
    message: &Message,
    event: &CreateAuth,
) -> Result<(), HandlerError> {
    let code = Code {
        kind: AuthCodeKind::CreateAuth,
        value: &event.auth_code,
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
) -> Result<(), HandlerError> {
    let code = Code {
        kind: AuthCodeKind::ResetPermanentCode,
        value: &event.auth_code,
        suite_id: &event.suite_id,
        wecom_time: event.timestamp,
        state: None,
    };
    run(h, message, &code).await
}

/// The AuthCode event, whichever kind.
struct Code<'a> {
    kind: AuthCodeKind,
    value: &'a str,
    suite_id: &'a str,
    wecom_time: i64,
    state: Option<&'a str>,
}

/// What an exchange answered, v1 or v2, plus the auth info read afterwards.
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

async fn run(h: &AuthHandler, message: &Message, code: &Code<'_>) -> Result<(), HandlerError> {
    let (suite_id, suite_secret) = h.suite(code.suite_id)?;
    let hash = AuthCodeHash::of(code.value);
    persist_on_arrival(h, message, code, &suite_id).await?;

    let mut tx = h.begin().await?;
    if h.first_delivery(&mut tx, message).await? {
        let claim = auth_codes::claim_auth_code(&mut tx, &h.secrets, &hash)
            .await
            .map_err(|e| store_error("claiming the AuthCode", e))?;
        match claim {
            Claim::Ready(claimed) => {
                let ctx = Ctx {
                    h,
                    message,
                    code,
                    suite_id: &suite_id,
                    suite_secret: &suite_secret,
                };
                return ctx.exchange_claimed(tx, claimed).await;
            }
            Claim::Expired(record) => {
                commit(tx).await?;
                report_failure(h, code.kind, &hash, "expired", &expired_reason(&record));
            }
            Claim::AlreadyExchanged { corp_id } => {
                commit(tx).await?;
                tracing::info!(auth_code = %hash, corp_id = ?corp_id.as_ref().map(CorpId::as_str),
                    "AuthCode already exchanged: nothing to do");
            }
            Claim::AlreadyFailed { reason } => {
                commit(tx).await?;
                tracing::info!(auth_code = %hash, %reason, "AuthCode already failed: nothing to do");
            }
            Claim::NotFound => {
                return Err(HandlerError::transient(format!(
                    "AuthCode {hash} was recorded but is not found"
                )));
            }
        }
    } else {
        commit(tx).await?;
    }
    notify_after(h, message, code.kind, &suite_id, &hash).await
}

/// Step 1: the code is in `auth_codes` before anything else is tried.
async fn persist_on_arrival(
    h: &AuthHandler,
    message: &Message,
    code: &Code<'_>,
    suite_id: &SuiteId,
) -> Result<(), HandlerError> {
    let mut conn = h
        .pool
        .acquire()
        .await
        .map_err(|e| store_error("recording the AuthCode", e))?;
    let new = NewAuthCode {
        suite_id,
        kind: code.kind,
        code: code.value,
        wecom_time: code.wecom_time,
        received_at: message.envelope.received_at,
    };
    let (record, created) = auth_codes::record_auth_code(&mut conn, &h.secrets, &new)
        .await
        .map_err(|e| store_error("recording the AuthCode", e))?;
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
    message: &'a Message,
    code: &'a Code<'a>,
    suite_id: &'a SuiteId,
    suite_secret: &'a SecretString,
}

impl Ctx<'_> {
    /// Steps 3–4, with the code's row locked by `tx`.
    async fn exchange_claimed(
        &self,
        mut tx: Transaction<'static, Postgres>,
        claimed: ClaimedAuthCode,
    ) -> Result<(), HandlerError> {
        let h = self.h;
        let hash = claimed.hash;
        match self.exchange(&claimed.code).await {
            Exchange::Done(exchanged) => {
                let exchanged = self.with_auth_info(*exchanged).await;
                self.store(tx, &hash, &exchanged).await?;
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
                    "AuthCode exchanged; permanent code stored"
                );
            }
            Exchange::Refused { label, reason } => {
                auth_codes::mark_auth_code_failed(&mut tx, &hash, &reason)
                    .await
                    .map_err(|e| store_error("marking the AuthCode failed", e))?;
                commit(tx).await?;
                report_failure(h, self.code.kind, &hash, label, &reason);
            }
            Exchange::Transient(error) => {
                // Roll back the inbox row (the message will come back) and keep the error.
                drop(tx.rollback().await);
                self.record_transient(&hash, error.reason()).await;
                tracing::warn!(
                    auth_code = %hash,
                    attempt = claimed.attempt,
                    expires_at = %claimed.expires_at,
                    reason = error.reason(),
                    "AuthCode exchange failed transiently; will retry while the code is valid"
                );
                return Err(error);
            }
        }
        notify_after(h, self.message, self.code.kind, self.suite_id, &hash).await
    }

    /// The exchange call: v2, or v1 when v2 is unavailable, each retried inline while WeCom is
    /// busy; with the suite token (refreshed once if WeCom says it is stale).
    async fn exchange(&self, code: &SecretString) -> Exchange {
        let client = self.h.client().clone();
        let answer = self
            .h
            .tokens
            .with_suite_token(self.suite_id, self.suite_secret, |token| {
                let client = client.clone();
                let code = code.clone();
                async move {
                    let v2 = retry_busy(|| {
                        client.get_permanent_code_v2(token.expose(), code.expose_secret())
                    })
                    .await;
                    match v2 {
                        Err(err) if v2_unavailable(&err) => {
                            tracing::info!(error = %err, "get_permanent_code v2 unavailable; using v1");
                            retry_busy(|| {
                                client.get_permanent_code(token.expose(), code.expose_secret())
                            })
                            .await
                            .map(Answer::V1)
                        }
                        other => other.map(Answer::V2),
                    }
                }
            })
            .await;
        match answer {
            Ok(answer) => match answer.into_exchanged() {
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

    /// Adds `get_auth_info` (agent id, corp name, scope). Best effort: the permanent code is
    /// already burnt, so a failure here must not lose it; the tenant is stored without auth
    /// info and change_auth re-reads it later.
    async fn with_auth_info(&self, mut exchanged: Exchanged) -> Exchanged {
        match auth_info(
            self.h,
            self.suite_id,
            self.suite_secret,
            &exchanged.corp_id,
            &exchanged.permanent_code,
        )
        .await
        {
            Ok(info) => {
                if let Some(agent) = info.auth_info.agent.first() {
                    exchanged.agent_id = Some(agent.agentid);
                }
                if info.auth_corp_info.corp_name.is_some() {
                    exchanged
                        .corp_name
                        .clone_from(&info.auth_corp_info.corp_name);
                }
                exchanged.auth_info = serde_json::to_value(&info).ok();
            }
            Err(err) => tracing::warn!(
                corp_id = exchanged.corp_id.as_str(),
                error = %err,
                "get_auth_info failed after the exchange; storing the tenant without auth info"
            ),
        }
        exchanged
    }

    /// Writes the exchange's result: in `tx` first, then on fresh transactions if that fails.
    async fn store(
        &self,
        tx: Transaction<'static, Postgres>,
        hash: &AuthCodeHash,
        exchanged: &Exchanged,
    ) -> Result<(), HandlerError> {
        let mut tx = Some(tx);
        let mut pause = Duration::from_millis(250);
        let mut last_error = None;
        for attempt in 1..=STORE_ATTEMPTS {
            let result = match tx.take() {
                Some(tx) => self.apply(tx, hash, exchanged).await,
                None => self.apply_fresh(hash, exchanged).await,
            };
            match result {
                Ok(()) => return Ok(()),
                Err(error) if !error.is_transient() => {
                    last_error = Some(error);
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, attempt, "storing the exchanged permanent code failed; retrying");
                    last_error = Some(error);
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
        let error = last_error.map_or_else(|| "unknown error".to_owned(), |e| e.to_string());
        tracing::error!(
            auth_code = %hash,
            corp_id = exchanged.corp_id.as_str(),
            %error,
            "the permanent code was obtained but could not be stored; the AuthCode is used up: \
             reset the secret of this corp's app in the provider console (重新获取secret)"
        );
        Err(HandlerError::transient(format!(
            "storing the exchanged permanent code failed: {error}"
        )))
    }

    /// A fresh transaction: the inbox row again (unless a duplicate got there first), then the
    /// writes.
    async fn apply_fresh(
        &self,
        hash: &AuthCodeHash,
        exchanged: &Exchanged,
    ) -> Result<(), StoreError> {
        let mut tx = self.h.pool.begin().await?;
        store::inbox::record(
            &mut tx,
            crate::handler::CONSUMER,
            self.message.envelope.dedupe_key.as_str(),
        )
        .await?;
        self.apply(tx, hash, exchanged).await
    }

    /// Tenant write + code `exchanged`, committed together.
    async fn apply(
        &self,
        mut tx: Transaction<'static, Postgres>,
        hash: &AuthCodeHash,
        exchanged: &Exchanged,
    ) -> Result<(), StoreError> {
        match self.code.kind {
            AuthCodeKind::CreateAuth => self.activate(&mut tx, exchanged).await?,
            AuthCodeKind::ResetPermanentCode => self.rotate(&mut tx, exchanged).await?,
        }
        auth_codes::mark_auth_code_exchanged(&mut tx, hash, &exchanged.corp_id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn activate(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        exchanged: &Exchanged,
    ) -> Result<(), StoreError> {
        let activation = Activation {
            suite_id: self.suite_id,
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
            "tenant activated"
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
        let existing = tenants::tenant(tx, self.suite_id, &exchanged.corp_id).await?;
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
                    self.suite_id,
                    &exchanged.corp_id,
                    &exchanged.permanent_code,
                    self.code.wecom_time,
                )
                .await?;
                if let Some(info) = &exchanged.auth_info {
                    let update = tenants::AuthInfoUpdate {
                        suite_id: self.suite_id,
                        corp_id: &exchanged.corp_id,
                        corp_name: exchanged.corp_name.as_deref(),
                        agent_id: exchanged.agent_id,
                        auth_info: info,
                    };
                    tenants::update_auth_info(tx, &update).await?;
                }
                tracing::info!(
                    corp_id = exchanged.corp_id.as_str(),
                    outcome = ?transition.outcome,
                    "permanent code rotated; cached corp token dropped"
                );
                Ok(())
            }
        }
    }

    /// Keeps a transient error on the code's row, outside the rolled-back transaction.
    async fn record_transient(&self, hash: &AuthCodeHash, error: &str) {
        let recorded = async {
            let mut conn = self.h.pool.acquire().await?;
            auth_codes::record_auth_code_error(&mut conn, hash, error).await
        }
        .await;
        if let Err(error) = recorded {
            tracing::warn!(auth_code = %hash, %error, "cannot record the exchange error");
        }
    }
}

/// Either answer of the exchange.
enum Answer {
    V1(PermanentCodeV1),
    V2(PermanentCodeV2),
}

impl Answer {
    fn into_exchanged(self) -> Result<Exchanged, String> {
        let (permanent_code, corp, state, agent_id, auth_info, api) = match self {
            Self::V2(a) => (
                a.permanent_code,
                a.auth_corp_info,
                a.state,
                None,
                None,
                "v2",
            ),
            Self::V1(a) => {
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

/// `get_auth_info` v2, or v1 when v2 is unavailable, with the suite token.
pub(crate) async fn auth_info(
    h: &AuthHandler,
    suite_id: &SuiteId,
    suite_secret: &SecretString,
    corp_id: &CorpId,
    permanent_code: &SecretString,
) -> Result<AuthInfoResponse, TokenError> {
    let client = h.client().clone();
    h.tokens
        .with_suite_token(suite_id, suite_secret, |token| {
            let client = client.clone();
            let code = permanent_code.clone();
            async move {
                let corp = corp_id.as_str();
                let v2 = retry_busy(|| {
                    client.get_auth_info_v2(token.expose(), corp, code.expose_secret())
                })
                .await;
                match v2 {
                    Err(err) if v2_unavailable(&err) => {
                        retry_busy(|| {
                            client.get_auth_info(token.expose(), corp, code.expose_secret())
                        })
                        .await
                    }
                    other => other,
                }
            }
        })
        .await
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

/// After the transaction: publish what the committed state says (see `notify`).
async fn notify_after(
    h: &AuthHandler,
    message: &Message,
    kind: AuthCodeKind,
    suite_id: &SuiteId,
    hash: &AuthCodeHash,
) -> Result<(), HandlerError> {
    let mut conn = h
        .pool
        .acquire()
        .await
        .map_err(|e| store_error("reading the AuthCode", e))?;
    let record = auth_codes::auth_code(&mut conn, hash)
        .await
        .map_err(|e| store_error("reading the AuthCode", e))?;
    let Some(corp_id) = record
        .filter(|r| r.state == AuthCodeState::Exchanged)
        .and_then(|r| r.corp_id)
    else {
        return Ok(());
    };
    let tenant = tenants::tenant(&mut conn, suite_id, &corp_id)
        .await
        .map_err(|e| store_error("reading the tenant", e))?;
    drop(conn);
    let Some(tenant) = tenant.filter(|t| t.status == TenantStatus::Active) else {
        return Ok(());
    };
    let event = match kind {
        AuthCodeKind::CreateAuth => TenantEvent::Activated(notify::tenant(&tenant)),
        AuthCodeKind::ResetPermanentCode => TenantEvent::Changed(notify::tenant(&tenant)),
    };
    notify::publish(h, message, event).await
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let exchanged = Answer::V1(v1).into_exchanged().unwrap();
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
        assert!(Answer::V2(v2).into_exchanged().is_err());
    }
}
