//! Secrets through the token service: after tokens were fetched from WeCom (a double), sealed
//! and stored, no plaintext secret is in any column or log line (docs/architecture.md §4.10).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use sqlx::PgPool;
use store::SecretBox;
use store::auth_codes::{AuthCodeKind, NewAuthCode, record_auth_code};
use store::suites::{NewTicket, store_ticket};
use store::tenants::permanent_code;
use tokens::TokenService;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const RAW_CODE: &str = "RAW-PERMANENT-CODE-7f3a9c";
const RAW_TICKET: &str = "RAW-SUITE-TICKET-51be";
const RAW_AUTH_CODE: &str = "RAW-AUTH-CODE-c0ffee";
const RAW_SUITE_TOKEN: &str = "RAW-SUITE-TOKEN-9d1e";
const RAW_CORP_TOKEN: &str = "RAW-CORP-TOKEN-44aa";

/// Fills every table that holds a secret: a ticket, a tenant, a pending AuthCode, and both
/// tokens fetched through the token service.
async fn populate(pool: &PgPool, secrets: &SecretBox, server: &MockServer) {
    let (suite, corp) = (test_support::suite("dk-sec"), test_support::corp("ww-sec"));
    let mut conn = pool.acquire().await.unwrap();
    let push = NewTicket {
        suite_id: &suite,
        ticket: RAW_TICKET,
        wecom_time: 10,
        received_at: Utc::now(),
    };
    store_ticket(&mut conn, secrets, &push).await.unwrap();
    let code = NewAuthCode {
        suite_id: &suite,
        kind: AuthCodeKind::CreateAuth,
        code: RAW_AUTH_CODE,
        wecom_time: Utc::now().timestamp(),
        received_at: Utc::now(),
    };
    record_auth_code(&mut conn, secrets, &code).await.unwrap();
    drop(conn);
    test_support::active_tenant(pool, secrets, &suite, &corp, RAW_CODE).await;

    Mock::given(path("/cgi-bin/service/get_suite_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "suite_access_token": RAW_SUITE_TOKEN, "expires_in": 7200
        })))
        .mount(server)
        .await;
    Mock::given(path("/cgi-bin/gettoken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errcode": 0, "errmsg": "ok", "access_token": RAW_CORP_TOKEN, "expires_in": 7200
        })))
        .mount(server)
        .await;
    let tokens = TokenService::new(
        pool.clone(),
        common::wecom_client(&server.uri()),
        secrets.clone(),
    );
    let suite_secret = SecretString::from("suite-secret".to_owned());
    tokens.suite_token(&suite, &suite_secret).await.unwrap();
    tokens.corp_token(&suite, &corp).await.unwrap();
}

/// Every (table, column) of a text-like, bytea or jsonb type in the public schema.
async fn columns(pool: &PgPool) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "select table_name::text, column_name::text, data_type::text
         from information_schema.columns
         where table_schema = 'public'
           and data_type in ('text', 'character varying', 'character', 'bytea', 'jsonb', 'json')
         order by 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Rows of `table` whose `column` contains `needle` (as text, or as raw bytes for bytea).
async fn occurrences(
    pool: &PgPool,
    table: &str,
    column: &str,
    data_type: &str,
    needle: &str,
) -> i64 {
    let condition = if data_type == "bytea" {
        format!("position(convert_to($1, 'UTF8') in \"{column}\") > 0")
    } else {
        format!("position($1 in \"{column}\"::text) > 0")
    };
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select count(*) from \"{table}\" where {condition}"
    )))
    .bind(needle)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_raw_secret_in_any_column_or_log_line() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let db = test_support::test_db().await;
    let server = MockServer::start().await;
    let secrets = test_support::secrets();
    populate(db.pool(), &secrets, &server).await;

    let columns = columns(db.pool()).await;
    assert!(columns.len() > 20, "scanned {} columns", columns.len());
    let mut scanned = 0;
    for (table, column, data_type) in &columns {
        for raw in [
            RAW_CODE,
            RAW_TICKET,
            RAW_AUTH_CODE,
            RAW_SUITE_TOKEN,
            RAW_CORP_TOKEN,
        ] {
            let found = occurrences(db.pool(), table, column, data_type, raw).await;
            assert_eq!(found, 0, "{raw} found in {table}.{column}");
            scanned += 1;
        }
    }
    assert!(scanned > 100);
    // the scan itself works: the secrets are really stored (sealed) and open again
    let mut conn = db.pool().acquire().await.unwrap();
    let code = permanent_code(
        &mut conn,
        &secrets,
        &test_support::suite("dk-sec"),
        &test_support::corp("ww-sec"),
    )
    .await
    .unwrap();
    assert_eq!(code.expose_secret(), RAW_CODE);
    assert_eq!(
        occurrences(db.pool(), "tenants", "corp_name", "text", "Acme").await,
        1,
        "the scan finds plain values"
    );
    drop(conn);

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("corp access token refreshed"),
        "logs were captured"
    );
    for raw in [
        RAW_CODE,
        RAW_TICKET,
        RAW_AUTH_CODE,
        RAW_SUITE_TOKEN,
        RAW_CORP_TOKEN,
    ] {
        assert!(!logs.contains(raw), "{raw} appears in the logs");
    }
    db.drop_database().await.unwrap();
}
