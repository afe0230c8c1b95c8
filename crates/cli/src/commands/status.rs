//! `daikai status`: the whole stack at a glance, and a check — exit 3 when something needs
//! attention (docs/operations.md §8): a schema behind the binary, a queue missing, dead letters,
//! work piling up with no consumer, a suite ticket older than 20 minutes (or none), a tenant
//! stuck in `pending`, an AuthCode lost in the last day, a sync run whose lease lapsed.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde::Serialize;
use sqlx::PgPool;
use store::auth_codes::{AuthCodeState, list_auth_codes};
use store::corp_tokens::tokens_expiring_within;
use store::suites::ticket_statuses;
use store::tenants::{TenantStatus, list_tenants};

use super::sync::{RunJson, print_runs, running_with_tenants};
use crate::env::Env;
use crate::exit::Fault;
use crate::output::{self, age};

/// WeCom pushes a ticket every 10 minutes and it lives 30: older than this is an alarm
/// (docs/operations.md §6).
pub const TICKET_ALARM: TimeDelta = TimeDelta::minutes(20);
/// Tokens expiring within this are listed.
const TOKEN_HORIZON: Duration = Duration::from_secs(15 * 60);
/// AuthCodes lost within this count as needing attention.
const FAILED_CODE_WINDOW: TimeDelta = TimeDelta::hours(24);
/// A tenant `pending` longer than this has lost its AuthCode exchange.
const PENDING_ALARM: TimeDelta = TimeDelta::minutes(15);

/// `status --json`.
#[derive(Debug, Serialize)]
struct StatusJson {
    healthy: bool,
    attention: Vec<String>,
    schema: SchemaJson,
    broker: BrokerJson,
    suites: Vec<SuiteJson>,
    tenants: TenantCounts,
    tokens: Vec<TokenJson>,
    failed_auth_codes_24h: usize,
    sync_runs: Vec<RunJson>,
}

#[derive(Debug, Serialize)]
struct SchemaJson {
    current: bool,
    latest_version: i64,
    problem: Option<String>,
}

#[derive(Debug, Serialize)]
struct BrokerJson {
    url: String,
    namespace: String,
    reachable: bool,
    error: Option<String>,
    queues: Vec<QueueJson>,
}

#[derive(Debug, Serialize)]
struct QueueJson {
    name: String,
    exists: bool,
    messages: u32,
    consumers: u32,
}

#[derive(Debug, Serialize)]
struct SuiteJson {
    suite_id: String,
    ticket_received_at: Option<DateTime<Utc>>,
    ticket_age_seconds: Option<i64>,
    stale: bool,
}

#[derive(Debug, Default, Serialize)]
struct TenantCounts {
    pending: usize,
    active: usize,
    suspended: usize,
    revoked: usize,
}

#[derive(Debug, Serialize)]
struct TokenJson {
    suite_id: String,
    corp_id: Option<String>,
    expires_at: DateTime<Utc>,
    expires_in_seconds: i64,
}

/// Gathers, prints, and fails with [`Fault::Attention`] (or [`Fault::Broker`] when the broker
/// is unreachable) after printing.
pub async fn run(env: &Env, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let pool = super::database(env).await?;
    let mut attention = Vec::new();
    let gathered = gather_database(&pool, &mut attention).await;
    pool.close().await;
    let (schema, db) = gathered?;
    let broker = gather_broker(env, &mut attention).await?;
    let status = StatusJson {
        healthy: attention.is_empty(),
        attention,
        schema,
        broker,
        suites: db.suites,
        tenants: db.tenants,
        tokens: db.tokens,
        failed_auth_codes_24h: db.failed_codes,
        sync_runs: db.runs,
    };
    if json {
        output::json(out, &status)?;
    } else {
        print(&status, out)?;
    }
    if !status.broker.reachable {
        return Err(Fault::Broker(status.broker.url.clone()).into());
    }
    if status.attention.is_empty() {
        Ok(())
    } else {
        Err(Fault::Attention(status.attention.len()).into())
    }
}

#[derive(Debug, Default)]
struct DatabaseState {
    suites: Vec<SuiteJson>,
    tenants: TenantCounts,
    tokens: Vec<TokenJson>,
    failed_codes: usize,
    runs: Vec<RunJson>,
}

