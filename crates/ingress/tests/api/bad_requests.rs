//! A battery of malformed or unauthenticated requests: each gets a 4xx with a short reason, none
//! is published, and the service keeps answering.

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{
    APP_KEY, APP_TOKEN, CORP_ID, KEY, Options, PROVIDER_CORP_ID, Push, SUITE_ID, TOKEN, TestApp,
    app_path, now, seal, sign, spawn_app, suite_path,
};

fn ticket() -> String {
    format!(
        "<xml><SuiteId><![CDATA[{SUITE_ID}]]></SuiteId><InfoType><![CDATA[suite_ticket]]></InfoType>\
         <TimeStamp>1403610513</TimeStamp><SuiteTicket><![CDATA[t]]></SuiteTicket></xml>"
    )
}

fn small_body_app() -> Options {
    Options {
        max_body_bytes: 4096,
        ..Options::default()
    }
}

/// Sends raw bytes and returns the status code, or `None` if the connection closed without an
/// answer.
async fn raw(app: &TestApp, request: &[u8], half_close: bool) -> Option<u16> {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    if half_close {
        stream.shutdown().await.unwrap();
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server neither answered nor closed");
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).and_then(|code| code.parse().ok())
}

/// Checks the answer, then that the service still takes a valid push.
async fn expect(app: &TestApp, what: &str, response: reqwest::Response, status: u16, reason: &str) {
    assert_eq!(response.status(), status, "{what}");
    let body = response.text().await.unwrap();
    assert!(body.contains(reason), "{what}: {body:?}");
    assert!(body.len() < 100, "{what}: reasons are short");
    let ok = app
        .post(&suite_path(), &TestApp::suite_push(&ticket()))
        .await;
    assert_eq!(ok.status(), 200, "after {what}");
}

/// Sends each bad push to `path` expecting `status` and `reason`, then checks that only the
/// valid pushes sent in between were published, and nothing else anywhere.
async fn battery(app: &TestApp, cases: Vec<(&str, &str, Push, u16, &str)>) {
    for (what, path, push, status, reason) in &cases {
        expect(app, what, app.post(path, push).await, *status, reason).await;
    }
    let auth = app.queue(bus::WorkQueue::Auth);
    let mut published = 0;
    while app.poll_message(&auth, Duration::ZERO).await.is_some() {
        published += 1;
    }
    assert_eq!(
        published,
        cases.len(),
        "only the valid pushes are published"
    );
    app.assert_all_queues_empty().await;
}

#[tokio::test]
async fn unauthenticated_or_stale_requests_are_400() {
    let app = spawn_app(Options::default()).await;
    let good = TestApp::suite_push(&ticket());
    let mut wrong_sig = good.clone();
    wrong_sig.query = wrong_sig
        .query
        .replacen("msg_signature=", "msg_signature=0", 1);
    let mut no_sig = good.clone();
    no_sig.query = no_sig
        .query
        .split('&')
        .skip(1)
        .collect::<Vec<_>>()
        .join("&");
    let ts = now().parse::<i64>().unwrap();
    let stale = seal(TOKEN, KEY, SUITE_ID, &ticket(), &(ts - 3600).to_string());
    let ahead = seal(TOKEN, KEY, SUITE_ID, &ticket(), &(ts + 3600).to_string());
    let not_a_number = seal(TOKEN, KEY, SUITE_ID, &ticket(), "yesterday");
    let template_keys_on_app_url = seal(TOKEN, KEY, CORP_ID, &ticket(), &now());
    let (suite, app_url) = (suite_path(), app_path());
    battery(
        &app,
        vec![
            (
                "wrong signature",
                &suite,
                wrong_sig,
                400,
                "invalid signature",
            ),
            ("missing signature", &suite, no_sig, 400, "msg_signature"),
            ("stale timestamp", &suite, stale, 400, "clock skew"),
            ("future timestamp", &suite, ahead, 400, "clock skew"),
            (
                "timestamp not a number",
                &suite,
                not_a_number,
                400,
                "timestamp is not a number",
            ),
            (
                "template keys on the app URL",
                &app_url,
                template_keys_on_app_url,
                400,
                "invalid signature",
            ),
        ],
    )
    .await;
    let metrics = app.metrics().await;
    for cause in ["signature", "stale", "timestamp", "query"] {
        let line = format!("ingress_rejections_total{{cause=\"{cause}\"}}");
        assert!(metrics.contains(&line), "{line}");
    }
    app.stop().await;
}

