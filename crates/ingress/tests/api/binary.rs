//! The `daikai-ingress` binary itself: configuration errors name the variable, JSON log lines carry
//! the request id, SIGTERM drains and exits cleanly.

use std::process::Stdio;
use std::time::Duration;

use bus::testkit::{amqp_url, test_namespace};
use bus::{BrokerUrl, Topology};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

use crate::helpers::{KEY, SUITE_ID, TOKEN, now, seal, sign};

fn ingress(namespace: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_daikai-ingress"));
    command
        .env_clear()
        .env("INGRESS_ADDR", "127.0.0.1:0")
        .env("INGRESS_WORKERS", "1")
        .env("AMQP_URL", amqp_url())
        .env("AMQP_NAMESPACE", namespace)
        .env("WECOM_SUITE_ID", SUITE_ID)
        .env("WECOM_SUITE_SECRET", "secret")
        .env("WECOM_TOKEN", TOKEN)
        .env("WECOM_ENCODING_AES_KEY", KEY)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Reads JSON log lines until one has `message == wanted`; every line must be JSON.
async fn wait_for_log(lines: &mut Lines<BufReader<ChildStdout>>, wanted: &str) -> Value {
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            if value["message"] == wanted {
                return value;
            }
        }
        panic!("the log ended before {wanted:?}");
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {wanted:?} log line"))
}

#[tokio::test]
async fn invalid_configuration_fails_at_start_naming_the_variable() {
    let output = ingress("unused.")
        .env("INGRESS_MAX_BODY_BYTES", "zero")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("INGRESS_MAX_BODY_BYTES"), "{stderr}");

    let output = ingress("unused.")
        .env_remove("WECOM_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("WECOM_TOKEN"), "{stderr}");
    assert!(!stderr.contains(KEY), "{stderr}");
}

#[tokio::test]
async fn json_logs_carry_the_request_id_and_sigterm_drains() {
    let topology = Topology::new(test_namespace());
    let mut child = ingress(topology.namespace().as_str()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = wait_for_log(&mut lines, "ingress listening").await;
    let addr = listening["addr"].as_str().unwrap().to_owned();
    assert!(
        !listening.to_string().contains(KEY),
        "no secret in the logs"
    );
    wait_for_log(&mut lines, "publisher connected").await;

    let http = reqwest::Client::new();
    let response = http
        .post(format!(
            "http://{addr}/callback/suite/{SUITE_ID}?msg_signature=00&timestamp=1&nonce=2"
        ))
        .header("x-request-id", "trace-me-1")
        .body("<xml><Encrypt>abc</Encrypt></xml>")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let rejected = wait_for_log(&mut lines, "callback rejected").await;
    assert_eq!(rejected["span"]["request_id"], "trace-me-1", "{rejected}");
    assert_eq!(rejected["cause"], "signature");
    assert_eq!(rejected["reason"], "invalid signature");

    // Each cause is named once in the log, as in the answer.
    let encrypt = seal(TOKEN, KEY, SUITE_ID, "<xml/>", &now()).encrypt;
    let truncated = &encrypt[..encrypt.len() - 4];
    let push = sign(TOKEN, KEY, truncated, SUITE_ID, &now());
    let not_a_number = format!(
        "{}&timestamp=soon&nonce=2",
        push.query.split('&').next().unwrap()
    );
    for (query, cause, reason) in [
        (
            push.query.as_str(),
            "decrypt",
            "cannot decrypt: not a whole number of AES blocks",
        ),
        (
            not_a_number.as_str(),
            "timestamp",
            "timestamp is not a number",
        ),
    ] {
        let response = http
            .post(format!("http://{addr}/callback/suite/{SUITE_ID}?{query}"))
            .body(push.body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        assert_eq!(response.text().await.unwrap(), reason);
        let rejected = wait_for_log(&mut lines, "callback rejected").await;
        assert_eq!(rejected["cause"], cause, "{rejected}");
        assert_eq!(rejected["reason"], reason, "{rejected}");
    }

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    wait_for_log(&mut lines, "ingress stopped").await;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");

    let inspector = bus::connect(
        &BrokerUrl::parse(&amqp_url()).unwrap(),
        "ingress-binary-test",
    )
    .await
    .unwrap();
    let channel = inspector.create_channel().await.unwrap();
    topology.delete(&channel).await.unwrap();
}
