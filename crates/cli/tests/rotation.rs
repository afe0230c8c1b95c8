//! `daikai rotate-secrets` interrupted by `kill -9` mid-rotation, then run again: it shows its
//! progress, continues with what is left, and every secret ends sealed under the new key with
//! its value intact (docs/operations.md §2, §8).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::process::Stdio;

use chrono::Utc;
use common::{SECRET_KEY, SECRET_KEY_2, daikai, daikai_command, json_of, success};
use secrecy::ExposeSecret as _;
use serde_json::json;
use sqlx::PgPool;
use store::auth_codes::{AuthCodeHash, AuthCodeKind, Claim, NewAuthCode};
use store::suites::NewTicket;
use store::{Keyring, Sealed, SecretBox, SecretContext, SuiteId};

const SUITE: &str = "dkclirotate";
/// Enough rows that one per transaction takes far longer than the test takes to react.
const TENANTS: u16 = 1500;
/// Tenant rows re-sealed before the rotation is killed.
const KILL_AFTER: usize = 50;
const AUTH_CODE: &str = "ROTATED-AUTH-CODE";

fn code_of(i: usize) -> String {
    format!("PERMANENT-CODE-{i}")
}

fn corp_of(i: usize) -> String {
    format!("wwrot{i:05}")
}

fn new_key_only() -> SecretBox {
    SecretBox::new(Keyring::parse(SECRET_KEY_2, "").unwrap())
}

/// A suite ticket, [`TENANTS`] active tenants and a waiting AuthCode, all sealed under `k1`.
async fn seed(pool: &PgPool) {
    let old = test_support::secrets();
    let suite = SuiteId::parse(SUITE).unwrap();
    let mut conn = pool.acquire().await.unwrap();
    store::suites::store_ticket(
        &mut conn,
        &old,
        &NewTicket {
            suite_id: &suite,
            ticket: "ROTATED-TICKET",
            wecom_time: Utc::now().timestamp(),
            received_at: Utc::now(),
        },
    )
    .await
    .unwrap();
    store::auth_codes::record_auth_code(
        &mut conn,
        &old,
        &NewAuthCode {
            suite_id: &suite,
            kind: AuthCodeKind::CreateAuth,
            code: AUTH_CODE,
            wecom_time: Utc::now().timestamp(),
            received_at: Utc::now(),
        },
    )
    .await
    .unwrap();
    let (mut corps, mut ciphertexts, mut nonces) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..usize::from(TENANTS) {
        let sealed = old
            .seal(
                &SecretContext::permanent_code(SUITE, &corp_of(i)),
                &code_of(i),
            )
            .unwrap();
        corps.push(corp_of(i));
        ciphertexts.push(sealed.ciphertext);
        nonces.push(sealed.nonce);
    }
    sqlx::query(
        "insert into tenants (suite_id, corp_id, status, permanent_code_ciphertext,
             permanent_code_nonce, permanent_code_key_id, permanent_code_updated_at, activated_at)
         select $1, corp, 'active', ciphertext, nonce, 'k1', now(), now()
         from unnest($2::text[], $3::bytea[], $4::bytea[]) as u(corp, ciphertext, nonce)",
    )
    .bind(SUITE)
    .bind(&corps)
    .bind(&ciphertexts)
    .bind(&nonces)
    .execute(&mut *conn)
    .await
    .unwrap();
}

/// Stored values per (column, key id), as `secrets status --json` reports them.
fn usage(url: &str) -> BTreeMap<(String, String), i64> {
    let status = daikai(
        &["secrets", "status", "--json"],
        &[("DATABASE_URL", url), ("DAIKAI_SECRET_KEY", SECRET_KEY_2)],
    );
    json_of(&status)
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                (
                    u["column"].as_str().unwrap().to_owned(),
                    u["key_id"].as_str().unwrap().to_owned(),
                ),
                u["count"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn count(usage: &BTreeMap<(String, String), i64>, column: &str, key: &str) -> i64 {
    usage
        .get(&(column.to_owned(), key.to_owned()))
        .copied()
        .unwrap_or(0)
}

/// The `[done/total] …` progress lines of an output.
fn progress(lines: &[String]) -> Vec<(u64, u64, String)> {
    lines
        .iter()
        .filter_map(|l| {
            let (counts, what) = l.strip_prefix('[')?.split_once("] ")?;
            let (done, total) = counts.split_once('/')?;
            Some((done.parse().ok()?, total.parse().ok()?, what.to_owned()))
        })
        .collect()
}

/// `rotate-secrets --batch 1` (one row per transaction), killed with SIGKILL (no cleanup, no
/// rollback by the process) once [`KILL_AFTER`] tenant rows are reported re-sealed: its exit
/// status and the lines it printed.
async fn rotate_until_killed(env: &[(&str, &str)]) -> (std::process::ExitStatus, Vec<String>) {
    let mut child = daikai_command(&["rotate-secrets", "--batch", "1"], env)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            seen.push(line);
            let tenants_done = progress(&seen)
                .iter()
                .filter(|(_, _, what)| what.starts_with("tenants.permanent_code: "))
                .count();
            if tenants_done >= KILL_AFTER {
                child.kill().unwrap();
                break;
            }
        }
        (child.wait().unwrap(), seen)
    })
    .await
    .unwrap()
}

