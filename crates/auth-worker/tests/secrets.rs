#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Secrets at rest and in logs (issue 5 point 2): after a full lifecycle — ticket, create_auth,
//! a secret reset, change_auth, corp tokens — no permanent code, AuthCode or access token appears
//! in any column of any table, and none in any log line the worker wrote (captured at TRACE).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Harness, NO_PUSH, SUITE_ID, suite_id};
use store::CorpId;
use store::tenants::TenantStatus;
use test_support::wait_until;
use wecom::event::{ChangeAuth, Event, ResetPermanentCode};

/// A log sink tests can read back.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Every row of every table of the public schema, as JSON text.
async fn every_row(h: &Harness) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables
         where table_schema = 'public' and table_type = 'BASE TABLE'",
    )
    .fetch_all(h.pool())
    .await
    .unwrap();
    assert!(tables.iter().any(|t| t == "tenants"), "{tables:?}");
    let mut all = String::new();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select row_to_json(t)::text from \"{table}\" t"
        )))
        .fetch_all(h.pool())
        .await
        .unwrap();
        for row in rows {
            all.push_str(&row);
            all.push('\n');
        }
    }
    all
}

/// `bytea` columns render as `\x…` hex in JSON: search those too.
fn hex_of(secret: &str) -> String {
    use std::fmt::Write as _;
    secret.bytes().fold(String::new(), |mut hex, b| {
        write!(hex, "{b:02x}").unwrap();
        hex
    })
}

// One thread, so every task of the worker logs to this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_a_column_or_a_log_line() {
    let logs = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_max_level(tracing::Level::TRACE)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = Harness::start().await;
    let worker = h.worker().await;
    let ticket = h.deliver_ticket().await;
    let corp = h.corp("Secretive");
    let (create, _) = h.authorize(&corp);
    let Event::CreateAuth(create_auth) = &create else {
        unreachable!()
    };
    h.publish(&create).await;
    let first = h
        .wait_tenant(&corp, |t| t.status == TenantStatus::Active)
        .await;
    let first_code = h.permanent_code(&corp);

    let corp_id = CorpId::parse(corp.clone()).unwrap();
    let tokens = h.token_service().await;
    let first_token = tokens.corp_token(&suite_id(), &corp_id).await.unwrap();

    let (reset, _) = h
        .sim
        .reset_secret(
            &test_support::corp(&corp),
            Some(&common::suite_id()),
            NO_PUSH,
        )
        .unwrap();
    h.publish(&Event::ResetPermanentCode(ResetPermanentCode {
        suite_id: SUITE_ID.parse().unwrap(),
        auth_code: reset.auth_code.parse().unwrap(),
        timestamp: h.sim.clock.now_secs() + 1,
    }))
    .await;
    h.wait_tenant(&corp, |t| {
        t.permanent_code_updated_at > first.permanent_code_updated_at
    })
    .await;
    let second_code = h.permanent_code(&corp);
    assert_ne!(first_code, second_code);

    h.publish(&Event::ChangeAuth(ChangeAuth {
        suite_id: SUITE_ID.parse().unwrap(),
        auth_corp_id: corp.parse().unwrap(),
        timestamp: h.sim.clock.now_secs() + 2,
        state: None,
        extra_info: None,
    }))
    .await;
    wait_until("change_auth is acked", || async {
        common::messages_total(&worker.metrics, "change_auth", "acked") == 1
    })
    .await;
    let second_token = tokens.corp_token(&suite_id(), &corp_id).await.unwrap();
    worker.stop().await;

    let secrets = [
        ("first permanent code", first_code.as_str()),
        ("second permanent code", second_code.as_str()),
        ("create_auth AuthCode", create_auth.auth_code.expose()),
        ("reset AuthCode", reset.auth_code.as_str()),
        ("suite ticket", ticket.suite_ticket.expose()),
        ("first corp token", first_token.expose()),
        ("second corp token", second_token.expose()),
    ];
    let rows = every_row(&h).await;
    assert!(rows.contains(&corp), "the scan sees the tenant row");
    for (what, secret) in secrets {
        assert!(secret.len() >= 16, "{what} is long enough to search for");
        assert!(!rows.contains(secret), "{what} found in a column");
        assert!(
            !rows.contains(&hex_of(secret)),
            "{what} found in a bytea column"
        );
    }

    let logged = logs.text();
    assert!(
        // a line of the worker's own (ticket.rs), whose wording the exchange code does not own
        logged.contains("suite ticket stored") && logged.contains(&corp),
        "the capture sees the worker's log lines"
    );
    for (what, secret) in secrets {
        assert!(!logged.contains(secret), "{what} found in the logs");
    }
    h.close().await;
}

