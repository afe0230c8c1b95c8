//! `change_auth` and `cancel_auth`: the rest of a tenant's lifecycle.
//!
//! - change_auth: the visibility scope, the permissions or the app's enablement changed. The
//!   auth info is re-read (`get_auth_info`) and stored; whether the app is usable is asked of
//!   WeCom itself (`agent/get` with the app's token: `close = 1`, or a refusal such as 50003
//!   app disabled / 40084 / 48004, means disabled) and the tenant moves to `suspended` or back
//!   to `active`. `internal.tenant.changed` is published so contact-sync resyncs the scope.
//! - cancel_auth: the corp removed the app. The tenant becomes `revoked`, its permanent code and
//!   cached corp token are deleted in the same statement (WeCom requires providers to delete a
//!   corp's data), and `internal.tenant.revoked` is published so contact-sync purges the
//!   directory. No WeCom call is made.
//!
//! Both are ordered by WeCom's `TimeStamp` in the store (an older event never overrides a newer
//! one), so replicas may take them in any order. Within one second revocation wins: a tenant
//! revoked at second T is re-activated only by a create_auth of a later second.
//!
//! The inbox guards cancel_auth only (revoking twice is harmless anyway). change_auth runs on
//! every delivery, duplicates included: its effect settles to WeCom's current state, and two
//! distinct pushes can carry identical text (so identical dedupe keys).

use bus::TenantEvent;
use bus::consumer::{HandlerError, Message};
use secrecy::{ExposeSecret, SecretString};
use store::tenants::{self, AuthInfoUpdate, TenantStatus};
use store::{CorpId, SuiteId, TokenError};
use wecom::api::ErrorClass;
use wecom::event::{CancelAuth, ChangeAuth};

use crate::exchange::auth_info;
use crate::handler::{AuthHandler, commit, corp_id, retry_busy, store_error, token_error};
use crate::notify;

/// change_auth: re-read auth info, follow the app's enablement, publish `tenant.changed`.
pub(crate) async fn change_auth(
    h: &AuthHandler,
    message: &Message,
    event: &ChangeAuth,
) -> Result<(), HandlerError> {
    let (suite_id, suite_secret) = h.suite(&event.suite_id)?;
    let corp_id = corp_id(&event.auth_corp_id)?;
    let mut tx = h.begin().await?;
    // Not guarded by the inbox: change_auth settles the tenant to what WeCom says *now*, so a
    // duplicate runs again — and so does a distinct push with the same text (the app disabled
    // and enabled within one second sends two identical change_auth pushes).
    h.first_delivery(&mut tx, message).await?;
    {
        let tenant = tenants::tenant(&mut tx, &suite_id, &corp_id)
            .await
            .map_err(|e| store_error("reading the tenant", e))?;
        let Some(tenant) = tenant else {
            // Its create_auth may still be exchanging on another replica: try again later
            // (after the last attempt the message is dead-lettered, visibly).
            return Err(HandlerError::transient(format!(
                "change_auth for unknown tenant {suite_id}/{corp_id}"
            )));
        };
        match tenant.status {
            TenantStatus::Revoked => {
                tracing::info!(%corp_id, "change_auth for a revoked tenant: ignored");
            }
            TenantStatus::Pending => {
                return Err(HandlerError::transient(format!(
                    "change_auth for tenant {suite_id}/{corp_id} that has no secret yet"
                )));
            }
            TenantStatus::Active | TenantStatus::Suspended => {
                let code = tenants::permanent_code(&mut tx, &h.secrets, &suite_id, &corp_id)
                    .await
                    .map_err(|e| store_error("reading the permanent code", e))?;
                let ids = Ids {
                    suite_id: &suite_id,
                    suite_secret: &suite_secret,
                    corp_id: &corp_id,
                };
                let target = reread(h, &mut tx, &ids, &code, tenant.status).await?;
                if let Some(status) = target {
                    let transition = tenants::set_tenant_status(
                        &mut tx,
                        &suite_id,
                        &corp_id,
                        status,
                        event.timestamp,
                    )
                    .await
                    .map_err(|e| store_error("changing the tenant status", e))?;
                    tracing::info!(
                        %corp_id,
                        status = status.as_str(),
                        outcome = ?transition.outcome,
                        "change_auth applied"
                    );
                }
            }
        }
    }
    commit(tx).await?;
    notify_current(h, message, &suite_id, &corp_id, |status| {
        matches!(status, TenantStatus::Active | TenantStatus::Suspended)
    })
    .await
}

/// cancel_auth: revoke, delete the secret and tokens, publish `tenant.revoked`.
pub(crate) async fn cancel_auth(
    h: &AuthHandler,
    message: &Message,
    event: &CancelAuth,
) -> Result<(), HandlerError> {
    let (suite_id, _) = h.suite(&event.suite_id)?;
    let corp_id = corp_id(&event.auth_corp_id)?;
    let mut tx = h.begin().await?;
    if h.first_delivery(&mut tx, message).await? {
        let transition = tenants::revoke_tenant(&mut tx, &suite_id, &corp_id, event.timestamp)
            .await
            .map_err(|e| store_error("revoking the tenant", e))?;
        tracing::info!(
            %corp_id,
            outcome = ?transition.outcome,
            "cancel_auth applied: tenant revoked, permanent code and corp token deleted"
        );
    }
    commit(tx).await?;
    notify_current(h, message, &suite_id, &corp_id, |status| {
        status == TenantStatus::Revoked
    })
    .await
}

