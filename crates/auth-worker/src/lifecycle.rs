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

use bus::consumer::{HandlerError, Message};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{Postgres, Transaction};
use store::CorpId;
use store::tenants::{self, AuthInfoUpdate, TenantStatus};
use tokens::TokenError;
use wecom::api::{AuthInfoResponse, ErrorClass};
use wecom::event::{CancelAuth, ChangeAuth};
use wecom::ids::AgentId;

use crate::error::{Doing, WorkerError};
use crate::notify;
use crate::state::{AuthHandler, Suite, first_delivery};
use crate::wecom_calls;

/// change_auth: re-read auth info, follow the app's enablement, publish `tenant.changed`.
pub(crate) async fn change_auth(
    h: &AuthHandler,
    message: &Message,
    event: &ChangeAuth,
) -> Result<(), WorkerError> {
    let suite = h.suite(&event.suite_id)?;
    let corp_id = event.auth_corp_id.clone();
    let mut tx = h.begin().await?;
    // Not guarded by the inbox: change_auth settles the tenant to what WeCom says *now*, so a
    // duplicate runs again — and so does a distinct push with the same text (the app disabled
    // and enabled within one second sends two identical change_auth pushes).
    first_delivery(&mut tx, message).await?;
    let tenant = tenants::tenant(&mut tx, &suite.id, &corp_id)
        .await
        .doing("reading the tenant")?;
    let Some(tenant) = tenant else {
        // Its create_auth may still be exchanging on another replica: try again later (after
        // the last attempt the message is dead-lettered, visibly).
        return Err(HandlerError::transient(format!(
            "change_auth for unknown tenant {}/{corp_id}",
            suite.id
        ))
        .into());
    };
    match tenant.status {
        TenantStatus::Revoked => {
            tracing::info!(%corp_id, "change_auth for a revoked tenant: ignored");
        }
        TenantStatus::Pending => {
            return Err(HandlerError::transient(format!(
                "change_auth for tenant {}/{corp_id} that has no secret yet",
                suite.id
            ))
            .into());
        }
        TenantStatus::Active | TenantStatus::Suspended => {
            let tenant = Tenant {
                suite: &suite,
                corp_id: &corp_id,
                current: tenant.status,
            };
            tenant.settle(h, &mut tx, event.timestamp).await?;
        }
    }
    tx.commit().await.doing("committing the change_auth")?;
    notify::publish_committed(h, message, &suite.id, &corp_id, notify::changed).await
}

/// cancel_auth: revoke, delete the secret and tokens, publish `tenant.revoked`.
pub(crate) async fn cancel_auth(
    h: &AuthHandler,
    message: &Message,
    event: &CancelAuth,
) -> Result<(), WorkerError> {
    let suite = h.suite(&event.suite_id)?;
    let corp_id = event.auth_corp_id.clone();
    let mut tx = h.begin().await?;
    if first_delivery(&mut tx, message).await? {
        let transition = tenants::revoke_tenant(&mut tx, &suite.id, &corp_id, event.timestamp)
            .await
            .doing("revoking the tenant")?;
        tracing::info!(
            %corp_id,
            outcome = ?transition.outcome,
            "cancel_auth applied: tenant revoked, permanent code and corp token deleted"
        );
    }
    tx.commit().await.doing("committing the cancel_auth")?;
    notify::publish_committed(h, message, &suite.id, &corp_id, notify::revoked).await
}

/// What WeCom said about a tenant.
struct Reading {
    info: Option<AuthInfoResponse>,
    status: Option<TenantStatus>,
}

/// An active or suspended tenant whose change_auth is being applied.
struct Tenant<'a> {
    suite: &'a Suite,
    corp_id: &'a CorpId,
    current: TenantStatus,
}

