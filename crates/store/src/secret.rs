//! Secrets at rest: AES-256-GCM under a keyring, with the key id stored next to every ciphertext.
//!
//! Every WeCom credential daikai persists (permanent codes, AuthCodes, suite tickets, suite and
//! corp access tokens) goes through [`SecretBox`] before it reaches a column, so a database dump or
//! a replica without the key holds nothing usable. Three columns carry a sealed value:
//! `*_ciphertext` (ciphertext + GCM tag), `*_nonce` (12 random bytes) and `*_key_id`.
//!
//! Each value is bound to where it lives through the GCM associated data ([`SecretContext`]:
//! table, column and row key), so a ciphertext copied into another tenant's row fails to open.
//!
//! Rotation: the keyring has one *active* key (used to seal) and any number of *previous* keys
//! (used only to open). Deploy the new key as active with the old one as previous, run
//! `daikai rotate-secrets`, then drop the old key. `docs/operations.md` has the runbook.
//!
//! Key material and plaintext never appear in `Debug` output or error messages.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::Rng as _;
use rand::rand_core::UnwrapErr;
use rand::rngs::SysRng;
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};

/// Length of a key in bytes (AES-256).
pub const KEY_LEN: usize = 32;
/// Length of a GCM nonce in bytes.
pub const NONCE_LEN: usize = 12;
/// Longest key id accepted.
const MAX_KEY_ID_LEN: usize = 64;

/// Why a key could not be parsed or a secret sealed or opened. Never carries key material or
/// plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The key text is not base64 of exactly 32 bytes.
    #[error("invalid secret key: {0}")]
    InvalidKey(String),
    /// A key id is empty, too long or has characters outside `A-Z a-z 0-9 . _ -`.
    #[error(
        "invalid secret key id: it must be 1 to {MAX_KEY_ID_LEN} characters of A-Z a-z 0-9 . _ -"
    )]
    InvalidKeyId,
    /// Two keys of the keyring share an id.
    #[error("secret key id `{0}` appears twice in the keyring")]
    DuplicateKeyId(KeyId),
    /// A value was sealed under a key id the keyring does not have.
    #[error(
        "a secret was sealed under key id `{key_id}`, which is not in the keyring (known: {known}); \
         add that key as a previous key"
    )]
    UnknownKeyId {
        /// The id stored with the ciphertext.
        key_id: String,
        /// The ids the keyring has, comma-separated.
        known: String,
    },
    /// The key with the right id does not open the value: the key behind that id changed, or the
    /// row was altered or copied from elsewhere.
    #[error(
        "cannot open a secret sealed under key id `{key_id}` ({context}): wrong key for that id, \
         or the stored value was altered or moved"
    )]
    Decrypt {
        /// The key id used.
        key_id: String,
        /// Where the value lives (`table.column`).
        context: String,
    },
    /// The stored nonce does not have 12 bytes.
    #[error("malformed sealed value in {context}: nonce has {len} bytes, expected {NONCE_LEN}")]
    BadNonce {
        /// Where the value lives.
        context: String,
        /// The length found.
        len: usize,
    },
    /// The decrypted value is not UTF-8 (every WeCom secret is text).
    #[error("a secret in {context} decrypted to non-UTF-8 bytes")]
    NotUtf8 {
        /// Where the value lives.
        context: String,
    },
    /// Encryption failed (only possible for absurdly large inputs).
    #[error("cannot seal a secret for {context}")]
    Encrypt {
        /// Where the value was going.
        context: String,
    },
}

/// The id of a key, stored in every `*_key_id` column. Not secret.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// Parses a key id: 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
    pub fn parse(id: &str) -> Result<Self, SecretError> {
        let valid = !id.is_empty()
            && id.len() <= MAX_KEY_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(Self(id.to_owned()))
        } else {
            Err(SecretError::InvalidKeyId)
        }
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One AES-256 key and its id.
#[derive(Clone)]
pub struct SecretKey {
    id: KeyId,
    cipher: Aes256Gcm,
}

impl SecretKey {
    /// A key from raw bytes.
    pub fn from_bytes(id: KeyId, bytes: &[u8; KEY_LEN]) -> Self {
        Self {
            id,
            cipher: Aes256Gcm::new(bytes.into()),
        }
    }

    /// Parses the `DAIKAI_SECRET_KEY` form: `<key id>:<base64 of 32 bytes>`, or just the base64,
    /// in which case the id is derived from the key itself (`fp-` + 8 hex digits of its SHA-256),
    /// so the same key always gets the same id.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let (id, encoded) = match text.split_once(':') {
            Some((id, encoded)) => (Some(KeyId::parse(id.trim())?), encoded.trim()),
            None => (None, text),
        };
        let bytes = decode_key(encoded)?;
        let id = match id {
            Some(id) => id,
            None => fingerprint_id(&bytes),
        };
        Ok(Self::from_bytes(id, &bytes))
    }

    /// A fresh random key, returned with its `DAIKAI_SECRET_KEY` text (`<id>:<base64>`).
    /// The text is the only copy of the key: store it in the secret manager.
    pub fn generate(id: KeyId) -> (Self, SecretString) {
        let mut bytes = [0_u8; KEY_LEN];
        UnwrapErr(SysRng).fill_bytes(&mut bytes);
        let text = format!("{id}:{}", STANDARD.encode(bytes));
        (Self::from_bytes(id, &bytes), SecretString::from(text))
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn decode_key(encoded: &str) -> Result<[u8; KEY_LEN], SecretError> {
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|_| SecretError::InvalidKey("not valid base64 (standard alphabet)".to_owned()))?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        SecretError::InvalidKey(format!(
            "decodes to {} bytes, expected {KEY_LEN}",
            bytes.len()
        ))
    })
}

