//! WeCom's side of the callbacks: seal an [`Event`] exactly as WeCom does and POST it to the
//! ingress, with WeCom's retry behaviour and optional duplicate and shuffled delivery.
//!
//! Sealing: the event XML comes from `wecom::event::Event::to_xml`, is encrypted with
//! `wecom::crypto::CallbackCrypto` for the receiveid WeCom uses (the suite id on the template
//! URL, the corp id on the app URL), and is wrapped in the
//! `<xml><ToUserName/><Encrypt/><AgentID/></xml>` envelope with `msg_signature`, `timestamp`
//! and `nonce` in the query string. Nothing here writes XML by hand except that envelope.
//!
//! Delivery: pushes to one URL go out in order, one at a time by default (a retrying push holds
//! back the ones behind it, as a queue per URL would); each attempt has a timeout (5 s), a push
//! is retried up to 3 times unless the answer is `success`. Duplicate mode sends some pushes
//! twice; shuffle mode collects pushes for a short window and sends them in random order.

mod deliver;
mod verify;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::RngExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use url::Url;
use wecom::crypto::{CallbackCrypto, CryptoError};
use wecom::event::Event;
use wecom::ids::{CorpId, SuiteId};

pub use deliver::Dispatcher;
pub use verify::VerifyReport;

use crate::stats::Stats;

/// How callbacks are delivered; `GET`/`POST /sim/delivery` at run time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Base URL of the ingress (`SIM_CALLBACK_BASE`); `null` disables pushes.
    pub callback_base: Option<Url>,
    /// Per-attempt timeout in milliseconds (WeCom: 5 s).
    pub timeout_ms: u64,
    /// Retries after the first attempt (WeCom: 3).
    pub retries: u32,
    /// Pause before each retry, in milliseconds.
    pub retry_interval_ms: u64,
    /// Probability (0..=1) that a push is delivered more than once.
    pub duplicate_rate: f64,
    /// Extra copies such a push gets (1: delivered twice; 2: three times).
    pub duplicate_copies: u32,
    /// Deliver pushes in random order.
    pub shuffle: bool,
    /// How long shuffle mode collects pushes before sending them, in milliseconds.
    pub shuffle_window_ms: u64,
    /// Pushes in flight per URL (1 keeps each URL's pushes in order).
    pub concurrency_per_url: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            callback_base: None,
            timeout_ms: 5_000,
            retries: 3,
            retry_interval_ms: 1_000,
            duplicate_rate: 0.0,
            duplicate_copies: 1,
            shuffle: false,
            shuffle_window_ms: 200,
            concurrency_per_url: 1,
        }
    }
}

impl DeliveryConfig {
    /// Checks ranges.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.duplicate_rate) {
            return Err("duplicate_rate must be between 0 and 1".to_owned());
        }
        if !(1..=10).contains(&self.duplicate_copies) {
            return Err("duplicate_copies must be between 1 and 10".to_owned());
        }
        if self.timeout_ms == 0 {
            return Err("timeout_ms must be at least 1".to_owned());
        }
        if self.concurrency_per_url == 0 {
            return Err("concurrency_per_url must be at least 1".to_owned());
        }
        if let Some(base) = &self.callback_base {
            check_base(base)?;
        }
        Ok(())
    }
}

/// A callback base must be an http(s) URL without query or fragment.
pub fn check_base(base: &Url) -> Result<(), String> {
    if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
        return Err(format!("callback base {base} must be an http(s) URL"));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(format!(
            "callback base {base} must not have a query or fragment"
        ));
    }
    Ok(())
}

/// Which callback URL a push goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "url_kind", rename_all = "snake_case")]
pub enum Destination {
    /// `{base}/callback/suite/{suite_id}`: template callbacks, receiveid = suite id.
    Suite {
        /// The suite.
        suite_id: SuiteId,
    },
    /// `{base}/callback/app/{suite_id}/{corp_id}`: app data callbacks, receiveid = corp id.
    App {
        /// The suite whose app it is.
        suite_id: SuiteId,
        /// The corp.
        corp_id: CorpId,
        /// The app's agentid (the envelope's `AgentID`).
        agent_id: i64,
    },
}

impl Destination {
    /// The receiveid WeCom encrypts for, also the envelope's `ToUserName`.
    pub fn receive_id(&self) -> &str {
        match self {
            Self::Suite { suite_id } => suite_id.as_str(),
            Self::App { corp_id, .. } => corp_id.as_str(),
        }
    }

