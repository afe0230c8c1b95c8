//! WeCom's URL verification: the GET it sends when a callback URL is saved in the console
//! (docs/wecom.md §1.1). The simulator sends the same GET on request, so an ingress's
//! verification route can be tested end to end.

use rand::RngExt as _;
use serde::Serialize;
use wecom::crypto::CallbackCrypto;

/// The outcome of one verification GET.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The URL verified (without the query).
    pub url: String,
    /// The receiveid the echostr was encrypted for.
    pub receive_id: String,
    /// Whether the answer was exactly the decrypted echostr.
    pub ok: bool,
    /// The HTTP status, if an answer came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The plaintext the receiver had to answer.
    pub expected: String,
    /// What it answered (first 200 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered: Option<String>,
    /// The transport error, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Sends the verification GET to `url` and checks the answer.
pub(crate) async fn verify(
    http: &reqwest::Client,
    url: &str,
    crypto: &CallbackCrypto,
    receive_id: &str,
    timeout: std::time::Duration,
) -> VerifyReport {
    // Like the official samples: a decimal string.
    let expected = rand::rng()
        .random_range(1_000_000_000_000_000_000u64..u64::MAX)
        .to_string();
    let mut report = VerifyReport {
        url: url.to_owned(),
        receive_id: receive_id.to_owned(),
        ok: false,
        status: None,
        expected: expected.clone(),
        answered: None,
        error: None,
    };
    let echostr = match crypto.encrypt(&expected, receive_id) {
        Ok(echostr) => echostr,
        Err(err) => {
            report.error = Some(err.to_string());
            return report;
        }
    };
    let timestamp = super::deliver::wall_clock_secs().to_string();
    let nonce = rand::rng()
        .random_range(100_000_000u64..1_000_000_000)
        .to_string();
    let signature = crypto.signature(&timestamp, &nonce, &echostr);
    let full = format!(
        "{url}?msg_signature={signature}&timestamp={timestamp}&nonce={nonce}&echostr={}",
        percent_encode(&echostr)
    );
    match http.get(full).timeout(timeout).send().await {
        Ok(response) => {
            report.status = Some(response.status().as_u16());
            let ok_status = response.status().is_success();
            match response.text().await {
                Ok(body) => {
                    report.ok = ok_status && body == expected;
                    report.answered = Some(body.chars().take(200).collect());
                }
                Err(err) => report.error = Some(err.without_url().to_string()),
            }
        }
        Err(err) => report.error = Some(super::deliver::describe(err)),
    }
    report
}

/// Percent-encodes a base64 string as WeCom does (`+`, `/`, `=` escaped).
fn percent_encode(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '+' => "%2B".to_owned(),
            '/' => "%2F".to_owned(),
            '=' => "%3D".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_base64_specials() {
        assert_eq!(percent_encode("a+b/c=="), "a%2Bb%2Fc%3D%3D");
        let decoded = wecom::callback::percent_decode(&percent_encode("x+/=")).unwrap();
        assert_eq!(decoded, "x+/=");
    }
}