fn fingerprint_id(bytes: &[u8; KEY_LEN]) -> KeyId {
    let digest = Sha256::digest(bytes);
    KeyId(format!("fp-{}", hex::encode(&digest[..4])))
}

/// The keys a [`SecretBox`] knows: the active one seals, every one opens.
#[derive(Debug, Clone)]
pub struct Keyring {
    active: SecretKey,
    previous: Vec<SecretKey>,
}

impl Keyring {
    /// A keyring; key ids must be distinct.
    pub fn new(active: SecretKey, previous: Vec<SecretKey>) -> Result<Self, SecretError> {
        let mut seen = vec![active.id.clone()];
        for key in &previous {
            if seen.contains(&key.id) {
                return Err(SecretError::DuplicateKeyId(key.id.clone()));
            }
            seen.push(key.id.clone());
        }
        Ok(Self { active, previous })
    }

    /// A keyring with one key.
    pub fn single(active: SecretKey) -> Self {
        Self {
            active,
            previous: Vec::new(),
        }
    }

    /// Parses the configuration form: the active key as [`SecretKey::parse`] takes it, and the
    /// previous keys as a comma- or whitespace-separated list of the same form (may be empty).
    pub fn parse(active: &str, previous: &str) -> Result<Self, SecretError> {
        let active = SecretKey::parse(active)?;
        let previous = previous
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .map(SecretKey::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(active, previous)
    }

    /// The key that seals new values.
    pub fn active(&self) -> &SecretKey {
        &self.active
    }

    /// Every key id, the active one first.
    pub fn key_ids(&self) -> Vec<KeyId> {
        std::iter::once(&self.active)
            .chain(&self.previous)
            .map(|key| key.id.clone())
            .collect()
    }

    fn find(&self, id: &str) -> Option<&SecretKey> {
        std::iter::once(&self.active)
            .chain(&self.previous)
            .find(|key| key.id.as_str() == id)
    }
}

/// Where a sealed value lives: bound into the ciphertext as GCM associated data, so a value only
/// opens in the row and column it was sealed for.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretContext {
    label: String,
    aad: Vec<u8>,
}

impl SecretContext {
    /// `column` is `table.column`; `key` is the row's key, in column order.
    pub fn new(column: &str, key: &[&str]) -> Self {
        let mut aad = b"daikai/v1/".to_vec();
        aad.extend_from_slice(column.as_bytes());
        for part in key {
            aad.push(0);
            aad.extend_from_slice(part.as_bytes());
        }
        Self {
            label: column.to_owned(),
            aad,
        }
    }

    /// `suites.ticket` of one suite.
    pub fn suite_ticket(suite_id: &str) -> Self {
        Self::new("suites.ticket", &[suite_id])
    }

    /// `suites.suite_token` of one suite.
    pub fn suite_token(suite_id: &str) -> Self {
        Self::new("suites.suite_token", &[suite_id])
    }

    /// `tenants.permanent_code` of one tenant.
    pub fn permanent_code(suite_id: &str, corp_id: &str) -> Self {
        Self::new("tenants.permanent_code", &[suite_id, corp_id])
    }

    /// `corp_tokens.token` of one tenant.
    pub fn corp_token(suite_id: &str, corp_id: &str) -> Self {
        Self::new("corp_tokens.token", &[suite_id, corp_id])
    }

    /// `jsapi_tickets.ticket` of one tenant's ticket of one kind (`corp` or `agent`).
    pub fn jsapi_ticket(suite_id: &str, corp_id: &str, kind: &str) -> Self {
        Self::new("jsapi_tickets.ticket", &[suite_id, corp_id, kind])
    }

    /// `auth_codes.code` of one AuthCode, keyed by the hex of its SHA-256.
    pub fn auth_code(code_sha256_hex: &str) -> Self {
        Self::new("auth_codes.code", &[code_sha256_hex])
    }

    /// `table.column`, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }
}

impl fmt::Debug for SecretContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretContext({})", self.label)
    }
}

/// A sealed value as it is stored: the three `*_ciphertext`, `*_nonce`, `*_key_id` columns.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the key that sealed it.
    pub key_id: String,
    /// The 12-byte GCM nonce, random per value.
    pub nonce: Vec<u8>,
    /// Ciphertext followed by the 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// Seals and opens secrets with a [`Keyring`]. Cheap to clone (the keyring is shared).