    /// The URL under `base`.
    pub fn url(&self, base: &Url) -> String {
        let base = base.as_str().trim_end_matches('/');
        match self {
            Self::Suite { suite_id } => format!("{base}/callback/suite/{suite_id}"),
            Self::App {
                suite_id, corp_id, ..
            } => format!("{base}/callback/app/{suite_id}/{corp_id}"),
        }
    }

    fn agent_id(&self) -> String {
        match self {
            Self::Suite { .. } => String::new(),
            Self::App { agent_id, .. } => agent_id.to_string(),
        }
    }
}

/// A sealed callback, ready to POST.
#[derive(Debug, Clone)]
pub struct Push {
    /// Unique per push (copies share it).
    pub id: u64,
    /// `Event::kind()`, e.g. `create_auth`, `change_contact.update_user`.
    pub kind: String,
    /// Where it goes.
    pub destination: Destination,
    encrypt: String,
    crypto: CallbackCrypto,
}

impl Push {
    /// The POST body: WeCom's envelope around the ciphertext.
    pub fn body(&self) -> String {
        format!(
            "<xml><ToUserName><![CDATA[{}]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt>\
             <AgentID><![CDATA[{}]]></AgentID></xml>",
            self.destination.receive_id(),
            self.encrypt,
            self.destination.agent_id()
        )
    }

    /// A fresh `msg_signature=…&timestamp=…&nonce=…` query for one delivery.
    pub fn signed_query(&self, timestamp: i64) -> String {
        let timestamp = timestamp.to_string();
        let nonce = rand::rng()
            .random_range(1_000_000_000u64..10_000_000_000)
            .to_string();
        let signature = self.crypto.signature(&timestamp, &nonce, &self.encrypt);
        format!("msg_signature={signature}&timestamp={timestamp}&nonce={nonce}")
    }
}

/// What happened to one push (or one copy of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    /// The push id.
    pub push_id: u64,
    /// 0 for the push itself, 1 for a duplicate copy.
    pub copy: u32,
    /// The event kind.
    pub kind: String,
    /// The URL.
    pub url: String,
    /// HTTP attempts made.
    pub attempts: u32,
    /// Whether the receiver answered `success`.
    pub delivered: bool,
    /// The last HTTP status, if any answer came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// The last transport error or unexpected answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A push accepted for delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Queued {
    /// The push id.
    pub id: u64,
    /// The event kind.
    pub kind: String,
    /// The URL.
    pub url: String,
}

/// A queued push plus, when asked for, the way to wait for its report.
#[derive(Debug)]
pub struct Pending {
    /// What was queued.
    pub queued: Queued,
    /// Resolves with the report of the original (not the duplicate).
    pub done: Option<oneshot::Receiver<DeliveryReport>>,
}

pub(crate) struct Job {
    push: Arc<Push>,
    url: String,
    copy: u32,
    done: Option<oneshot::Sender<DeliveryReport>>,
}

/// The handle the rest of the simulator pushes through.
#[derive(Debug)]
pub struct Pusher {
    shared: Arc<deliver::Shared>,
    tx: mpsc::UnboundedSender<Job>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("push_id", &self.push.id)
            .field("url", &self.url)
            .field("copy", &self.copy)
            .finish_non_exhaustive()
    }
}

impl Pusher {
    /// A pusher and the dispatcher task that must run for pushes to go out.
    pub fn new(config: DeliveryConfig, stats: Arc<Stats>, seed: u64) -> (Self, Dispatcher) {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(deliver::Shared::new(config, stats));
        let dispatcher = Dispatcher::new(Arc::clone(&shared), rx, seed);
        let pusher = Self {
            shared,
            tx,
            next_id: AtomicU64::new(1),
        };
        (pusher, dispatcher)
    }

    /// The delivery settings.
    pub fn config(&self) -> DeliveryConfig {
        self.shared.config()
    }

    /// Replaces the delivery settings (validated by the caller).
    pub fn set_config(&self, config: DeliveryConfig) {
        self.shared.set_config(config);
    }

    /// The most recent delivery reports, newest last.
    pub fn recent(&self, limit: usize) -> Vec<DeliveryReport> {
        self.shared.recent(limit)
    }

