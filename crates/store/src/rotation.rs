//! Key rotation: re-sealing every stored secret under the active key (`daikai rotate-secrets`),
//! counting which key each stored secret is under, so an operator knows when an old key can
//! be dropped, and checking at start that a process can open what is stored
//! ([`unopenable_keys`]): a replica with the wrong key would otherwise seal new secrets that the
//! correctly configured replicas cannot open.
//!
//! Rotation runs online, next to the workers: each row is rewritten only if its nonce is still the
//! one that was read (a row a worker rewrote meanwhile is already under the active key).

use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row as _};

use crate::error::StoreError;
use crate::sealed::from_columns;
use crate::secret::{SecretBox, SecretContext, SecretError};

/// One sealed column family (`*_ciphertext`, `*_nonce`, `*_key_id`).
struct SealedColumn {
    /// `table.column`, as in [`SecretContext`].
    label: &'static str,
    table: &'static str,
    prefix: &'static str,
    /// Text expressions for the row key, in [`SecretContext`] order.
    key_select: &'static str,
    /// Matches the row by the key values bound as `$1…$n`.
    key_match: &'static str,
    key_len: usize,
    context: fn(&[String]) -> SecretContext,
}

// The queries below splice these names into their text with `format!` (hence `AssertSqlSafe`):
// constants only; key ids, keys and sealed values are bind parameters.
const COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        label: "suites.ticket",
        table: "suites",
        prefix: "ticket",
        key_select: "suite_id",
        key_match: "suite_id = $1",
        key_len: 1,
        context: |key| SecretContext::suite_ticket(&key[0]),
    },
    SealedColumn {
        label: "suites.suite_token",
        table: "suites",
        prefix: "suite_token",
        key_select: "suite_id",
        key_match: "suite_id = $1",
        key_len: 1,
        context: |key| SecretContext::suite_token(&key[0]),
    },
    SealedColumn {
        label: "tenants.permanent_code",
        table: "tenants",
        prefix: "permanent_code",
        key_select: "suite_id, corp_id",
        key_match: "suite_id = $1 and corp_id = $2",
        key_len: 2,
        context: |key| SecretContext::permanent_code(&key[0], &key[1]),
    },
    SealedColumn {
        label: "corp_tokens.token",
        table: "corp_tokens",
        prefix: "token",
        key_select: "suite_id, corp_id",
        key_match: "suite_id = $1 and corp_id = $2",
        key_len: 2,
        context: |key| SecretContext::corp_token(&key[0], &key[1]),
    },
    SealedColumn {
        label: "jsapi_tickets.ticket",
        table: "jsapi_tickets",
        prefix: "ticket",
        key_select: "suite_id, corp_id, kind",
        key_match: "suite_id = $1 and corp_id = $2 and kind = $3",
        key_len: 3,
        context: |key| SecretContext::jsapi_ticket(&key[0], &key[1], &key[2]),
    },
    SealedColumn {
        label: "auth_codes.code",
        table: "auth_codes",
        prefix: "code",
        key_select: "encode(code_sha256, 'hex')",
        key_match: "code_sha256 = decode($1, 'hex')",
        key_len: 1,
        context: |key| SecretContext::auth_code(&key[0]),
    },
];

/// How many values one column had re-sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resealed {
    /// `table.column`.
    pub column: &'static str,
    /// Values re-sealed under the active key.
    pub count: u64,
}

/// How many values of one column are sealed under one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    /// `table.column`.
    pub column: &'static str,
    /// The key id.
    pub key_id: String,
    /// Number of values.
    pub count: i64,
}

/// A key id under which the database holds secrets that a keyring cannot open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnopenableKey {
    /// The key id stored with the values.
    pub key_id: String,
    /// True when the keyring has no key of that id; false when its key of that id does not
    /// open the value (other key bytes under the same id, or an altered row).
    pub missing: bool,
    /// The `table.column`s holding values under that id.
    pub columns: Vec<&'static str>,
}

impl std::fmt::Display for UnopenableKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = if self.missing {
            "is not in the keyring"
        } else {
            "is in the keyring with a key that does not open them (other key bytes under that id?)"
        };
        write!(
            f,
            "key id `{}` {why} ({})",
            self.key_id,
            self.columns.join(", ")
        )
    }
}

