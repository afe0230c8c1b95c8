//! Running a parsed [`Cli`]: one arm per command, each handing off to its module in
//! `commands/`.

use std::io::Write;

use store::api_keys::NewApiKey;

use crate::command::{
    ApiKeysCommand, AuthCodesArgs, AuthCodesCommand, Cli, Command, DeadCommand, SecretKeyCommand,
    SecretsCommand, SyncArgs, SyncCommand, TenantsCommand,
};
use crate::commands::{self, api_keys, auth_codes, dead, schema, secrets, status, sync, tenants};
use crate::env::Env;

/// Runs `cli`, writing its report to `out`.
pub async fn run(cli: &Cli, env: &Env, out: &mut dyn Write) -> anyhow::Result<()> {
    let json = cli.global.json;
    match &cli.command {
        Command::SecretKey(SecretKeyCommand::Generate { id }) => {
            secrets::generate_key(id.as_deref(), out)
        }
        Command::Status => status::run(env, json, out).await,
        Command::Dead(command) => dead_command(command, env, json, out).await,
        command => {
            let pool = commands::database(env).await?;
            let result = database_command(command, &pool, env, json, out).await;
            pool.close().await;
            result
        }
    }
}

async fn dead_command(
    command: &DeadCommand,
    env: &Env,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        DeadCommand::List { queue, limit } => {
            dead::list(env, queue.as_deref(), *limit, json, out).await
        }
        DeadCommand::Show { id } => dead::show(env, id, json, out).await,
        DeadCommand::Replay { id, queue, .. } => {
            dead::replay(env, id.as_deref(), queue.as_deref(), out).await
        }
        DeadCommand::Purge { older_than, queue } => {
            dead::purge(env, *older_than, queue.as_deref(), out).await
        }
    }
}

async fn database_command(
    command: &Command,
    pool: &sqlx::PgPool,
    env: &Env,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        Command::Migrate => schema::migrate(pool, out).await,
        Command::CheckSchema => schema::check(pool, out).await,
        Command::Tenants(TenantsCommand::List { suite, status }) => {
            tenants::list(pool, suite.as_deref(), *status, json, out).await
        }
        Command::Tenants(TenantsCommand::Show(t)) => {
            tenants::show(pool, &t.corp, t.suite.as_deref(), json, out).await
        }
        Command::Sync(SyncArgs {
            command: Some(SyncCommand::Status { corp, suite, limit }),
            ..
        }) => sync::status(pool, corp.as_deref(), suite.as_deref(), *limit, json, out).await,
        Command::Sync(SyncArgs { corp, suite, .. }) => {
            let corp = corp.as_deref().unwrap_or_default();
            sync::request(pool, env, corp, suite.as_deref(), out).await
        }
        Command::Reconcile(t) => sync::request(pool, env, &t.corp, t.suite.as_deref(), out).await,
        Command::AuthCodes(AuthCodesArgs { command, filter }) => {
            let filter = match command {
                Some(AuthCodesCommand::List(filter)) => filter,
                None => filter,
            };
            auth_codes::list(pool, filter.state(), filter.limit, json, out).await
        }
        Command::Secrets(SecretsCommand::Status) => secrets::status(pool, env, json, out).await,
        Command::RotateSecrets { batch } => secrets::rotate(pool, env, *batch, out).await,
        Command::ApiKeys(ApiKeysCommand::Create {
            name,
            scopes,
            suites,
            rate_limit,
        }) => {
            let scopes = ApiKeysCommand::scopes(scopes);
            let new = NewApiKey {
                name,
                scopes: &scopes,
                suites: (!suites.is_empty()).then_some(suites.as_slice()),
                rate_limit: *rate_limit,
            };
            api_keys::create(pool, &new, out).await
        }
        Command::ApiKeys(ApiKeysCommand::List) => api_keys::list(pool, json, out).await,
        Command::ApiKeys(ApiKeysCommand::Revoke { id }) => api_keys::revoke(pool, id, out).await,
        Command::SecretKey(_) | Command::Status | Command::Dead(_) => Ok(()),
    }
}
