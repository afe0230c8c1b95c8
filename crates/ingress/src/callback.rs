//! From an HTTP request on a callback URL to a verified, parsed WeCom event — or the reason not.
//!
//! This is the only place a callback becomes trusted. The steps, in order:
//! 1. the suite in the path must be configured (404 otherwise);
//! 2. the query must carry `msg_signature`, a `timestamp` that is a number, and `nonce`;
//!    the signature over the exact `Encrypt` text (or percent-decoded `echostr`) must match;
//! 3. the signed `timestamp` must be within `INGRESS_MAX_CLOCK_SKEW_SECS` of now (replays);
//! 4. the ciphertext must decrypt and unframe;
//! 5. the receiveid inside the plaintext must be one this URL accepts.
//!
//! # Which receiveid each URL accepts (docs/wecom.md §1.6)
//! | route | accepted |
//! |---|---|
//! | `GET /callback/suite/{suite_id}` | the suite id, the provider corp id |
//! | `POST /callback/suite/{suite_id}` | the suite id, the provider corp id |
//! | `GET /callback/app/{suite_id}/{corp_id}` | the corp id of the path, the provider corp id |
//! | `POST /callback/app/{suite_id}/{corp_id}` | the corp id of the path |
//!
//! The provider corp id (`WECOM_PROVIDER_CORP_ID`) is accepted only when configured. On GET it is
//! what WeCom staff say URL verification uses for URLs saved in the provider console (both URL
//! kinds are saved there). On suite POST it is a deliberate tolerance: developers reported
//! `create_auth` pushes addressed to the provider corp id, and a rejected `create_auth` carries a
//! single-use AuthCode that is lost after WeCom's three retries — a tenant that can never be
//! activated. The signature has already proven the push comes from WeCom for this suite, and the
//! provider corp id is our own id, never a foreign one; such pushes are counted
//! (`ingress_receive_id_provider_total`) so the quirk stays visible. App POSTs accept only the
//! path's corp id: it is the only id that tells which tenant the event is for.
//!
//! Any other receiveid is refused with 400 after the signature check, logged at `warn` and counted
//! with both ids, so a misconfigured URL is diagnosable from the metrics alone.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wecom::callback::{CallbackQuery, QueryError};
use wecom::crypto::{CallbackCrypto, CryptoError, Decrypted};
use wecom::event::{Event, EventError};
use wecom::suite::Suites;

use crate::metrics::Metrics;

/// The four callback routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /callback/suite/{suite_id}`.
    SuiteGet,
    /// `POST /callback/suite/{suite_id}`.
    SuitePost,
    /// `GET /callback/app/{suite_id}/{corp_id}`.
    AppGet,
    /// `POST /callback/app/{suite_id}/{corp_id}`.
    AppPost,
}

impl Route {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::SuiteGet => "suite_get",
            Self::SuitePost => "suite_post",
            Self::AppGet => "app_get",
            Self::AppPost => "app_post",
        }
    }

    fn is_app(self) -> bool {
        matches!(self, Self::AppGet | Self::AppPost)
    }

    /// Whether the provider corp id is an accepted receiveid here (see the module docs).
    fn accepts_provider_corp_id(self) -> bool {
        !matches!(self, Self::AppPost)
    }
}

