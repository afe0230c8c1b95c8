//! Who is calling: the API key of a request, checked against `api_keys`, rate-limited, and the
//! rules every route applies (docs/api.md §2).
//!
//! - `Authorization: Bearer dk_<id>_<secret>`; anything else, an unknown id, a revoked key or a
//!   wrong secret is 401 (the secret is compared as a SHA-256, in constant time).
//! - Then the key's rate limit (requests per second on this replica, a token bucket whose burst
//!   is one second's worth): 429 with `Retry-After`.
//! - Then each route asks for its scope and, when it names a suite, for the suite: 403.
//!
//! A replica keeps what it read about a key for `API_KEY_CACHE_SECS`, so a revocation takes up to
//! that long to reach it, and records the key's last use at most once a minute. The key itself
//! is never logged or kept in memory past the check: only its id is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, web};
use chrono::Utc;
use futures_util::future::LocalBoxFuture;
use sqlx::PgPool;
use store::api_keys::{self, ApiKeyRecord, PresentedKey, Scope};

use crate::error::Problem;
use crate::state::AppState;

/// How often a replica writes a key's `last_used_at`.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);
/// Keys remembered at most (unknown ids included); past it the cache starts over.
const MAX_CACHED_KEYS: usize = 10_000;

/// The key id of the request, for metrics and logs (set once the key is known).
#[derive(Debug, Clone)]
pub struct KeyLabel(pub String);

#[derive(Debug)]
struct Cached {
    record: Option<Arc<ApiKeyRecord>>,
    read_at: Instant,
    touched_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The keys a replica has seen and their rate-limit buckets.
#[derive(Debug)]
pub struct Keys {
    pool: PgPool,
    ttl: Duration,
    default_rate: u32,
    cache: Mutex<HashMap<String, Cached>>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Keys {
    /// Keys read from `pool`, trusted for `ttl`, limited to `default_rate` requests per second
    /// unless a key names its own limit.
    pub fn new(pool: PgPool, ttl: Duration, default_rate: u32) -> Self {
        Self {
            pool,
            ttl,
            default_rate,
            cache: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The key the `Authorization` header presents, checked and counted against its limit.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<Arc<ApiKeyRecord>, Problem> {
        let presented = presented_key(authorization)?;
        let record = self.lookup(presented.id()).await?;
        let Some(record) = record.filter(|r| r.verify(&presented)) else {
            tracing::info!(
                key_id = presented.id(),
                "refused an unknown key or a wrong secret"
            );
            return Err(Problem::unauthorized("the API key is not valid"));
        };
        if record.revoked_at.is_some() {
            tracing::info!(key_id = record.id, "refused a revoked key");
            return Err(Problem::unauthorized("the API key was revoked"));
        }
        let rate = record
            .rate_limit
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(self.default_rate);
        self.take_token(&record.id, rate)?;
        self.touch(&record.id);
        Ok(record)
    }

    async fn lookup(&self, id: &str) -> Result<Option<Arc<ApiKeyRecord>>, Problem> {
        let now = Instant::now();
        if !self.ttl.is_zero() {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(cached) = cache.get(id)
                && now.duration_since(cached.read_at) < self.ttl
            {
                return Ok(cached.record.clone());
            }
        }
        let mut conn = self.pool.acquire().await?;
        let record = api_keys::api_key(&mut conn, id).await?.map(Arc::new);
        drop(conn);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED_KEYS && !cache.contains_key(id) {
            cache.clear();
        }
        let touched_at = cache.get(id).and_then(|c| c.touched_at);
        cache.insert(
            id.to_owned(),
            Cached {
                record: record.clone(),
                read_at: now,
                touched_at,
            },
        );
        Ok(record)
    }

    /// Takes one request from the key's bucket: 429 with the wait until the next one when empty.
    fn take_token(&self, id: &str, rate: u32) -> Result<(), Problem> {
        let rate = f64::from(rate.max(1));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(id.to_owned()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let refilled =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(rate);
        bucket.at = now;
        if refilled >= 1.0 {
            bucket.tokens = refilled - 1.0;
            Ok(())
        } else {
            bucket.tokens = refilled;
            let wait = Duration::from_secs_f64((1.0 - refilled) / rate);
            Err(Problem::rate_limited(id, wait))
        }
    }

    /// Writes `last_used_at` in the background, at most once per [`TOUCH_INTERVAL`].
    fn touch(&self, id: &str) {
        let now = Instant::now();
        {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = cache.entry(id.to_owned()).or_insert(Cached {
                record: None,
                read_at: now.checked_sub(self.ttl).unwrap_or(now),
                touched_at: None,
            });
            if entry
                .touched_at
                .is_some_and(|at| now.duration_since(at) < TOUCH_INTERVAL)
            {
                return;
            }
            entry.touched_at = Some(now);
        }
        let pool = self.pool.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            let touched = async {
                let mut conn = pool.acquire().await?;
                api_keys::touch_api_key(&mut conn, &id, Utc::now()).await
            };
            if let Err(error) = touched.await {
                tracing::warn!(key_id = id, %error, "could not record the key's last use");
            }
        });
    }
}

fn presented_key(authorization: Option<&str>) -> Result<PresentedKey, Problem> {
    let value = authorization
        .ok_or_else(|| Problem::unauthorized("send the API key as `Authorization: Bearer dk_…`"))?;
    let (scheme, key) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Problem::unauthorized(
            "the Authorization header must use the Bearer scheme",
        ));
    }
    PresentedKey::parse(key.trim()).ok_or_else(|| Problem::unauthorized("the API key is not valid"))
}

/// The authenticated caller of a route: its key. Extracting it authenticates the request and
/// counts it against the key's rate limit.
#[derive(Debug, Clone)]
pub struct Caller(Arc<ApiKeyRecord>);

impl Caller {
    /// The key's id.
    pub fn key_id(&self) -> &str {
        &self.0.id
    }

    /// 403 unless the key has `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), Problem> {
        if self.0.has_scope(scope) {
            Ok(())
        } else {
            Err(Problem::missing_scope(scope))
        }
    }

    /// 403 unless the key has `scope` and serves `suite_id`.
    pub fn require_for(&self, scope: Scope, suite_id: &str) -> Result<(), Problem> {
        self.require(scope)?;
        if self.0.allows_suite(suite_id) {
            Ok(())
        } else {
            Err(Problem::suite_not_allowed(suite_id))
        }
    }

    /// The suites the key is limited to; `None` for every suite.
    pub fn suites(&self) -> Option<&[String]> {
        self.0.suites.as_deref()
    }
}

impl FromRequest for Caller {
    type Error = Problem;
    type Future = LocalBoxFuture<'static, Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_owned));
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| Problem::internal("the API state is missing"))?;
            let authorization = match authorization {
                None => None,
                Some(Ok(value)) => Some(value),
                Some(Err(_)) => return Err(Problem::unauthorized("the API key is not valid")),
            };
            let record = state.keys.authenticate(authorization.as_deref()).await;
            if let Ok(record) = &record {
                req.extensions_mut().insert(KeyLabel(record.id.clone()));
            }
            record.map(Caller)
        })
    }
}