#[tokio::test]
async fn broken_ciphertexts_with_valid_signatures_are_400() {
    let app = spawn_app(Options::default()).await;
    let full = seal(TOKEN, KEY, SUITE_ID, &ticket(), &now()).encrypt;
    let bytes = STANDARD.decode(&full).unwrap();
    let truncated = STANDARD.encode(&bytes[..bytes.len() - 5]);
    let last_block_missing = STANDARD.encode(&bytes[..bytes.len() - 32]);
    let suite = suite_path();
    let signed = |encrypt: &str| sign(TOKEN, KEY, encrypt, SUITE_ID, &now());
    battery(
        &app,
        vec![
            (
                "garbage base64",
                &suite,
                signed("!!!not*base64###"),
                400,
                "cannot decrypt",
            ),
            (
                "truncated ciphertext",
                &suite,
                signed(&truncated),
                400,
                "cannot decrypt",
            ),
            (
                "last block missing",
                &suite,
                signed(&last_block_missing),
                400,
                "cannot decrypt",
            ),
            (
                "empty ciphertext",
                &suite,
                signed(""),
                400,
                "cannot decrypt",
            ),
        ],
    )
    .await;
    app.stop().await;
}

/// The exact answers: each cause is named once, and a timestamp that is not a number is reported
/// as such whatever the signature.
#[tokio::test]
async fn answers_name_each_cause_once() {
    let app = spawn_app(Options::default()).await;
    let full = seal(TOKEN, KEY, SUITE_ID, &ticket(), &now()).encrypt;
    let bytes = STANDARD.decode(&full).unwrap();
    let signed = |encrypt: &str| sign(TOKEN, KEY, encrypt, SUITE_ID, &now());
    let good = TestApp::suite_push(&ticket());
    let with_query = |query: String| Push {
        query,
        ..good.clone()
    };
    let signature_only = good.query.split_once("&timestamp=").unwrap().0.to_owned();
    let suite = suite_path();
    let cases = [
        (
            "not whole AES blocks",
            signed(&STANDARD.encode(&bytes[..bytes.len() - 5])),
            "cannot decrypt: not a whole number of AES blocks",
        ),
        (
            "not base64",
            signed("!!!not*base64###"),
            "cannot decrypt: ciphertext is not valid base64",
        ),
        (
            "a word for a timestamp, signed",
            seal(TOKEN, KEY, SUITE_ID, &ticket(), "yesterday"),
            "timestamp is not a number",
        ),
        (
            "a word for a timestamp, unsigned",
            with_query(format!("{signature_only}&timestamp=soon&nonce=1")),
            "timestamp is not a number",
        ),
        (
            "an empty timestamp",
            with_query(format!("{signature_only}&timestamp=&nonce=1")),
            "timestamp is not a number",
        ),
        (
            "no timestamp",
            with_query(format!("{signature_only}&nonce=1")),
            "bad query: missing query parameter timestamp",
        ),
        (
            "wrong signature",
            with_query(good.query.replacen("msg_signature=", "msg_signature=0", 1)),
            "invalid signature",
        ),
    ];
    for (what, push, answer) in cases {
        let response = app.post(&suite, &push).await;
        assert_eq!(response.status(), 400, "{what}");
        assert_eq!(response.text().await.unwrap(), answer, "{what}");
    }
    let padding = signed(&STANDARD.encode(&bytes[..bytes.len() - 32]));
    let body = app.post(&suite, &padding).await.text().await.unwrap();
    assert!(
        body.starts_with("cannot decrypt: bad plaintext: "),
        "bad padding: {body}"
    );
    assert_eq!(body.matches("decrypt").count(), 1, "{body}");

    let verification = crate::helpers::verification_query(TOKEN, KEY, SUITE_ID, "echo");
    let word = verification
        .split('&')
        .map(|p| {
            if p.starts_with("timestamp=") {
                "timestamp=later"
            } else {
                p
            }
        })
        .collect::<Vec<_>>()
        .join("&");
    let response = app.get(&format!("{suite}?{word}")).await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.text().await.unwrap(), "timestamp is not a number");
    app.stop().await;
}

