//! `api_keys`: the keys the provider's own apps call the provider API with (docs/api.md §2).
//!
//! A key reads `dk_<id>_<secret>`: the id (12 lowercase letters and digits) names it in logs,
//! metrics and the CLI; the secret (32 random bytes, base64url) proves it. Only the SHA-256 of the
//! secret is stored, so the key is printed once, at creation, and a database dump does not hold
//! it. The secret has 256 bits of entropy, so a plain hash is enough (no password stretching);
//! it is compared in constant time ([`ApiKeyRecord::verify`]).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::rand_core::UnwrapErr;
use rand::rngs::SysRng;
use rand::{Rng as _, RngExt as _};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::{AssertSqlSafe, PgConnection};
use subtle::ConstantTimeEq as _;

use crate::error::StoreError;
use crate::secret::sha256;

/// What every key starts with.
pub const KEY_PREFIX: &str = "dk_";
const ID_LEN: usize = 12;
const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const SECRET_BYTES: usize = 32;

/// What a key may do. The API checks the scope of each route (docs/api.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `tenants:read`: list tenants and read one.
    TenantsRead,
    /// `tokens`: a tenant's corp access token, and invalidating it.
    Tokens,
    /// `jssdk`: JS-SDK signatures (the tickets never leave the service).
    Jssdk,
    /// `login`: the member behind an OAuth2 login code.
    Login,
    /// `directory:read`: the mirrored directory.
    DirectoryRead,
}

impl Scope {
    /// Every scope, in documentation order.
    pub const ALL: [Self; 5] = [
        Self::TenantsRead,
        Self::Tokens,
        Self::Jssdk,
        Self::Login,
        Self::DirectoryRead,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TenantsRead => "tenants:read",
            Self::Tokens => "tokens",
            Self::Jssdk => "jssdk",
            Self::Login => "login",
            Self::DirectoryRead => "directory:read",
        }
    }

    /// Parses a scope name.
    pub fn parse(name: &str) -> Result<Self, StoreError> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == name)
            .ok_or_else(|| {
                StoreError::invalid(
                    "API key scope",
                    "unknown scope (tenants:read, tokens, jssdk, login, directory:read)",
                )
            })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A key as presented by a caller, split into its id and its secret. Its `Debug` shows the id
/// only.
#[derive(Clone)]
pub struct PresentedKey {
    id: String,
    secret: SecretString,
}

impl PresentedKey {
    /// Splits `dk_<id>_<secret>`; `None` when the text does not have that shape.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(KEY_PREFIX)?;
        let id = rest.get(..ID_LEN)?;
        let secret = rest.get(ID_LEN..)?.strip_prefix('_')?;
        let id_ok = id.bytes().all(|b| ID_ALPHABET.contains(&b));
        let secret_ok = !secret.is_empty()
            && secret.len() <= 64
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        (id_ok && secret_ok).then(|| Self {
            id: id.to_owned(),
            secret: SecretString::from(secret.to_owned()),
        })
    }

    /// The key's id (safe to log).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// SHA-256 of the secret part.
    pub fn secret_sha256(&self) -> [u8; 32] {
        sha256(self.secret.expose_secret())
    }
}

impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A new key: the full text, to print once, and what is stored of it.
#[derive(Clone)]
pub struct GeneratedKey {
    /// `dk_<id>_<secret>`.
    pub key: SecretString,
    /// The id.
    pub id: String,
    secret_sha256: [u8; 32],
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl GeneratedKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut rng = UnwrapErr(SysRng);
        let id: String = (0..ID_LEN)
            .map(|_| char::from(ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())]))
            .collect();
        let mut bytes = [0_u8; SECRET_BYTES];
        rng.fill_bytes(&mut bytes);
        let secret = URL_SAFE_NO_PAD.encode(bytes);
        Self {
            key: SecretString::from(format!("{KEY_PREFIX}{id}_{secret}")),
            secret_sha256: sha256(&secret),
            id,
        }
    }
}

/// What to create: the name and the grants of a key.
#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    /// A label for people (`crm-backend`).
    pub name: &'a str,
    /// What it may do (at least one scope).
    pub scopes: &'a [Scope],
    /// The suites it may act for; `None` for every suite.
    pub suites: Option<&'a [String]>,
    /// Requests per second on each API replica; `None` for the API's default.
    pub rate_limit: Option<i32>,
}

/// A stored key (never the key itself).
#[derive(Clone, PartialEq)]
pub struct ApiKeyRecord {
    /// The key's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The suites it may act for; `None` for every suite.
    pub suites: Option<Vec<String>>,
    /// Requests per second per API replica; `None` for the API's default.
    pub rate_limit: Option<i32>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last use, as written by the API (at most once a minute per replica).
    pub last_used_at: Option<DateTime<Utc>>,
    secret_sha256: Vec<u8>,
}

impl fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("suites", &self.suites)
            .field("rate_limit", &self.rate_limit)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

impl ApiKeyRecord {
    /// Whether `presented` is this key: same id and the same secret, compared in constant time.
    pub fn verify(&self, presented: &PresentedKey) -> bool {
        let hash = presented.secret_sha256();
        presented.id == self.id && bool::from(hash.as_slice().ct_eq(&self.secret_sha256))
    }

