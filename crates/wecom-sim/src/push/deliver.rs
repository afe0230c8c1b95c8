//! The delivery machinery: one dispatcher (duplicates, shuffling) feeding one lane per URL
//! (ordering, concurrency, retries), and the HTTP attempt itself.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::{DeliveryConfig, DeliveryReport, Destination, Job};
use crate::rng::SplitMix64;
use crate::stats::Stats;

/// How many delivery reports `GET /sim/deliveries` can show.
const LOG_CAPACITY: usize = 1000;
/// Largest answer body read from a receiver.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// State shared by the pusher handle, the dispatcher and the lanes.
#[derive(Debug)]
pub(crate) struct Shared {
    config: RwLock<DeliveryConfig>,
    log: Mutex<VecDeque<DeliveryReport>>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) http: reqwest::Client,
}

impl Shared {
    pub(crate) fn new(config: DeliveryConfig, stats: Arc<Stats>) -> Self {
        Self {
            config: RwLock::new(config),
            log: Mutex::new(VecDeque::new()),
            stats,
            // Per-request timeouts come from the live config; never follow redirects.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }

    pub(crate) fn config(&self) -> DeliveryConfig {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_config(&self, config: DeliveryConfig) {
        *self
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
    }

    pub(crate) fn recent(&self, limit: usize) -> Vec<DeliveryReport> {
        let log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let skip = log.len().saturating_sub(limit);
        log.iter().skip(skip).cloned().collect()
    }

    fn record(&self, report: &DeliveryReport) {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(report.clone());
        drop(log);
        self.stats.update(|s| {
            if report.delivered {
                s.callbacks.delivered += 1;
            } else {
                s.callbacks.failed += 1;
            }
        });
    }
}

/// The task that turns queued pushes into deliveries. Run it with [`Dispatcher::run`].
#[derive(Debug)]
pub struct Dispatcher {
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Job>,
    rng: SplitMix64,
    lanes: HashMap<String, mpsc::UnboundedSender<Job>>,
}

impl Dispatcher {
    pub(crate) fn new(shared: Arc<Shared>, rx: mpsc::UnboundedReceiver<Job>, seed: u64) -> Self {
        Self {
            shared,
            rx,
            rng: SplitMix64::new(seed ^ 0xD15_7A7C4),
            lanes: HashMap::new(),
        }
    }

    /// Delivers until `shutdown` is cancelled (pushes still queued are dropped).
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => break,
                job = self.rx.recv() => match job {
                    Some(job) => job,
                    None => break,
                },
            };
            let config = self.shared.config();
            let mut batch = vec![first];
            if config.shuffle {
                self.collect_window(&mut batch, &config, &shutdown).await;
            }
            let mut batch = self.with_duplicates(batch, &config);
            if config.shuffle {
                self.rng.shuffle(&mut batch);
            }
            for job in batch {
                self.route(job, &shutdown);
            }
        }
    }

    /// Shuffle mode: gathers what arrives within the window.
    async fn collect_window(
        &mut self,
        batch: &mut Vec<Job>,
        config: &DeliveryConfig,
        shutdown: &CancellationToken,
    ) {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(config.shuffle_window_ms);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(deadline) => return,
                job = self.rx.recv() => match job {
                    Some(job) => batch.push(job),
                    None => return,
                },
            }
        }
    }

    fn with_duplicates(&mut self, batch: Vec<Job>, config: &DeliveryConfig) -> Vec<Job> {
        let mut out = Vec::with_capacity(batch.len());
        for job in batch {
            if self.rng.chance(config.duplicate_rate) {
                for copy in 1..=config.duplicate_copies {
                    out.push(Job {
                        push: Arc::clone(&job.push),
                        url: job.url.clone(),
                        copy,
                        done: None,
                    });
                    self.shared.stats.update(|s| {
                        s.callbacks.duplicates += 1;
                        s.callbacks.queued += 1;
                    });
                }
            }
            out.push(job);
        }
        out
    }

    /// Hands the job to its URL's lane, starting the lane if needed.
    fn route(&mut self, job: Job, shutdown: &CancellationToken) {
        let lane = self.lanes.entry(job.url.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(lane(Arc::clone(&self.shared), rx, shutdown.clone()));
            tx
        });
        if let Err(mpsc::error::SendError(job)) = lane.send(job) {
            tracing::warn!(push_id = job.push.id, "delivery lane stopped; push dropped");
        }
    }
}