async fn gather_database(
    pool: &PgPool,
    attention: &mut Vec<String>,
) -> anyhow::Result<(SchemaJson, DatabaseState)> {
    let problem = store::check_schema(pool).await.err().map(|e| e.to_string());
    let schema = SchemaJson {
        current: problem.is_none(),
        latest_version: store::latest_version(),
        problem: problem.clone(),
    };
    if let Some(problem) = problem {
        attention.push(format!("schema: {problem}"));
        // Without the schema the other tables cannot be read.
        return Ok((schema, DatabaseState::default()));
    }
    let mut conn = pool.acquire().await?;
    let mut state = DatabaseState::default();
    for t in ticket_statuses(&mut conn).await? {
        let age = t.wecom_time.map(|w| t.now - w);
        let stale = age.is_none_or(|a| a > TICKET_ALARM);
        match age {
            None => attention.push(format!(
                "suite {}: no suite ticket stored (docs/operations.md §9)",
                t.suite_id
            )),
            Some(a) if stale => attention.push(format!(
                "suite {}: newest ticket is {} old, over 20 minutes (docs/operations.md §9)",
                t.suite_id,
                output::age(a)
            )),
            Some(_) => {}
        }
        state.suites.push(SuiteJson {
            suite_id: t.suite_id.to_string(),
            ticket_received_at: t.received_at,
            ticket_age_seconds: age.map(|a| a.num_seconds()),
            stale,
        });
    }
    let now = Utc::now();
    for t in list_tenants(&mut conn, None).await? {
        match t.status {
            TenantStatus::Pending => {
                state.tenants.pending += 1;
                if now - t.updated_at > PENDING_ALARM {
                    attention.push(format!(
                        "tenant {} / {}: pending for {} (docs/operations.md §9)",
                        t.suite_id,
                        t.corp_id,
                        output::age(now - t.updated_at)
                    ));
                }
            }
            TenantStatus::Active => state.tenants.active += 1,
            TenantStatus::Suspended => state.tenants.suspended += 1,
            TenantStatus::Revoked => state.tenants.revoked += 1,
        }
    }
    state.tokens = tokens_expiring_within(&mut conn, TOKEN_HORIZON)
        .await?
        .into_iter()
        .map(|t| TokenJson {
            suite_id: t.suite_id.to_string(),
            corp_id: t.corp_id.map(|c| c.to_string()),
            expires_at: t.expires_at,
            expires_in_seconds: (t.expires_at - t.now).num_seconds(),
        })
        .collect();
    state.failed_codes = list_auth_codes(&mut conn, Some(AuthCodeState::Failed), 1000)
        .await?
        .iter()
        .filter(|c| c.failed_at.is_some_and(|at| now - at < FAILED_CODE_WINDOW))
        .count();
    if state.failed_codes > 0 {
        attention.push(format!(
            "{} AuthCode(s) lost in the last 24 hours: `daikai auth-codes --failed` \
             (docs/operations.md §4)",
            state.failed_codes
        ));
    }
    drop(conn);
    state.runs = running_with_tenants(pool).await?;
    for r in state.runs.iter().filter(|r| r.lease_lapsed) {
        attention.push(format!(
            "sync run {} of {}: lease lapsed, no replica works on it (docs/operations.md §9)",
            r.id,
            r.corp_id.as_deref().unwrap_or("?")
        ));
    }
    Ok((schema, state))
}

async fn gather_broker(env: &Env, attention: &mut Vec<String>) -> anyhow::Result<BrokerJson> {
    let url = env.broker_url()?;
    let topology = env.topology()?;
    let mut broker = BrokerJson {
        url: url.to_string(),
        namespace: topology.namespace().as_str().to_owned(),
        reachable: false,
        error: None,
        queues: Vec::new(),
    };
    let connection = match bus::connect(&url, "daikai-cli-status").await {
        Ok(connection) => connection,
        Err(err) => {
            attention.push(format!("broker: {err}"));
            broker.error = Some(err.to_string());
            return Ok(broker);
        }
    };
    broker.reachable = true;
    let dead: Vec<String> = bus::WorkQueue::ALL
        .iter()
        .map(|q| topology.queue(*q).dead.clone())
        .collect();
    let work: Vec<String> = bus::WorkQueue::ALL
        .iter()
        .map(|q| topology.queue(*q).work.clone())
        .collect();
    for name in topology.all_queues() {
        let q = passive(&connection, &name).await?;
        if !q.exists {
            attention.push(format!(
                "queue {name} does not exist (no service has declared the topology under this \
                 AMQP_NAMESPACE)"
            ));
        } else if dead.contains(&name) && q.messages > 0 {
            attention.push(format!(
                "{} dead letter(s) in {name}: `daikai dead list` (docs/operations.md §9)",
                q.messages
            ));
        } else if work.contains(&name) && q.messages > 0 && q.consumers == 0 {
            attention.push(format!(
                "{} message(s) wait in {name} and nothing consumes it",
                q.messages
            ));
        }
        broker.queues.push(q);
    }
    drop(connection.close(200, "bye".into()).await);
    Ok(broker)
}