/// Why a callback request is refused. Each maps to one status and one metric cause.
///
/// The `Display` text is the answer's body and the `reason` of the log line, so it names each
/// cause once: a variant that shows its inner error in its text does not also return it as
/// [`std::error::Error::source`] (a reporter walking the chain would print it twice), and the
/// detail of the variants that keep their text short is in their `Debug` form, logged at `debug`.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// The suite in the path is not configured.
    #[error("unknown suite")]
    UnknownSuite,
    /// `msg_signature`, `timestamp` or `nonce` missing or badly encoded.
    #[error("bad query: {0}")]
    Query(QueryError),
    /// A GET without `echostr`.
    #[error("bad query: missing query parameter echostr")]
    MissingEchostr,
    /// The body exceeds `INGRESS_MAX_BODY_BYTES`.
    #[error("body too large")]
    TooLarge,
    /// The body could not be read completely.
    #[error("incomplete body")]
    Body,
    /// The body did not arrive within `INGRESS_BODY_TIMEOUT_MS`.
    #[error("body not received in time")]
    TooSlow,
    /// The body is not a callback envelope.
    #[error("body is not a callback envelope")]
    Envelope(CryptoError),
    /// The signature does not match.
    #[error("invalid signature")]
    Signature,
    /// The timestamp is not a number (checked before the signature: no signature can make it
    /// one).
    #[error("timestamp is not a number")]
    BadTimestamp,
    /// The timestamp is too far from now.
    #[error("timestamp outside the allowed clock skew")]
    StaleTimestamp,
    /// The ciphertext does not decrypt or unframe.
    #[error("cannot decrypt: {}", decrypt_detail(.0))]
    Decrypt(CryptoError),
    /// The receiveid is not one this URL accepts.
    #[error("receiveid not accepted on this URL")]
    ReceiveId {
        /// The ids this URL accepts.
        expected: Vec<String>,
        /// The id found in the plaintext.
        actual: String,
    },
    /// The plaintext is not a WeCom event (not XML, a DTD, too deep, too large).
    #[error("decrypted body is not a WeCom event")]
    NotAnEvent(#[source] EventError),
}

impl Rejection {
    /// Metric label.
    pub fn cause(&self) -> &'static str {
        match self {
            Self::UnknownSuite => "unknown_suite",
            Self::Query(_) | Self::MissingEchostr => "query",
            Self::TooLarge => "too_large",
            Self::Body => "body",
            Self::TooSlow => "too_slow",
            Self::Envelope(_) => "envelope",
            Self::Signature => "signature",
            Self::BadTimestamp => "timestamp",
            Self::StaleTimestamp => "stale",
            Self::Decrypt(_) => "decrypt",
            Self::ReceiveId { .. } => "receive_id",
            Self::NotAnEvent(_) => "event",
        }
    }
}

/// What went wrong in a decryption, without the "cannot decrypt" that
/// [`CryptoError::DecryptAes`] already says and [`Rejection::Decrypt`] says first.
fn decrypt_detail(error: &CryptoError) -> String {
    match error {
        CryptoError::DecryptAes(detail) => (*detail).to_owned(),
        other => other.to_string(),
    }
}

/// The signed query of a callback: `msg_signature`, `timestamp`, `nonce` (and `echostr` on GET),
/// with the timestamp known to be a number.
#[derive(Debug, Clone)]
pub struct Query {
    /// The parameters as sent (the signature covers the timestamp's text, not its value).
    pub params: CallbackQuery,
    /// `timestamp` in seconds since the Unix epoch.
    pub sent_at: i64,
}

impl Query {
    /// Parses a raw query string (without the `?`).
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        let params = CallbackQuery::parse(raw).map_err(Rejection::Query)?;
        let sent_at = params
            .timestamp
            .trim()
            .parse()
            .map_err(|_| Rejection::BadTimestamp)?;
        Ok(Self { params, sent_at })
    }
}

/// The keys of one suite's two callback URLs.
#[derive(Debug, Clone)]
pub struct SuiteKeys {
    template: CallbackCrypto,
    app: CallbackCrypto,
}

/// The path parameters of a callback request.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Which route.
    pub route: Route,
    /// `{suite_id}`.
    pub suite_id: &'a str,
    /// `{corp_id}` on app routes.
    pub corp_id: Option<&'a str>,
}

/// The signed material of a request.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    /// The parsed query.
    pub query: &'a Query,
    /// The `Encrypt` text of the body, or the decoded `echostr`.
    pub encrypt: &'a str,
}

/// A callback that passed every check: decrypted, addressed to this URL, fresh.
#[derive(Debug)]
pub struct Verified {
    /// Plaintext and receiveid.
    pub decrypted: Decrypted,
}