#[derive(Clone)]
pub struct SecretBox {
    keyring: Arc<Keyring>,
}

impl SecretBox {
    /// A box over `keyring`.
    pub fn new(keyring: Keyring) -> Self {
        Self {
            keyring: Arc::new(keyring),
        }
    }

    /// The id new values are sealed under.
    pub fn active_key_id(&self) -> &KeyId {
        &self.keyring.active.id
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Seals `plaintext` for `context` under the active key with a fresh random nonce.
    pub fn seal(&self, context: &SecretContext, plaintext: &str) -> Result<Sealed, SecretError> {
        let key = &self.keyring.active;
        let mut nonce = [0_u8; NONCE_LEN];
        UnwrapErr(SysRng).fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: &context.aad,
        };
        let ciphertext = key
            .cipher
            .encrypt(&Nonce::from(nonce), payload)
            .map_err(|_| SecretError::Encrypt {
                context: context.label.clone(),
            })?;
        Ok(Sealed {
            key_id: key.id.0.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens a value sealed for `context` under any key of the keyring.
    pub fn open(
        &self,
        context: &SecretContext,
        sealed: &Sealed,
    ) -> Result<SecretString, SecretError> {
        let key = self
            .keyring
            .find(&sealed.key_id)
            .ok_or_else(|| SecretError::UnknownKeyId {
                key_id: sealed.key_id.clone(),
                known: self
                    .keyring
                    .key_ids()
                    .iter()
                    .map(KeyId::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let nonce =
            Nonce::try_from(sealed.nonce.as_slice()).map_err(|_| SecretError::BadNonce {
                context: context.label.clone(),
                len: sealed.nonce.len(),
            })?;
        let payload = Payload {
            msg: &sealed.ciphertext,
            aad: &context.aad,
        };
        let plaintext = key
            .cipher
            .decrypt(&nonce, payload)
            .map_err(|_| SecretError::Decrypt {
                key_id: sealed.key_id.clone(),
                context: context.label.clone(),
            })?;
        String::from_utf8(plaintext)
            .map(SecretString::from)
            .map_err(|_| SecretError::NotUtf8 {
                context: context.label.clone(),
            })
    }

    /// True when `sealed` is under a key other than the active one (a rotation candidate).
    pub fn needs_reseal(&self, sealed: &Sealed) -> bool {
        sealed.key_id != self.keyring.active.id.0
    }
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBox")
            .field("key_ids", &self.keyring.key_ids())
            .finish()
    }
}

/// SHA-256 of a secret: how daikai finds a row by a secret without storing it (AuthCodes,
/// and the compare-and-delete of a failing token).
pub fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    fn key(id: &str, byte: u8) -> SecretKey {
        SecretKey::from_bytes(KeyId::parse(id).unwrap(), &[byte; KEY_LEN])
    }

    #[test]
    fn seal_open_round_trip_binds_the_context() {
        let sb = SecretBox::new(Keyring::single(key("k1", 7)));
        let ctx = SecretContext::permanent_code("dk1", "ww1");
        let sealed = sb.seal(&ctx, "the-code").unwrap();
        assert_eq!(sealed.key_id, "k1");
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        assert_eq!(sb.open(&ctx, &sealed).unwrap().expose_secret(), "the-code");
        let other_row = SecretContext::permanent_code("dk1", "ww2");
        assert!(matches!(
            sb.open(&other_row, &sealed),
            Err(SecretError::Decrypt { .. })
        ));
    }

    #[test]
    fn parse_accepts_id_prefix_and_bare_base64() {
        let text = STANDARD.encode([9_u8; KEY_LEN]);
        let bare = SecretKey::parse(&text).unwrap();
        assert!(bare.id().as_str().starts_with("fp-"));
        assert_eq!(SecretKey::parse(&text).unwrap().id(), bare.id());
        let named = SecretKey::parse(&format!("2025-01:{text}")).unwrap();
        assert_eq!(named.id().as_str(), "2025-01");
        assert!(matches!(
            SecretKey::parse(&STANDARD.encode([1_u8; 31])),
            Err(SecretError::InvalidKey(_))
        ));
        assert!(matches!(
            SecretKey::parse("a b:AAAA"),
            Err(SecretError::InvalidKeyId)
        ));
    }

    #[test]
    fn debug_output_redacts_keys() {
        let (generated, text) = SecretKey::generate(KeyId::parse("g1").unwrap());
        let encoded = text.expose_secret().split_once(':').unwrap().1.to_owned();
        let debug = format!("{generated:?} {:?}", Keyring::single(generated.clone()));
        assert!(!debug.contains(&encoded));
        assert!(debug.contains("g1"));
    }

    #[test]
    fn keyring_rejects_duplicate_ids() {
        assert!(matches!(
            Keyring::new(key("a", 1), vec![key("b", 2), key("a", 3)]),
            Err(SecretError::DuplicateKeyId(_))
        ));
    }
}