    /// Whether the key may act for `suite_id`.
    pub fn allows_suite(&self, suite_id: &str) -> bool {
        self.suites
            .as_ref()
            .is_none_or(|suites| suites.iter().any(|s| s == suite_id))
    }

    /// Whether the key has `scope`.
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    secret_sha256: Vec<u8>,
    scopes: Vec<String>,
    suites: Option<Vec<String>>,
    rate_limit: Option<i32>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

impl TryFrom<Row> for ApiKeyRecord {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        let scopes = row
            .scopes
            .iter()
            .map(|s| {
                Scope::parse(s).map_err(|_| StoreError::Corrupt {
                    column: "api_keys.scopes",
                    detail: format!("unknown scope {s:?}"),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            id: row.id,
            name: row.name,
            scopes,
            suites: row.suites,
            rate_limit: row.rate_limit,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
            secret_sha256: row.secret_sha256,
        })
    }
}

// Spliced into queries with `format!`, hence `AssertSqlSafe` there: the SQL text is built
// from constants only; every value is a bind parameter.
const COLUMNS: &str =
    "id, name, secret_sha256, scopes, suites, rate_limit, created_at, revoked_at, last_used_at";

/// Creates a key with a fresh secret; the returned [`GeneratedKey::key`] is the only copy of it.
pub async fn create_api_key(
    conn: &mut PgConnection,
    new: &NewApiKey<'_>,
) -> Result<(GeneratedKey, ApiKeyRecord), StoreError> {
    if new.name.trim().is_empty() {
        return Err(StoreError::invalid("API key name", "must not be empty"));
    }
    if new.scopes.is_empty() {
        return Err(StoreError::invalid("API key scopes", "name at least one"));
    }
    if new.suites.is_some_and(<[String]>::is_empty) {
        return Err(StoreError::invalid(
            "API key suites",
            "name at least one, or none for every suite",
        ));
    }
    if new.rate_limit.is_some_and(|r| r <= 0) {
        return Err(StoreError::invalid(
            "API key rate limit",
            "must be positive",
        ));
    }
    let generated = GeneratedKey::generate();
    let mut scopes: Vec<&str> = new.scopes.iter().map(|s| s.as_str()).collect();
    scopes.sort_unstable();
    scopes.dedup();
    let row: Row = sqlx::query_as(AssertSqlSafe(format!(
        "insert into api_keys (id, name, secret_sha256, scopes, suites, rate_limit)
         values ($1, $2, $3, $4, $5, $6)
         returning {COLUMNS}"
    )))
    .bind(&generated.id)
    .bind(new.name.trim())
    .bind(generated.secret_sha256.as_slice())
    .bind(&scopes)
    .bind(new.suites)
    .bind(new.rate_limit)
    .fetch_one(&mut *conn)
    .await?;
    Ok((generated, row.try_into()?))
}

/// Every key, newest first (revoked ones included).
pub async fn list_api_keys(conn: &mut PgConnection) -> Result<Vec<ApiKeyRecord>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from api_keys order by created_at desc, id"
    )))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(ApiKeyRecord::try_from).collect()
}

/// One key by id, revoked or not.
pub async fn api_key(
    conn: &mut PgConnection,
    id: &str,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    let row: Option<Row> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from api_keys where id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(ApiKeyRecord::try_from).transpose()
}

/// Revokes a key: from then on it authenticates nothing. Returns the key, or `None` when no key
/// has that id; revoking a revoked key keeps its first revocation time.
pub async fn revoke_api_key(
    conn: &mut PgConnection,
    id: &str,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    let row: Option<Row> = sqlx::query_as(AssertSqlSafe(format!(
        "update api_keys set revoked_at = coalesce(revoked_at, now()) where id = $1
         returning {COLUMNS}"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(ApiKeyRecord::try_from).transpose()
}

/// Records that the key was used at `at` (never moves the time back).
pub async fn touch_api_key(
    conn: &mut PgConnection,
    id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "update api_keys set last_used_at = $2
         where id = $1 and (last_used_at is null or last_used_at < $2)",
    )
    .bind(id)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_back_and_verifies() {
        let generated = GeneratedKey::generate();
        let text = generated.key.expose_secret();
        assert!(text.starts_with("dk_"));
        let presented = PresentedKey::parse(text).unwrap();
        assert_eq!(presented.id(), generated.id);
        assert_eq!(presented.secret_sha256(), generated.secret_sha256);
        assert!(!format!("{presented:?}").contains(&text[16..]));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        for bad in [
            "",
            "dk_",
            "dk_abc_def",
            "xx_abcdefghijkl_secret",
            "dk_ABCDEFGHIJKL_secret",
            "dk_abcdefghijkl-secret",
            "dk_abcdefghijkl_",
            "dk_abcdefghijkl_sec ret",
        ] {
            assert!(PresentedKey::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()).unwrap(), scope);
        }
        assert!(Scope::parse("admin").is_err());
    }
}