#[tokio::test]
async fn foreign_receive_ids_are_400_and_counted_with_both_ids() {
    let app = spawn_app(Options::default()).await;
    let foreign = seal(TOKEN, KEY, "wwforeign0000001", &ticket(), &now());
    let app_to_provider = seal(APP_TOKEN, APP_KEY, PROVIDER_CORP_ID, &ticket(), &now());
    let app_to_suite = seal(APP_TOKEN, APP_KEY, SUITE_ID, &ticket(), &now());
    let (suite, app_url) = (suite_path(), app_path());
    battery(
        &app,
        vec![
            ("foreign receiveid", &suite, foreign, 400, "receiveid"),
            (
                "app POST to the provider",
                &app_url,
                app_to_provider,
                400,
                "receiveid",
            ),
            (
                "app POST to the suite",
                &app_url,
                app_to_suite,
                400,
                "receiveid",
            ),
        ],
    )
    .await;
    let metrics = app.metrics().await;
    let line = format!(
        "ingress_receive_id_mismatch_total{{actual=\"wwforeign0000001\",\
         expected=\"{SUITE_ID},{PROVIDER_CORP_ID}\",route=\"suite_post\"}} 1"
    );
    assert!(metrics.contains(&line), "{metrics}");
    let line = format!(
        "ingress_receive_id_mismatch_total{{actual=\"{PROVIDER_CORP_ID}\",\
         expected=\"{CORP_ID}\",route=\"app_post\"}} 1"
    );
    assert!(metrics.contains(&line), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn bodies_that_are_not_callbacks_are_400_or_413() {
    let app = spawn_app(small_body_app()).await;
    let good = TestApp::suite_push(&ticket());
    let with_body = |body: String| Push {
        body,
        ..good.clone()
    };
    let laughs = format!(
        "<!DOCTYPE xml [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\
         <!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]><xml><Encrypt>&c;{}</Encrypt></xml>",
        good.encrypt
    );
    let inner_laughs = seal(
        TOKEN,
        KEY,
        SUITE_ID,
        "<!DOCTYPE xml [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><xml><InfoType>&b;</InfoType></xml>",
        &now(),
    );
    let plain_text = seal(TOKEN, KEY, SUITE_ID, "hello, not xml", &now());
    let huge = format!("<xml><Encrypt>{}</Encrypt></xml>", "A".repeat(8192));
    let suite = suite_path();
    battery(
        &app,
        vec![
            (
                "non-XML body",
                &suite,
                with_body("not xml <<<".into()),
                400,
                "envelope",
            ),
            (
                "empty body",
                &suite,
                with_body(String::new()),
                400,
                "envelope",
            ),
            (
                "entity expansion in the envelope",
                &suite,
                with_body(laughs),
                400,
                "envelope",
            ),
            (
                "entity expansion inside",
                &suite,
                inner_laughs,
                400,
                "not a WeCom event",
            ),
            (
                "decrypted body not XML",
                &suite,
                plain_text,
                400,
                "not a WeCom event",
            ),
            ("oversize body", &suite, with_body(huge), 413, "too large"),
            (
                "unknown suite",
                "/callback/suite/dkNotConfigured",
                good.clone(),
                404,
                "unknown suite",
            ),
        ],
    )
    .await;
    let no_echostr = app.get(&format!("{suite}?{}", good.query)).await;
    expect(&app, "GET without echostr", no_echostr, 400, "echostr").await;

    let mut chunked = format!(
        "POST {suite}?{} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        good.query
    );
    for _ in 0..10 {
        write!(chunked, "400\r\n{}\r\n", "A".repeat(1024)).unwrap();
    }
    chunked.push_str("0\r\n\r\n");
    assert_eq!(
        raw(&app, chunked.as_bytes(), false).await,
        Some(413),
        "chunked oversize"
    );
    let metrics = app.metrics().await;
    for cause in ["envelope", "event", "too_large", "unknown_suite"] {
        let line = format!("ingress_rejections_total{{cause=\"{cause}\"}}");
        assert!(metrics.contains(&line), "{line}");
    }
    app.stop().await;
}

#[tokio::test]
async fn lying_content_length_is_refused_and_the_service_keeps_answering() {
    let app = spawn_app(Options::default()).await;
    let good = TestApp::suite_push(&ticket());
    let head = |length: &str| {
        format!(
            "POST {}?{} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {length}\r\n\r\n",
            suite_path(),
            good.query
        )
    };

    // Longer than the body, then the client stops sending: an incomplete body.
    let longer = format!(
        "{}{}",
        head(&(good.body.len() + 100).to_string()),
        good.body
    );
    let status = raw(&app, longer.as_bytes(), true).await;
    assert!(status.is_none_or(|s| s == 400), "{status:?}");

    // Shorter than the body: the envelope is cut (the rest is garbage on the connection).
    let shorter = format!("{}{}", head(&(good.body.len() / 2).to_string()), good.body);
    assert_eq!(raw(&app, shorter.as_bytes(), false).await, Some(400));

    // Not a number.
    let nonsense = format!("{}{}", head("lots"), good.body);
    assert_eq!(raw(&app, nonsense.as_bytes(), false).await, Some(400));

    // Over the limit by declaration alone: refused before any body is read.
    assert_eq!(
        raw(&app, head("99999999").as_bytes(), false).await,
        Some(413)
    );

    assert_eq!(app.post(&suite_path(), &good).await.status(), 200);
    let auth = app.queue(bus::WorkQueue::Auth);
    assert!(app.next_message(&auth).await.is_some());
    app.assert_all_queues_empty().await;
    app.stop().await;
}