/// A key other than the one the database uses: valid, but not this deployment's.
const ROGUE_KEY: &str = "rogue:CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";
/// The database's key id with other key bytes (a mistyped or regenerated key).
const SAME_ID_OTHER_BYTES: &str = "test1:CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";

fn config_with_keys(h: &Harness, active: &str, previous: &str) -> auth_worker::Config {
    let mut config = h.worker_config();
    config.keyring = store::Keyring::parse(active, previous).unwrap();
    config
}

#[tokio::test]
async fn a_worker_whose_keys_cannot_open_the_stored_secrets_refuses_to_start() {
    let h = Harness::start().await;
    // An empty database holds nothing to check: any valid key starts.
    let worker = h.worker_with(config_with_keys(&h, ROGUE_KEY, "")).await;
    worker.stop().await;
    // The deployment's worker stores a ticket and a tenant under `test1`.
    let worker = h.worker().await;
    h.active_tenant("Keyed").await;
    worker.stop().await;

    for (active, previous, named) in [
        (ROGUE_KEY, "", "`test1`"),
        (SAME_ID_OTHER_BYTES, "", "`test1`"),
    ] {
        let config = config_with_keys(&h, active, previous);
        let Err(err) = auth_worker::Application::build(config).await else {
            panic!("a worker with key {active:.5}… started against a database it cannot read");
        };
        let message = format!("{err:#}");
        assert!(message.contains(named), "{message}");
        assert!(message.contains("DAIKAI_SECRET_KEY"), "{message}");
        assert!(message.contains("tenants.permanent_code"), "{message}");
        assert!(!message.contains("CQkJCQkJ") && !message.contains("CAgICAgI"));
    }

    // A rotation in progress (new active key, the database's key as previous) starts.
    let worker = h
        .worker_with(config_with_keys(&h, ROGUE_KEY, common::SECRET_KEY))
        .await;
    worker.stop().await;
    h.close().await;
}

#[tokio::test]
async fn an_auth_code_sealed_under_an_unknown_key_waits_for_a_replica_that_has_it() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    h.deliver_ticket().await;
    let corp = h.corp("Rogue Sealed");
    let (create, _) = h.authorize(&corp);
    let Event::CreateAuth(create_auth) = &create else {
        unreachable!()
    };
    // A replica with another key got there first and sealed the AuthCode under its key.
    let rogue = store::SecretBox::new(store::Keyring::parse(ROGUE_KEY, "").unwrap());
    let mut conn = h.pool().acquire().await.unwrap();
    store::auth_codes::record_auth_code(
        &mut conn,
        &rogue,
        &store::auth_codes::NewAuthCode {
            suite_id: &suite_id(),
            kind: store::auth_codes::AuthCodeKind::CreateAuth,
            code: create_auth.auth_code.expose(),
            wecom_time: create_auth.timestamp,
            received_at: chrono::Utc::now(),
        },
    )
    .await
    .unwrap();
    drop(conn);

    h.publish(&create).await;
    wait_until("the create_auth fails once", || async {
        common::messages_total(&worker.metrics, "create_auth", "retried")
            + common::messages_total(&worker.metrics, "create_auth", "dead_lettered")
            > 0
    })
    .await;
    let dead = h.dead_letters().await;
    assert!(
        dead.is_empty(),
        "dead-lettered: {:?}",
        dead.iter().map(|(_, r)| r).collect::<Vec<_>>()
    );
    let state: String = sqlx::query_scalar("select state from auth_codes")
        .fetch_one(h.pool())
        .await
        .unwrap();
    assert_eq!(
        state, "received",
        "the code is kept for a replica that can open it"
    );
    assert_eq!(h.exchange_calls(), 0);
    worker.stop().await;

    // A replica that has the key (as a previous one) picks the retried message up.
    let worker = h
        .worker_with(config_with_keys(&h, common::SECRET_KEY, ROGUE_KEY))
        .await;
    h.wait_tenant(&corp, |t| t.status == TenantStatus::Active)
        .await;
    assert_eq!(h.exchange_calls(), 1);
    assert_eq!(
        common::messages_total(&worker.metrics, "create_auth", "dead_lettered"),
        0
    );
    worker.stop().await;
    h.close().await;
}