/// Authenticates callbacks for every configured suite.
#[derive(Debug, Clone)]
pub struct Authenticator {
    suites: HashMap<String, SuiteKeys>,
    provider_corp_id: Option<String>,
    max_clock_skew: Option<Duration>,
}

impl Authenticator {
    /// Builds the keys of every suite.
    pub fn new(
        suites: &Suites,
        provider_corp_id: Option<String>,
        max_clock_skew: Option<Duration>,
    ) -> Result<Self, CryptoError> {
        let mut keys = HashMap::with_capacity(suites.len());
        for suite in suites.iter() {
            keys.insert(
                suite.suite_id.to_string(),
                SuiteKeys {
                    template: suite.callback_crypto()?,
                    app: suite.app_callback_crypto()?,
                },
            );
        }
        Ok(Self {
            suites: keys,
            provider_corp_id,
            max_clock_skew,
        })
    }

    /// Whether the suite is configured (checked before reading any body).
    pub fn knows(&self, suite_id: &str) -> bool {
        self.suites.contains_key(suite_id)
    }

    /// Runs steps 1–5 of the module docs.
    pub fn verify(
        &self,
        target: Target<'_>,
        signed: Signed<'_>,
        metrics: &Metrics,
    ) -> Result<Verified, Rejection> {
        let keys = self
            .suites
            .get(target.suite_id)
            .ok_or(Rejection::UnknownSuite)?;
        let crypto = if target.route.is_app() {
            &keys.app
        } else {
            &keys.template
        };
        let query = &signed.query.params;
        crypto
            .verify_signature(
                &query.msg_signature,
                &query.timestamp,
                &query.nonce,
                signed.encrypt,
            )
            .map_err(|_| Rejection::Signature)?;
        self.check_freshness(signed.query.sent_at)?;
        let decrypted = crypto.decrypt(signed.encrypt).map_err(Rejection::Decrypt)?;
        self.check_receive_id(target, &decrypted.receive_id, metrics)?;
        Ok(Verified { decrypted })
    }