/// Opens every stored value with `k2` alone: each permanent code, the ticket, and the AuthCode
/// (claimed, as the auth worker would to exchange it).
async fn every_value_opens_under_the_new_key_alone(pool: &PgPool) {
    let new_only = new_key_only();
    let rows: Vec<(String, Vec<u8>, Vec<u8>, String)> = sqlx::query_as(
        "select corp_id, permanent_code_ciphertext, permanent_code_nonce, permanent_code_key_id
         from tenants order by corp_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), usize::from(TENANTS));
    for (i, (corp, ciphertext, nonce, key_id)) in rows.into_iter().enumerate() {
        assert_eq!(corp, corp_of(i));
        let opened = new_only
            .open(
                &SecretContext::permanent_code(SUITE, &corp),
                &Sealed {
                    key_id,
                    nonce,
                    ciphertext,
                },
            )
            .unwrap_or_else(|e| panic!("{corp}: {e}"));
        assert_eq!(opened.expose_secret(), code_of(i));
    }
    let mut conn = pool.acquire().await.unwrap();
    let ticket = store::suites::ticket(&mut conn, &new_only, &SuiteId::parse(SUITE).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ticket.ticket.expose_secret(), "ROTATED-TICKET");
    let claim = store::auth_codes::claim_auth_code(
        &mut conn,
        &new_only,
        &AuthCodeHash::of(AUTH_CODE),
        chrono::TimeDelta::seconds(120),
    )
    .await
    .unwrap();
    let Claim::Ready(claimed) = claim else {
        panic!("the AuthCode is not exchangeable after the rotation: {claim:?}")
    };
    assert_eq!(claimed.code.expose_secret(), AUTH_CODE);
}

/// The output of the run after the interruption: it started from the `left` tenants (and the
/// AuthCode, which the killed run did not reach), counted them to the end, and finished.
fn the_run_resumed(out: &str, left: i64) {
    let lines: Vec<String> = out.lines().map(str::to_owned).collect();
    let remaining = u64::try_from(left).unwrap() + 1;
    assert_eq!(
        lines[0],
        format!("re-sealing under active key `k2`: {remaining} stored value(s) under other keys"),
        "{out}"
    );
    let steps = progress(&lines);
    assert_eq!(
        steps.last().map(|(d, t, _)| (*d, *t)),
        Some((remaining, remaining)),
        "{out}"
    );
    assert!(
        out.contains(&format!("tenants.permanent_code   {left} re-sealed")),
        "{out}"
    );
    assert!(
        out.contains("auth_codes.code          1 re-sealed"),
        "{out}"
    );
    assert!(
        out.contains("suites.ticket            0 re-sealed"),
        "{out}"
    );
    assert!(
        out.contains("every stored secret is under `k2`; old keys may be removed"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_killed_mid_way_continues_where_it_stopped_and_loses_nothing() {
    let db = test_support::test_db().await;
    seed(db.pool()).await;
    let url = db.url().to_owned();
    let total = u64::from(TENANTS) + 2;
    let before = usage(&url);
    assert_eq!(
        count(&before, "tenants.permanent_code", "k1"),
        i64::from(TENANTS)
    );

    // One row per transaction, killed (SIGKILL: no cleanup) once it is well into the tenants.
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("DAIKAI_SECRET_KEY", SECRET_KEY_2),
        ("DAIKAI_SECRET_KEYS_PREVIOUS", SECRET_KEY),
    ];
    let (status, seen) = rotate_until_killed(&env).await;
    assert_eq!(
        status.signal(),
        Some(9),
        "the rotation was not killed mid-way ({status}): {seen:#?}"
    );
    assert_eq!(
        seen[0],
        format!("re-sealing under active key `k2`: {total} stored value(s) under other keys")
    );
    let steps = progress(&seen);
    assert_eq!(
        steps[..2],
        [
            (1, total, "suites.ticket: 1 re-sealed".to_owned()),
            (2, total, "tenants.permanent_code: 1 re-sealed".to_owned()),
        ]
    );
    assert!(steps.iter().all(|(_, t, _)| *t == total), "{steps:?}");
    assert!(
        steps.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "progress counts up one batch at a time: {steps:?}"
    );

    // Interrupted: part of the tenants under each key, the AuthCode not reached yet.
    let middle = usage(&url);
    let left = count(&middle, "tenants.permanent_code", "k1");
    let done = count(&middle, "tenants.permanent_code", "k2");
    assert_eq!(left + done, i64::from(TENANTS), "{middle:?}");
    assert!(
        done >= i64::try_from(KILL_AFTER).unwrap() && left > 0,
        "not interrupted mid-way: {middle:?}"
    );
    assert_eq!(count(&middle, "suites.ticket", "k2"), 1);
    assert_eq!(count(&middle, "auth_codes.code", "k1"), 1);

    // Run again: only what is left, with progress to the end.
    let out = success(&daikai(&["rotate-secrets", "--batch", "100"], &env));
    the_run_resumed(&out, left);

    // Everything under k2, nothing lost: each value opens with the new key alone.
    let after = usage(&url);
    let expected: BTreeMap<(String, String), i64> = [
        ("auth_codes.code", 1),
        ("suites.ticket", 1),
        ("tenants.permanent_code", i64::from(TENANTS)),
    ]
    .into_iter()
    .map(|(column, n)| ((column.to_owned(), "k2".to_owned()), n))
    .collect();
    assert_eq!(after, expected);
    let status = json_of(&daikai(
        &["secrets", "status", "--json"],
        &[
            ("DATABASE_URL", url.as_str()),
            ("DAIKAI_SECRET_KEY", SECRET_KEY_2),
        ],
    ));
    assert!(
        status
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["active"] == json!(true)),
        "{status}"
    );

    every_value_opens_under_the_new_key_alone(db.pool()).await;

    // A third run finds nothing to do.
    let out = success(&daikai(&["rotate-secrets"], &env));
    assert!(
        out.starts_with("re-sealing under active key `k2`: 0 stored value(s) under other keys"),
        "{out}"
    );
    db.drop_database().await.unwrap();
}