    /// Sends WeCom's URL-verification GET for `destination` and checks the echo.
    /// `None` when no callback base is configured.
    pub async fn verify_url(
        &self,
        destination: &Destination,
        crypto: &CallbackCrypto,
        receive_id: &str,
    ) -> Option<VerifyReport> {
        let config = self.shared.config();
        let url = destination.url(config.callback_base.as_ref()?);
        let timeout = std::time::Duration::from_millis(config.timeout_ms);
        Some(verify::verify(&self.shared.http, &url, crypto, receive_id, timeout).await)
    }

    /// Encrypts `event` for `destination` with `crypto` (the suite's template or app keys).
    pub fn seal(
        &self,
        event: &Event,
        destination: Destination,
        crypto: CallbackCrypto,
    ) -> Result<Push, CryptoError> {
        let encrypt = crypto.encrypt(&event.to_xml(), destination.receive_id())?;
        Ok(Push {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            kind: event.kind(),
            destination,
            encrypt,
            crypto,
        })
    }

    /// Queues a sealed push. `None` when no callback base is configured (nothing is sent).
    pub fn enqueue(&self, push: Push, wait: bool) -> Option<Pending> {
        let base = self.shared.config().callback_base?;
        let url = push.destination.url(&base);
        let queued = Queued {
            id: push.id,
            kind: push.kind.clone(),
            url: url.clone(),
        };
        let (done_tx, done_rx) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let job = Job {
            push: Arc::new(push),
            url,
            copy: 0,
            done: done_tx,
        };
        if self.tx.send(job).is_err() {
            tracing::warn!(push_id = queued.id, "dispatcher stopped; push dropped");
            return None;
        }
        self.shared.stats.update(|s| s.callbacks.queued += 1);
        Some(Pending {
            queued,
            done: done_rx,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wecom::event::SuiteTicket;

    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

    #[test]
    fn sealed_push_opens_with_the_same_keys_and_receiveid() {
        let stats = Arc::new(Stats::default());
        let (pusher, _dispatcher) = Pusher::new(DeliveryConfig::default(), stats, 1);
        let crypto = CallbackCrypto::new("token", KEY).unwrap();
        let event = Event::SuiteTicket(SuiteTicket {
            suite_id: "dk1".parse().unwrap(),
            suite_ticket: "t1".parse().unwrap(),
            timestamp: 1,
        });
        let dest = Destination::Suite {
            suite_id: "dk1".parse().unwrap(),
        };
        let push = pusher.seal(&event, dest, crypto.clone()).unwrap();
        let body = push.body();
        let envelope = wecom::callback::EncryptedEnvelope::parse(body.as_bytes()).unwrap();
        assert_eq!(envelope.to_user_name.as_deref(), Some("dk1"));
        let query =
            wecom::callback::CallbackQuery::parse(&push.signed_query(1_700_000_000)).unwrap();
        let opened = crypto
            .open(
                &query.msg_signature,
                &query.timestamp,
                &query.nonce,
                &envelope.encrypt,
            )
            .unwrap();
        assert_eq!(opened.receive_id, "dk1");
        assert_eq!(Event::parse(&opened.message).unwrap(), event);
    }

    #[test]
    fn urls_and_receive_ids() {
        let base = Url::parse("http://ingress:8080/prefix/").unwrap();
        let app = Destination::App {
            suite_id: "dk1".parse().unwrap(),
            corp_id: "ww2".parse().unwrap(),
            agent_id: 1_000_002,
        };
        assert_eq!(
            app.url(&base),
            "http://ingress:8080/prefix/callback/app/dk1/ww2"
        );
        assert_eq!(app.receive_id(), "ww2");
        assert_eq!(app.agent_id(), "1000002");
        let suite = Destination::Suite {
            suite_id: "dk1".parse().unwrap(),
        };
        assert_eq!(
            suite.url(&base),
            "http://ingress:8080/prefix/callback/suite/dk1"
        );
        assert_eq!(suite.agent_id(), "");
    }

    #[test]
    fn no_base_no_push() {
        let stats = Arc::new(Stats::default());
        let (pusher, _dispatcher) = Pusher::new(DeliveryConfig::default(), stats, 1);
        let crypto = CallbackCrypto::new("token", KEY).unwrap();
        let event = Event::SuiteTicket(SuiteTicket {
            suite_id: "dk1".parse().unwrap(),
            suite_ticket: "t1".parse().unwrap(),
            timestamp: 1,
        });
        let push = pusher
            .seal(
                &event,
                Destination::Suite {
                    suite_id: "dk1".parse().unwrap(),
                },
                crypto,
            )
            .unwrap();
        assert!(pusher.enqueue(push, false).is_none());
    }
}