    fn check_freshness(&self, sent: i64) -> Result<(), Rejection> {
        let Some(max_skew) = self.max_clock_skew else {
            return Ok(());
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let skew = now.abs_diff(sent);
        if skew > max_skew.as_secs() {
            return Err(Rejection::StaleTimestamp);
        }
        Ok(())
    }

    fn check_receive_id(
        &self,
        target: Target<'_>,
        actual: &str,
        metrics: &Metrics,
    ) -> Result<(), Rejection> {
        let own = if target.route.is_app() {
            target.corp_id.unwrap_or_default()
        } else {
            target.suite_id
        };
        if actual == own {
            return Ok(());
        }
        let provider = self
            .provider_corp_id
            .as_deref()
            .filter(|_| target.route.accepts_provider_corp_id());
        if provider == Some(actual) {
            metrics
                .receive_id_provider
                .with_label_values(&[target.route.label()])
                .inc();
            tracing::info!(
                route = target.route.label(),
                suite_id = target.suite_id,
                receive_id = actual,
                "callback addressed to the provider corp id; accepted"
            );
            return Ok(());
        }
        let expected: Vec<String> = std::iter::once(own)
            .chain(provider)
            .map(str::to_owned)
            .collect();
        let expected_label = expected.join(",");
        metrics
            .receive_id_mismatch
            .with_label_values(&[target.route.label(), &expected_label, actual])
            .inc();
        tracing::warn!(
            route = target.route.label(),
            suite_id = target.suite_id,
            corp_id = target.corp_id,
            expected = %expected_label,
            actual,
            "authentic callback with a receiveid this URL does not accept; rejected"
        );
        Err(Rejection::ReceiveId {
            expected,
            actual: actual.to_owned(),
        })
    }
}

/// Parses the decrypted XML. XML that is well-formed but does not fit its typed event (a
/// required field missing, a malformed number) is authentic WeCom data in a shape this build
/// does not expect — API drift — so it becomes [`Event::Unknown`] that keeps the kind it
/// announced and the raw XML, and is published to that kind's routing key, so the worker that
/// owns the kind sees it; never refused, never parked as `unknown`. Bodies that are not XML at
/// all are refused.
pub fn parse_event(xml: &str, metrics: &Metrics) -> Result<Event, Rejection> {
    let event = Event::parse_or_unknown(xml).map_err(Rejection::NotAnEvent)?;
    if let Event::Unknown(unknown) = &event
        && let Some(error) = &unknown.parse_error
    {
        metrics.unparsed_events.inc();
        tracing::warn!(
            kind = %unknown.kind(),
            %error,
            "authentic event does not fit its type; published with its raw XML"
        );
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

    fn authenticator(provider: Option<&str>, skew: Option<u64>) -> Authenticator {
        let suites = Suites::from_lookup(|name| {
            match name {
                "WECOM_SUITE_ID" => Some("dk1"),
                "WECOM_SUITE_SECRET" => Some("s"),
                "WECOM_TOKEN" => Some("tok"),
                "WECOM_ENCODING_AES_KEY" => Some(KEY),
                _ => None,
            }
            .map(str::to_owned)
        })
        .unwrap();
        Authenticator::new(
            &suites,
            provider.map(str::to_owned),
            skew.map(Duration::from_secs),
        )
        .unwrap()
    }

    fn now() -> String {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string()
    }

    fn signed_for(receive_id: &str, timestamp: &str) -> (Query, String) {
        let crypto = CallbackCrypto::new("tok", KEY).unwrap();
        let encrypt = crypto.encrypt("<xml/>", receive_id).unwrap();
        let signature = crypto.signature(timestamp, "n", &encrypt);
        let query = Query::parse(&format!(
            "msg_signature={signature}&timestamp={timestamp}&nonce=n"
        ))
        .unwrap();
        (query, encrypt)
    }

    fn verify(
        auth: &Authenticator,
        route: Route,
        receive_id: &str,
        timestamp: &str,
    ) -> Result<Verified, Rejection> {
        let (query, encrypt) = signed_for(receive_id, timestamp);
        let target = Target {
            route,
            suite_id: "dk1",
            corp_id: route.is_app().then_some("wwcorp"),
        };
        auth.verify(
            target,
            Signed {
                query: &query,
                encrypt: &encrypt,
            },
            &Metrics::new().unwrap(),
        )
    }

    #[test]
    fn each_route_accepts_exactly_its_ids() {
        let auth = authenticator(Some("wwprovider"), None);
        let ts = now();
        let cases = [
            (Route::SuiteGet, "dk1", true),
            (Route::SuiteGet, "wwprovider", true),
            (Route::SuiteGet, "wwcorp", false),
            (Route::SuitePost, "dk1", true),
            (Route::SuitePost, "wwprovider", true),
            (Route::SuitePost, "wwcorp", false),
            (Route::SuitePost, "", false),
            (Route::AppGet, "wwcorp", true),
            (Route::AppGet, "wwprovider", true),
            (Route::AppGet, "dk1", false),
            (Route::AppPost, "wwcorp", true),
            (Route::AppPost, "wwprovider", false),
            (Route::AppPost, "dk1", false),
        ];
        for (route, id, accepted) in cases {
            let result = verify(&auth, route, id, &ts);
            assert_eq!(result.is_ok(), accepted, "{route:?} {id:?}: {result:?}");
            if !accepted {
                assert_eq!(result.unwrap_err().cause(), "receive_id");
            }
        }
    }

    #[test]
    fn provider_corp_id_is_refused_when_not_configured() {
        let auth = authenticator(None, None);
        let err = verify(&auth, Route::SuiteGet, "wwprovider", &now()).unwrap_err();
        assert!(matches!(err, Rejection::ReceiveId { .. }));
    }

    #[test]
    fn mismatch_is_counted_with_both_ids() {
        let auth = authenticator(None, None);
        let (query, encrypt) = signed_for("wwforeign", &now());
        let metrics = Metrics::new().unwrap();
        let target = Target {
            route: Route::AppPost,
            suite_id: "dk1",
            corp_id: Some("wwcorp"),
        };
        let signed = Signed {
            query: &query,
            encrypt: &encrypt,
        };
        assert!(auth.verify(target, signed, &metrics).is_err());
        let count = metrics
            .receive_id_mismatch
            .with_label_values(&["app_post", "wwcorp", "wwforeign"])
            .get();
        assert_eq!(count, 1);
    }

    #[test]
    fn stale_and_future_timestamps_are_refused_and_zero_disables() {
        let auth = authenticator(None, Some(600));
        let now: i64 = now().parse().unwrap();
        for ts in [now - 601, now + 601] {
            let err = verify(&auth, Route::SuitePost, "dk1", &ts.to_string()).unwrap_err();
            assert_eq!(err.cause(), "stale");
        }
        assert!(verify(&auth, Route::SuitePost, "dk1", &(now - 599).to_string()).is_ok());
        let err = Query::parse("msg_signature=a&timestamp=soon&nonce=n").unwrap_err();
        assert_eq!(err.cause(), "timestamp");
        assert_eq!(err.to_string(), "timestamp is not a number");
        let lenient = authenticator(None, None);
        assert!(verify(&lenient, Route::SuitePost, "dk1", "1").is_ok());
    }

    #[test]
    fn decryption_failures_name_their_cause_once() {
        let auth = authenticator(None, None);
        let (query, _) = signed_for("dk1", "1");
        let target = Target {
            route: Route::SuitePost,
            suite_id: "dk1",
            corp_id: None,
        };
        let crypto = CallbackCrypto::new("tok", KEY).unwrap();
        for (encrypt, answer) in [
            ("AAAA", "cannot decrypt: not a whole number of AES blocks"),
            ("!!", "cannot decrypt: ciphertext is not valid base64"),
        ] {
            let query = Query {
                params: CallbackQuery {
                    msg_signature: crypto.signature("1", "n", encrypt),
                    ..query.params.clone()
                },
                ..query
            };
            let signed = Signed {
                query: &query,
                encrypt,
            };
            let err = auth
                .verify(target, signed, &Metrics::new().unwrap())
                .unwrap_err();
            assert_eq!(err.to_string(), answer);
            assert!(std::error::Error::source(&err).is_none());
        }
    }

    #[test]
    fn unknown_suite_and_bad_signature() {
        let auth = authenticator(None, None);
        let (mut query, encrypt) = signed_for("dk1", "1");
        let metrics = Metrics::new().unwrap();
        let signed = Signed {
            query: &query,
            encrypt: &encrypt,
        };
        let other = Target {
            route: Route::SuitePost,
            suite_id: "dk2",
            corp_id: None,
        };
        assert!(matches!(
            auth.verify(other, signed, &metrics),
            Err(Rejection::UnknownSuite)
        ));
        query.params.nonce = "other".into();
        let target = Target {
            suite_id: "dk1",
            ..other
        };
        let signed = Signed {
            query: &query,
            encrypt: &encrypt,
        };
        assert!(matches!(
            auth.verify(target, signed, &metrics),
            Err(Rejection::Signature)
        ));
    }

    #[test]
    fn drifted_xml_keeps_its_kind_but_non_xml_is_refused() {
        let metrics = Metrics::new().unwrap();
        let drifted = "<xml><InfoType>create_auth</InfoType><SuiteId>dk1</SuiteId></xml>";
        let event = parse_event(drifted, &metrics).unwrap();
        // Routed to the auth worker as a create_auth, not parked in the unrouted queue.
        assert_eq!(event.kind(), "create_auth");
        let Event::Unknown(unknown) = &event else {
            panic!("{event:?}")
        };
        assert!(unknown.parse_error.as_deref().unwrap().contains("AuthCode"));
        assert_eq!(event.to_xml(), drifted);
        assert_eq!(metrics.unparsed_events.get(), 1);
        for bad in ["not xml", "<!DOCTYPE x [<!ENTITY a \"b\">]><xml>&a;</xml>"] {
            assert_eq!(parse_event(bad, &metrics).unwrap_err().cause(), "event");
        }
    }
}
