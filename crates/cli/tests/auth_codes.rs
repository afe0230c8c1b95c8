//! `daikai auth-codes [--failed]` against the real Postgres: AuthCodes in every state, written
//! through the store as the auth worker writes them, show with their fate; a failed one with
//! what to do about it; `--json` has the documented fields (docs/operations.md §8); the codes
//! themselves never show.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use chrono::{TimeDelta, Utc};
use common::{daikai, json_of, success};
use serde_json::{Value, json};
use store::auth_codes::{
    AuthCodeHash, AuthCodeKind, Claim, NewAuthCode, claim_auth_code, fail_expired_auth_codes,
    mark_auth_code_exchanged, mark_auth_code_failed, record_auth_code, record_auth_code_error,
};
use store::{CorpId, SuiteId};

const SUITE: &str = "dkcliauthcodes";
const RECEIVED: &str = "AUTHCODE-STILL-WAITING";
const EXCHANGED: &str = "AUTHCODE-EXCHANGED";
const BURNT: &str = "AUTHCODE-BURNT";
const EXPIRED: &str = "AUTHCODE-RESET-EXPIRED";
const BURNT_REASON: &str =
    "40078: WeCom refused the AuthCode (already used, expired or unknown): invalid auth_code";
const TRANSIENT: &str = "WeCom errcode -1: system busy";

/// The fields docs/operations.md §8 documents for `auth-codes --json`.
const DOCUMENTED: [&str; 13] = [
    "hash_prefix",
    "suite_id",
    "kind",
    "state",
    "corp_id",
    "received_at",
    "expires_at",
    "attempts",
    "exchanged_at",
    "failed_at",
    "failure_reason",
    "last_error",
    "advice",
];

fn prefix(code: &str) -> String {
    AuthCodeHash::of(code).to_hex()[..12].to_owned()
}

/// Records `code`, received `age` ago (WeCom issued it then).
async fn record(conn: &mut sqlx::PgConnection, code: &str, kind: AuthCodeKind, age: TimeDelta) {
    let at = Utc::now() - age;
    let (_, created) = record_auth_code(
        conn,
        &test_support::secrets(),
        &NewAuthCode {
            suite_id: &SuiteId::parse(SUITE).unwrap(),
            kind,
            code,
            wecom_time: at.timestamp(),
            received_at: at,
        },
    )
    .await
    .unwrap();
    assert!(created);
}

/// Claims `code` as an exchange would; returns the claim id.
async fn claim(conn: &mut sqlx::PgConnection, code: &str) -> uuid::Uuid {
    let claim = claim_auth_code(
        conn,
        &test_support::secrets(),
        &AuthCodeHash::of(code),
        TimeDelta::seconds(120),
    )
    .await
    .unwrap();
    let Claim::Ready(claimed) = claim else {
        panic!("{code} not claimable: {claim:?}")
    };
    claimed.claim_id
}

/// One AuthCode in each state, newest first: waiting after a transient error, exchanged,
/// burnt (40078), and an expired reset_permanent_code.
async fn seed(pool: &sqlx::PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    let conn = &mut *conn;
    record(
        conn,
        RECEIVED,
        AuthCodeKind::CreateAuth,
        TimeDelta::minutes(1),
    )
    .await;
    let claim_id = claim(conn, RECEIVED).await;
    record_auth_code_error(conn, &AuthCodeHash::of(RECEIVED), claim_id, TRANSIENT)
        .await
        .unwrap();

    record(
        conn,
        EXCHANGED,
        AuthCodeKind::CreateAuth,
        TimeDelta::minutes(2),
    )
    .await;
    let claim_id = claim(conn, EXCHANGED).await;
    mark_auth_code_exchanged(
        conn,
        &AuthCodeHash::of(EXCHANGED),
        &CorpId::parse("wwexchanged").unwrap(),
        claim_id,
    )
    .await
    .unwrap();

    record(conn, BURNT, AuthCodeKind::CreateAuth, TimeDelta::minutes(3)).await;
    claim(conn, BURNT).await;
    mark_auth_code_failed(conn, &AuthCodeHash::of(BURNT), BURNT_REASON)
        .await
        .unwrap();

    record(
        conn,
        EXPIRED,
        AuthCodeKind::ResetPermanentCode,
        TimeDelta::minutes(25),
    )
    .await;
    let expired = fail_expired_auth_codes(conn).await.unwrap();
    assert_eq!(expired.len(), 1, "only the 25-minute-old code expired");
}