/// Delivers one URL's pushes in order, at most `concurrency_per_url` at a time.
async fn lane(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    shutdown: CancellationToken,
) {
    let mut limit = shared.config().concurrency_per_url.max(1);
    let mut permits = Arc::new(Semaphore::new(limit));
    loop {
        let job = tokio::select! {
            () = shutdown.cancelled() => break,
            job = rx.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let wanted = shared.config().concurrency_per_url.max(1);
        if wanted != limit {
            // Wait for the pushes in flight under the old limit, then switch.
            let drained = permits
                .acquire_many(u32::try_from(limit).unwrap_or(u32::MAX))
                .await;
            drop(drained);
            limit = wanted;
            permits = Arc::new(Semaphore::new(limit));
        }
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let shared = Arc::clone(&shared);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = deliver(&shared, job) => {}
            }
            drop(permit);
        });
    }
}

/// Posts one push until it is answered `success` or the retries run out.
async fn deliver(shared: &Shared, job: Job) {
    let config = shared.config();
    let push = &job.push;
    let body = push.body();
    let accepts_empty = matches!(push.destination, Destination::App { .. });
    let mut report = DeliveryReport {
        push_id: push.id,
        copy: job.copy,
        kind: push.kind.clone(),
        url: job.url.clone(),
        attempts: 0,
        delivered: false,
        last_status: None,
        last_error: None,
    };
    for attempt in 0..=config.retries {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(config.retry_interval_ms)).await;
        }
        report.attempts += 1;
        shared.stats.update(|s| s.callbacks.attempts += 1);
        let url = format!("{}?{}", job.url, push.signed_query(wall_clock_secs()));
        let outcome = attempt_once(&shared.http, &url, &body, &config).await;
        match outcome {
            Ok((status, answer)) => {
                report.last_status = Some(status);
                let answer = answer.trim();
                if status == 200 && (answer == "success" || (accepts_empty && answer.is_empty())) {
                    report.delivered = true;
                    report.last_error = None;
                    break;
                }
                report.last_error = Some(format!("answer {status}: {}", quote(answer)));
            }
            Err(err) => report.last_error = Some(err),
        }
        tracing::debug!(push_id = push.id, attempt, url = %job.url, error = ?report.last_error, "callback not acknowledged");
    }
    if !report.delivered {
        tracing::warn!(push_id = push.id, kind = %push.kind, url = %job.url, attempts = report.attempts, error = ?report.last_error, "callback given up");
    }
    shared.record(&report);
    if let Some(done) = job.done {
        let _ = done.send(report);
    }
}

/// One POST: the status and (capped) body, or the transport error.
async fn attempt_once(
    http: &reqwest::Client,
    url: &str,
    body: &str,
    config: &DeliveryConfig,
) -> Result<(u16, String), String> {
    let send = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "text/xml")
        .body(body.to_owned())
        .timeout(Duration::from_millis(config.timeout_ms))
        .send();
    let mut response = send.await.map_err(describe)?;
    let status = response.status().as_u16();
    let mut answer = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        let room = MAX_ANSWER_BYTES.saturating_sub(answer.len());
        answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok((status, String::from_utf8_lossy(&answer).into_owned()))
}

pub(crate) fn describe(err: reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else {
        "request"
    };
    let err = err.without_url();
    let mut text = format!("{kind}: {err}");
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The first characters of an answer, for reports.
fn quote(answer: &str) -> String {
    let cut: String = answer.chars().take(80).collect();
    format!("{cut:?}")
}

/// The transport timestamp is the real time, not the simulated clock: an ingress rejects
/// signatures whose timestamp is far from its own clock, and a test that moved the simulated
/// clock forward must still be able to push.
pub(crate) fn wall_clock_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