/// Opens one stored value per key id of every sealed column (suite tickets and tokens,
/// permanent codes, corp tokens, AuthCodes) and returns the key ids that do not open, by key
/// id. Empty when `secrets` can read everything stored (or nothing is stored). Opening a
/// value, rather than comparing ids, also catches a key configured under the right id with the
/// wrong bytes.
pub async fn unopenable_keys(
    conn: &mut PgConnection,
    secrets: &SecretBox,
) -> Result<Vec<UnopenableKey>, StoreError> {
    let mut found: Vec<UnopenableKey> = Vec::new();
    for column in COLUMNS {
        let sql = format!(
            "select distinct on ({p}_key_id) {keys}, {p}_ciphertext, {p}_nonce, {p}_key_id
             from {t} where {p}_key_id is not null order by {p}_key_id",
            keys = column.key_select,
            p = column.prefix,
            t = column.table,
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await?;
        let n = column.key_len;
        for row in rows {
            let key = (0..n)
                .map(|i| row.try_get::<String, _>(i))
                .collect::<Result<Vec<_>, _>>()?;
            let Some(sealed) =
                from_columns(row.try_get(n)?, row.try_get(n + 1)?, row.try_get(n + 2)?)
            else {
                continue;
            };
            let missing = match secrets.open(&(column.context)(&key), &sealed) {
                Ok(_) => continue,
                Err(SecretError::UnknownKeyId { .. }) => true,
                Err(_) => false,
            };
            match found.iter_mut().find(|k| k.key_id == sealed.key_id) {
                Some(known) => {
                    known.columns.push(column.label);
                    known.missing &= missing;
                }
                None => found.push(UnopenableKey {
                    key_id: sealed.key_id,
                    missing,
                    columns: vec![column.label],
                }),
            }
        }
    }
    found.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    Ok(found)
}

/// Re-seals every stored secret that is not under the active key, `batch` rows per
/// transaction. Fails (having re-sealed what it could before) if a value is under a key the
/// keyring lacks.
pub async fn rotate_secrets(
    pool: &PgPool,
    secrets: &SecretBox,
    batch: i64,
) -> Result<Vec<Resealed>, StoreError> {
    let batch = batch.max(1);
    let mut report = Vec::with_capacity(COLUMNS.len());
    for column in COLUMNS {
        let mut count = 0;
        loop {
            let mut tx = pool.begin().await?;
            let (seen, done) = reseal_batch(&mut tx, secrets, column, batch).await?;
            tx.commit().await?;
            count += done;
            // a short batch is the last one; a batch that rewrote nothing is racing writers
            // that still seal under an old key (deploy the new key everywhere first)
            if seen < batch || done == 0 {
                break;
            }
        }
        report.push(Resealed {
            column: column.label,
            count,
        });
    }
    Ok(report)
}

/// Counts stored secrets per column and key id.
pub async fn key_usage(conn: &mut PgConnection) -> Result<Vec<KeyUsage>, StoreError> {
    let mut usage = Vec::new();
    for column in COLUMNS {
        let sql = format!(
            "select {p}_key_id, count(*) from {t} where {p}_key_id is not null
             group by 1 order by 1",
            p = column.prefix,
            t = column.table
        );
        let rows: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await?;
        usage.extend(rows.into_iter().map(|(key_id, count)| KeyUsage {
            column: column.label,
            key_id,
            count,
        }));
    }
    Ok(usage)
}

/// Re-seals up to `batch` rows of `column`; returns (rows read, rows rewritten).
async fn reseal_batch(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    column: &SealedColumn,
    batch: i64,
) -> Result<(i64, u64), StoreError> {
    let select = format!(
        "select {keys}, {p}_ciphertext, {p}_nonce, {p}_key_id from {t}
         where {p}_key_id is not null and {p}_key_id <> $1
         limit $2 for no key update",
        keys = column.key_select,
        p = column.prefix,
        t = column.table,
    );
    let rows = sqlx::query(AssertSqlSafe(select))
        .bind(secrets.active_key_id().as_str())
        .bind(batch)
        .fetch_all(&mut *conn)
        .await?;
    let n = column.key_len;
    let update = format!(
        "update {t} set {p}_ciphertext = ${c}, {p}_nonce = ${nn}, {p}_key_id = ${k}
         where {m} and {p}_nonce = ${old}",
        t = column.table,
        p = column.prefix,
        m = column.key_match,
        c = n + 1,
        nn = n + 2,
        k = n + 3,
        old = n + 4,
    );
    let mut rewritten = 0;
    let seen = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    for row in rows {
        let key = (0..n)
            .map(|i| row.try_get::<String, _>(i))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(sealed) = from_columns(row.try_get(n)?, row.try_get(n + 1)?, row.try_get(n + 2)?)
        else {
            continue;
        };
        let context = (column.context)(&key);
        let plaintext = secrets.open(&context, &sealed)?;
        let resealed = {
            use secrecy::ExposeSecret as _;
            secrets.seal(&context, plaintext.expose_secret())?
        };
        let mut query = sqlx::query(AssertSqlSafe(update.as_str()));
        for part in &key {
            query = query.bind(part);
        }
        let done = query
            .bind(&resealed.ciphertext)
            .bind(&resealed.nonce)
            .bind(&resealed.key_id)
            .bind(&sealed.nonce)
            .execute(&mut *conn)
            .await?;
        rewritten += done.rows_affected();
    }
    Ok((seen, rewritten))
}

/// [`rotate_secrets`] that reports each committed batch as `on_batch(column, rewritten)`, for
/// the progress `daikai rotate-secrets` shows. Every batch is committed on its own, so an
/// interrupted rotation loses nothing: running it again re-seals only what is left.
pub async fn rotate_secrets_with_progress(
    pool: &PgPool,
    secrets: &SecretBox,
    batch: i64,
    mut on_batch: impl FnMut(&'static str, u64),
) -> Result<Vec<Resealed>, StoreError> {
    let batch = batch.max(1);
    let mut report = Vec::with_capacity(COLUMNS.len());
    for column in COLUMNS {
        let mut count = 0;
        loop {
            let mut tx = pool.begin().await?;
            let (seen, done) = reseal_batch(&mut tx, secrets, column, batch).await?;
            tx.commit().await?;
            count += done;
            if done > 0 {
                on_batch(column.label, done);
            }
            // as in rotate_secrets: a short batch is the last, an empty one races old writers
            if seen < batch || done == 0 {
                break;
            }
        }
        report.push(Resealed {
            column: column.label,
            count,
        });
    }
    Ok(report)
}