fn states(json: &Value) -> Vec<(String, String)> {
    json.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["hash_prefix"].as_str().unwrap().to_owned(),
                c["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The two lines `auth-codes` prints under the table for a failed code.
fn failure_lines(code: &str, kind: &str, reason: &str) -> String {
    format!(
        "{} ({kind}, corp unknown) failed: {reason}\n  → {}",
        prefix(code),
        cli::commands::auth_codes::advice(kind)
    )
}

#[tokio::test]
async fn every_auth_code_shows_its_fate_and_a_failed_one_what_to_do() {
    let db = test_support::test_db().await;
    seed(db.pool()).await;
    let env = [("DATABASE_URL", db.url())];

    let text = success(&daikai(&["auth-codes"], &env));
    for code in [RECEIVED, EXCHANGED, BURNT, EXPIRED] {
        assert!(text.contains(&prefix(code)), "{code} missing:\n{text}");
        assert!(!text.contains(code), "a code in the output:\n{text}");
    }
    assert!(text.contains("4 AuthCode(s)"), "{text}");
    let row = |code: &str| {
        text.lines()
            .find(|l| l.starts_with(&prefix(code)) && l.contains(SUITE))
            .unwrap_or_else(|| panic!("no row for {code}:\n{text}"))
            .to_owned()
    };
    assert!(row(RECEIVED).contains(" received "), "{text}");
    assert!(row(EXCHANGED).contains(" exchanged ") && row(EXCHANGED).contains("wwexchanged"));
    assert!(row(BURNT).contains(" failed "), "{text}");
    assert!(row(EXPIRED).contains("reset_permanent_code") && row(EXPIRED).contains(" failed "));
    // The failed ones, each with its reason and the advice for its kind.
    let burnt = failure_lines(BURNT, "create_auth", BURNT_REASON);
    assert!(
        text.contains(&burnt),
        "no advice for the burnt code:\n{text}"
    );
    let expired = failure_lines(
        EXPIRED,
        "reset_permanent_code",
        store::auth_codes::EXPIRED_REASON,
    );
    assert!(text.contains(&expired), "{text}");
    assert!(text.contains("「重新获取secret」") && text.contains("re-authorize"));
    assert_eq!(
        text.matches("  → ").count(),
        2,
        "advice only for failed codes"
    );

    let failed = success(&daikai(&["auth-codes", "--failed"], &env));
    assert!(failed.contains("2 AuthCode(s)"), "{failed}");
    assert!(
        failed.contains(&burnt) && failed.contains(&expired),
        "{failed}"
    );
    for code in [RECEIVED, EXCHANGED] {
        assert!(
            !failed.contains(&prefix(code)),
            "{code} is not failed:\n{failed}"
        );
    }

    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn auth_codes_json_has_the_documented_fields_and_filters_by_state() {
    let db = test_support::test_db().await;
    seed(db.pool()).await;
    let env = [("DATABASE_URL", db.url())];

    let all = json_of(&daikai(&["auth-codes", "--json"], &env));
    assert_eq!(
        states(&all),
        [
            (prefix(RECEIVED), "received".into()),
            (prefix(EXCHANGED), "exchanged".into()),
            (prefix(BURNT), "failed".into()),
            (prefix(EXPIRED), "failed".into()),
        ],
        "newest first: {all:#}"
    );
    let documented: BTreeSet<&str> = DOCUMENTED.into_iter().collect();
    for code in all.as_array().unwrap() {
        let fields: BTreeSet<&str> = code
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, documented, "update docs/operations.md §8: {code:#}");
        assert_eq!(code["suite_id"], json!(SUITE));
        for time in ["received_at", "expires_at"] {
            let at = code[time].as_str().unwrap();
            chrono::DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("{time}: {e}"));
        }
        assert!(!code.to_string().contains("AUTHCODE-"), "a code in {code}");
    }
    let [received, exchanged, burnt, expired] = all.as_array().unwrap().as_slice() else {
        panic!("four codes: {all:#}")
    };
    assert_eq!(received["kind"], json!("create_auth"));
    assert_eq!(received["attempts"], json!(1));
    assert_eq!(received["last_error"], json!(TRANSIENT));
    assert_eq!(received["advice"], Value::Null);
    assert_eq!(exchanged["corp_id"], json!("wwexchanged"));
    assert!(exchanged["exchanged_at"].is_string(), "{exchanged}");
    assert_eq!(exchanged["advice"], Value::Null);
    assert_eq!(burnt["failure_reason"], json!(BURNT_REASON));
    assert!(burnt["failed_at"].is_string(), "{burnt}");
    assert_eq!(burnt["corp_id"], Value::Null);
    assert_eq!(
        burnt["advice"],
        json!(cli::commands::auth_codes::advice("create_auth"))
    );
    assert_eq!(expired["kind"], json!("reset_permanent_code"));
    assert_eq!(expired["attempts"], json!(0));
    assert_eq!(
        expired["failure_reason"],
        json!(store::auth_codes::EXPIRED_REASON)
    );
    assert!(
        expired["advice"].as_str().unwrap().contains(
            "click 「重新获取secret」 for this corp's 代开发 app in the provider console again"
        ),
        "{expired}"
    );

    let failed = json_of(&daikai(&["auth-codes", "--failed", "--json"], &env));
    assert_eq!(
        states(&failed),
        [
            (prefix(BURNT), "failed".into()),
            (prefix(EXPIRED), "failed".into())
        ]
    );
    let listed = json_of(&daikai(
        &["auth-codes", "list", "--state", "exchanged", "--json"],
        &env,
    ));
    assert_eq!(states(&listed), [(prefix(EXCHANGED), "exchanged".into())]);
    let newest = json_of(&daikai(&["auth-codes", "--limit", "1", "--json"], &env));
    assert_eq!(states(&newest), [(prefix(RECEIVED), "received".into())]);

    db.drop_database().await.unwrap();
}