/// Depth and consumers of `name`, by a passive declare on a channel of its own (a missing
/// queue closes the channel).
async fn passive(connection: &lapin::Connection, name: &str) -> anyhow::Result<QueueJson> {
    let channel = connection.create_channel().await?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(name.into(), options, FieldTable::default())
        .await;
    let q = match declared {
        Ok(q) => QueueJson {
            name: name.to_owned(),
            exists: true,
            messages: q.message_count(),
            consumers: q.consumer_count(),
        },
        Err(_) => QueueJson {
            name: name.to_owned(),
            exists: false,
            messages: 0,
            consumers: 0,
        },
    };
    drop(channel.close(200, "done".into()).await);
    Ok(q)
}

fn print(s: &StatusJson, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "schema    {}",
        match &s.schema.problem {
            None => format!("current (version {})", s.schema.latest_version),
            Some(problem) => problem.clone(),
        }
    )?;
    let ns = if s.broker.namespace.is_empty() {
        String::new()
    } else {
        format!(" (namespace {})", s.broker.namespace)
    };
    match &s.broker.error {
        None => writeln!(out, "broker    {} reachable{ns}", s.broker.url)?,
        Some(err) => writeln!(out, "broker    UNREACHABLE: {err}")?,
    }
    if !s.broker.queues.is_empty() {
        let mut table = output::Table::new(&["QUEUE", "MESSAGES", "CONSUMERS"]);
        for q in &s.broker.queues {
            let (messages, consumers) = if q.exists {
                (q.messages.to_string(), q.consumers.to_string())
            } else {
                ("MISSING".to_owned(), "-".to_owned())
            };
            table.row(vec![q.name.clone(), messages, consumers]);
        }
        table.print(out)?;
    }
    for suite in &s.suites {
        writeln!(
            out,
            "suite     {}: {}",
            suite.suite_id,
            match suite.ticket_age_seconds {
                None => "NO TICKET".to_owned(),
                Some(secs) => format!(
                    "newest ticket {} old{}",
                    age(TimeDelta::seconds(secs)),
                    if suite.stale {
                        " — STALE (over 20m)"
                    } else {
                        ""
                    }
                ),
            }
        )?;
    }
    let t = &s.tenants;
    writeln!(
        out,
        "tenants   {} active, {} pending, {} suspended, {} revoked",
        t.active, t.pending, t.suspended, t.revoked
    )?;
    for token in &s.tokens {
        let whose = token.corp_id.as_deref().map_or_else(
            || format!("suite token of {}", token.suite_id),
            |corp| format!("corp token of {} / {corp}", token.suite_id),
        );
        let when = if token.expires_in_seconds <= 0 {
            format!(
                "expired {} ago (refreshed on next use)",
                age(TimeDelta::seconds(-token.expires_in_seconds))
            )
        } else {
            format!(
                "expires in {}",
                age(TimeDelta::seconds(token.expires_in_seconds))
            )
        };
        writeln!(out, "token     {whose}: {when}")?;
    }
    writeln!(
        out,
        "authcodes {} lost in the last 24 hours",
        s.failed_auth_codes_24h
    )?;
    if s.sync_runs.is_empty() {
        writeln!(out, "sync      no run in progress")?;
    } else {
        writeln!(out, "sync      {} run(s) in progress:", s.sync_runs.len())?;
        print_runs(&s.sync_runs, out)?;
    }
    if s.attention.is_empty() {
        writeln!(out, "\nOK: nothing needs attention")?;
    } else {
        writeln!(out, "\nNEEDS ATTENTION:")?;
        for a in &s.attention {
            writeln!(out, "  - {a}")?;
        }
    }
    Ok(())
}