impl Tenant<'_> {
    /// Re-reads and stores the auth info, then moves the tenant to the status the app's
    /// enablement implies (unchanged when that cannot be told).
    async fn settle(
        &self,
        h: &AuthHandler,
        tx: &mut Transaction<'static, Postgres>,
        event_time: i64,
    ) -> Result<(), WorkerError> {
        let code = tenants::permanent_code(tx, &h.secrets, &self.suite.id, self.corp_id)
            .await
            .doing("reading the permanent code")?;
        // Every WeCom call before the first write to the tenant row: the token service locks
        // that row in its own transaction to refresh the corp token, and would wait for ours.
        let reading = self.ask_wecom(h, &code).await?;
        self.check_secret_unchanged(h, tx, &code).await?;
        if let Some(info) = &reading.info {
            self.store_auth_info(tx, info).await?;
        }
        let Some(status) = reading.status else {
            return Ok(());
        };
        let transition =
            tenants::set_tenant_status(tx, &self.suite.id, self.corp_id, status, event_time)
                .await
                .doing("changing the tenant status")?;
        tracing::info!(
            corp_id = %self.corp_id,
            status = status.as_str(),
            outcome = ?transition.outcome,
            "change_auth applied"
        );
        Ok(())
    }

    /// What WeCom says now: the auth info, and the status the app's enablement implies
    /// (`None`: cannot tell, keep the current one).
    async fn ask_wecom(
        &self,
        h: &AuthHandler,
        code: &SecretString,
    ) -> Result<Reading, WorkerError> {
        let suite = self.suite;
        let info =
            match wecom_calls::auth_info(h, &suite.id, &suite.secret, self.corp_id, code).await {
                Ok(info) => info,
                Err(err) if refuses_tenant(&err) => {
                    tracing::warn!(corp_id = %self.corp_id, error = %err,
                        "WeCom refuses the tenant's secret");
                    return Ok(Reading {
                        info: None,
                        status: Some(TenantStatus::Suspended),
                    });
                }
                Err(source) => {
                    return Err(WorkerError::Token {
                        doing: "get_auth_info",
                        source,
                    });
                }
            };
        // An agentid that is no valid one cannot be asked about: as if there were none.
        let agent_id = info
            .auth_info
            .agent
            .first()
            .and_then(|a| AgentId::new(a.agentid).ok());
        let enabled = match agent_id {
            Some(agent_id) => self.app_enabled(h, code, agent_id).await?,
            None => None,
        };
        let status = enabled.map(|on| {
            if on {
                TenantStatus::Active
            } else {
                TenantStatus::Suspended
            }
        });
        Ok(Reading {
            info: Some(info),
            status,
        })
    }

    /// Takes the tenant's row lock (after the WeCom calls, so no HTTP call waits under it) and
    /// checks the secret WeCom was asked with is still the tenant's: a reset_permanent_code
    /// committed meanwhile would make WeCom refuse the old secret, and that refusal must not
    /// suspend the tenant. The message is retried with the new secret.
    async fn check_secret_unchanged(
        &self,
        h: &AuthHandler,
        tx: &mut Transaction<'static, Postgres>,
        asked_with: &SecretString,
    ) -> Result<(), WorkerError> {
        let locked = store::corp_tokens::lock_tenant(tx, &self.suite.id, self.corp_id)
            .await
            .doing("locking the tenant")?;
        let current = match locked {
            Some(tenant) => Some(
                tenant
                    .permanent_code(&h.secrets)
                    .doing("reading the permanent code")?,
            ),
            None => None,
        };
        let unchanged =
            current.is_some_and(|code| code.expose_secret() == asked_with.expose_secret());
        if unchanged {
            Ok(())
        } else {
            Err(HandlerError::transient(format!(
                "the secret of {}/{} changed while WeCom was asked; re-reading with the new one",
                self.suite.id, self.corp_id
            ))
            .into())
        }
    }

    async fn store_auth_info(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        info: &AuthInfoResponse,
    ) -> Result<(), WorkerError> {
        let value = serde_json::to_value(info)
            .map_err(|e| HandlerError::permanent(format!("encoding auth info: {e}")))?;
        let update = AuthInfoUpdate {
            suite_id: &self.suite.id,
            corp_id: self.corp_id,
            corp_name: info.auth_corp_info.corp_name.as_deref(),
            agent_id: info.auth_info.agent.first().map(|a| a.agentid),
            auth_info: &value,
        };
        tenants::update_auth_info(tx, &update)
            .await
            .doing("storing auth info")?;
        Ok(())
    }

    /// Asks WeCom whether the app works: `agent/get` with the app's token. An active tenant
    /// goes through the token service (cached token, one refresh across replicas); a suspended
    /// one gets no token from it, so its secret is tried directly with `gettoken`.
    async fn app_enabled(
        &self,
        h: &AuthHandler,
        code: &SecretString,
        agent_id: AgentId,
    ) -> Result<Option<bool>, WorkerError> {
        let agent = if self.current == TenantStatus::Active {
            wecom_calls::agent_with_cached_token(h, &self.suite.id, self.corp_id, agent_id).await
        } else {
            wecom_calls::agent_with_fresh_token(h, self.corp_id, code, agent_id).await
        };
        match agent {
            Ok(agent) => Ok(Some(agent.close != Some(1))),
            Err(err) if refuses_tenant(&err) => {
                tracing::info!(corp_id = %self.corp_id, error = %err, "the app is not usable");
                Ok(Some(false))
            }
            Err(err) if err.class() == ErrorClass::Permanent => {
                tracing::warn!(corp_id = %self.corp_id, error = %err,
                    "cannot tell whether the app is enabled");
                Ok(None)
            }
            Err(source) => Err(WorkerError::Token {
                doing: "checking the app",
                source,
            }),
        }
    }
}

/// WeCom refuses the tenant (app disabled, secret replaced, authorization gone).
fn refuses_tenant(err: &TokenError) -> bool {
    err.api_error()
        .is_some_and(|api| api.class() == ErrorClass::TenantBroken)
}