struct Ids<'a> {
    suite_id: &'a SuiteId,
    suite_secret: &'a SecretString,
    corp_id: &'a CorpId,
}

/// Re-reads and stores the auth info, then decides the status the app's enablement implies
/// (`None`: cannot tell, keep the current one).
async fn reread(
    h: &AuthHandler,
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    ids: &Ids<'_>,
    code: &SecretString,
    current: TenantStatus,
) -> Result<Option<TenantStatus>, HandlerError> {
    let info = match auth_info(h, ids.suite_id, ids.suite_secret, ids.corp_id, code).await {
        Ok(info) => info,
        Err(err) if refuses_tenant(&err) => {
            tracing::warn!(corp_id = %ids.corp_id, error = %err, "WeCom refuses the tenant's secret");
            return Ok(Some(TenantStatus::Suspended));
        }
        Err(err) => return Err(token_error("get_auth_info", &err)),
    };
    let agent_id = info.auth_info.agent.first().map(|a| a.agentid);
    // Every WeCom call before the first write to the tenant row: the token service locks that
    // row in its own transaction to refresh the corp token, and would wait for ours.
    let enabled = match agent_id {
        Some(agent_id) => app_enabled(h, ids, code, agent_id, current).await?,
        None => None,
    };
    let value = serde_json::to_value(&info)
        .map_err(|e| HandlerError::permanent(format!("encoding auth info: {e}")))?;
    let update = AuthInfoUpdate {
        suite_id: ids.suite_id,
        corp_id: ids.corp_id,
        corp_name: info.auth_corp_info.corp_name.as_deref(),
        agent_id,
        auth_info: &value,
    };
    tenants::update_auth_info(tx, &update)
        .await
        .map_err(|e| store_error("storing auth info", e))?;
    Ok(enabled.map(|on| {
        if on {
            TenantStatus::Active
        } else {
            TenantStatus::Suspended
        }
    }))
}

/// Asks WeCom whether the app works: `agent/get` with the app's token. An active tenant goes
/// through the token service (cached token, one refresh across replicas); a suspended one gets
/// no token from it, so its secret is tried directly with `gettoken`.
async fn app_enabled(
    h: &AuthHandler,
    ids: &Ids<'_>,
    code: &SecretString,
    agent_id: i64,
    current: TenantStatus,
) -> Result<Option<bool>, HandlerError> {
    let client = h.client().clone();
    let agent = if current == TenantStatus::Active {
        h.tokens
            .with_corp_token(ids.suite_id, ids.corp_id, |token| {
                let client = client.clone();
                async move { retry_busy(|| client.agent_get(token.expose(), agent_id)).await }
            })
            .await
    } else {
        let token = retry_busy(|| client.get_token(ids.corp_id.as_str(), code.expose_secret()))
            .await
            .map_err(|source| TokenError::Fetch {
                kind: "corp",
                source,
            });
        match token {
            Ok(token) => retry_busy(|| client.agent_get(&token.access_token, agent_id))
                .await
                .map_err(TokenError::Call),
            Err(err) => Err(err),
        }
    };
    match agent {
        Ok(agent) => Ok(Some(agent.close != Some(1))),
        Err(err) if refuses_tenant(&err) => {
            tracing::info!(corp_id = %ids.corp_id, error = %err, "the app is not usable");
            Ok(Some(false))
        }
        Err(err) if err.class() == ErrorClass::Permanent => {
            tracing::warn!(corp_id = %ids.corp_id, error = %err, "cannot tell whether the app is enabled");
            Ok(None)
        }
        Err(err) => Err(token_error("checking the app", &err)),
    }
}

/// WeCom refuses the tenant (app disabled, secret replaced, authorization gone).
fn refuses_tenant(err: &TokenError) -> bool {
    err.api_error()
        .is_some_and(|api| api.class() == ErrorClass::TenantBroken)
}

/// Publishes `tenant.changed` / `tenant.revoked` when the committed tenant is in a status
/// `wanted` accepts (see `notify` for why this runs on duplicates too).
async fn notify_current(
    h: &AuthHandler,
    message: &Message,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    wanted: impl Fn(TenantStatus) -> bool,
) -> Result<(), HandlerError> {
    let mut conn = h
        .pool
        .acquire()
        .await
        .map_err(|e| store_error("reading the tenant", e))?;
    let tenant = tenants::tenant(&mut conn, suite_id, corp_id)
        .await
        .map_err(|e| store_error("reading the tenant", e))?;
    drop(conn);
    let Some(tenant) = tenant.filter(|t| wanted(t.status)) else {
        return Ok(());
    };
    let event = if tenant.status == TenantStatus::Revoked {
        TenantEvent::Revoked(notify::tenant(&tenant))
    } else {
        TenantEvent::Changed(notify::tenant(&tenant))
    };
    notify::publish(h, message, event).await
}
