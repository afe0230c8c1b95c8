//! The `daikai` binary against a real Postgres: migrate, the schema check message, listing,
//! key generation and rotation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use secrecy::SecretString;
use store::testing::{DEFAULT_URL, TestDatabase};
use store::{CorpId, Keyring, SecretBox, SuiteId};

const KEY_1: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_2: &str = "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

fn daikai(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_daikai"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("AMQP_URL")
        .env_remove("AMQP_NAMESPACE")
        .env_remove("DAIKAI_SECRET_KEY")
        .env_remove("DAIKAI_SECRET_KEYS_PREVIOUS");
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn migrate_then_check_schema_and_the_message_on_an_empty_database() {
    let db = TestDatabase::create_empty(&admin_url()).await.unwrap();
    let env = [("DATABASE_URL", db.url())];

    let check = daikai(&["check-schema"], &env);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stderr(&check).contains("run `daikai migrate`"),
        "{}",
        stderr(&check)
    );

    let first = daikai(&["migrate"], &env);
    assert!(first.status.success(), "{}", stderr(&first));
    let latest = store::latest_version();
    assert!(
        stdout(&first).contains(&format!("schema now at version {latest}")),
        "{}",
        stdout(&first)
    );
    let second = daikai(&["migrate"], &env);
    assert!(second.status.success());
    assert!(
        stdout(&second).contains("nothing to apply"),
        "{}",
        stdout(&second)
    );

    let check = daikai(&["check-schema"], &env);
    assert!(check.status.success(), "{}", stderr(&check));
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn missing_configuration_and_bad_usage_are_named() {
    let out = daikai(&["migrate"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("DATABASE_URL is not set"),
        "{}",
        stderr(&out)
    );

    let out = daikai(&["tenants", "lst"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unrecognized subcommand 'lst'"),
        "{}",
        stderr(&out)
    );

    let out = daikai(&["help"], &[]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("rotate-secrets"));
}

#[tokio::test]
async fn generated_keys_parse() {
    let out = daikai(&["secret-key", "generate", "--id", "2030-01"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let key = store::SecretKey::parse(text.trim()).unwrap();
    assert_eq!(key.id().as_str(), "2030-01");
    let other = stdout(&daikai(&["secret-key", "generate", "--id", "2030-01"], &[]));
    assert_ne!(text, other, "keys are random");
}

#[tokio::test]
async fn tenants_list_and_rotate_secrets() {
    let db = TestDatabase::create(&admin_url()).await.unwrap();
    let old = SecretBox::new(Keyring::parse(KEY_1, "").unwrap());
    let (suite, corp) = (
        SuiteId::parse("dk-cli").unwrap(),
        CorpId::parse("ww-cli").unwrap(),
    );
    let code = SecretString::from("CLI-PERMANENT-CODE".to_owned());
    let mut conn = db.pool().acquire().await.unwrap();
    store::tenants::activate_tenant(
        &mut conn,
        &old,
        &store::tenants::Activation {
            suite_id: &suite,
            corp_id: &corp,
            corp_name: Some("Acme"),
            agent_id: Some(1_000_002),
            permanent_code: &code,
            auth_info: None,
            state: None,
            event_time: 1_700_000_000,
        },
    )
    .await
    .unwrap();
    drop(conn);

    let url = db.url().to_owned();
    let list = daikai(
        &["tenants", "list", "--status", "active"],
        &[("DATABASE_URL", &url)],
    );
    assert!(list.status.success(), "{}", stderr(&list));
    let text = stdout(&list);
    assert!(
        text.contains("ww-cli") && text.contains("Acme") && text.contains("k1"),
        "{text}"
    );
    assert!(text.contains("1 tenant(s)"));
    assert!(!text.contains("CLI-PERMANENT-CODE"));

    // rotation without the old key cannot open the stored code: fails, naming the key id
    let env_new_only = [("DATABASE_URL", url.as_str()), ("DAIKAI_SECRET_KEY", KEY_2)];
    let out = daikai(&["rotate-secrets"], &env_new_only);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`k1`"), "{}", stderr(&out));

    let env_both = [
        ("DATABASE_URL", url.as_str()),
        ("DAIKAI_SECRET_KEY", KEY_2),
        ("DAIKAI_SECRET_KEYS_PREVIOUS", KEY_1),
    ];
    let out = daikai(&["rotate-secrets", "--batch", "1"], &env_both);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("tenants.permanent_code   1 re-sealed"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("old keys may be removed"));

    let status = daikai(&["secrets", "status"], &env_new_only);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(stdout(&status).contains("k2"), "{}", stdout(&status));
    assert!(!stdout(&status).contains("k1"), "{}", stdout(&status));

    let new_only = SecretBox::new(Keyring::parse(KEY_2, "").unwrap());
    let mut conn = db.pool().acquire().await.unwrap();
    let opened = store::tenants::permanent_code(&mut conn, &new_only, &suite, &corp)
        .await
        .unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&opened),
        "CLI-PERMANENT-CODE"
    );
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn api_keys_are_printed_once_stored_as_a_hash_listed_and_revoked() {
    let db = TestDatabase::create(&admin_url()).await.unwrap();
    let env = [("DATABASE_URL", db.url())];

    let created = daikai(
        &[
            "api-keys",
            "create",
            "--name",
            "crm",
            "--scope",
            "tokens",
            "--scope",
            "tenants:read",
            "--suite",
            "dk1",
            "--rate-limit",
            "20",
        ],
        &env,
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let out = stdout(&created);
    let key = out.lines().next().unwrap().to_owned();
    let presented = store::api_keys::PresentedKey::parse(&key).expect("the first line is the key");
    assert!(
        out.contains(&format!("created API key {}", presented.id())),
        "{out}"
    );

    let mut conn = db.pool().acquire().await.unwrap();
    let record = store::api_keys::api_key(&mut conn, presented.id())
        .await
        .unwrap()
        .unwrap();
    assert!(record.verify(&presented));
    assert_eq!(record.suites.as_deref(), Some(&["dk1".to_owned()][..]));
    assert_eq!(record.rate_limit, Some(20));
    let secret = key.rsplit_once('_').unwrap().1;
    let stored: String = sqlx::query_scalar("select row_to_json(k)::text from api_keys k")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert!(!stored.contains(secret), "the secret reached a column");

    let listed = daikai(&["api-keys", "list"], &env);
    let listing = stdout(&listed);
    assert!(listing.contains(presented.id()) && listing.contains("tenants:read,tokens"));
    assert!(!listing.contains(secret));
    assert!(listing.contains("1 key(s)"), "{listing}");

    let revoked = daikai(&["api-keys", "revoke", presented.id()], &env);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let record = store::api_keys::api_key(&mut conn, presented.id())
        .await
        .unwrap()
        .unwrap();
    assert!(record.revoked_at.is_some());
    let unknown = daikai(&["api-keys", "revoke", "nosuchkey000"], &env);
    assert_eq!(unknown.status.code(), Some(6), "not found");
    assert!(
        stderr(&unknown).contains("no API key"),
        "{}",
        stderr(&unknown)
    );
}
