//! The callback crypto WeCom calls WXBizMsgCrypt (docs/wecom.md §1).
//!
//! Every push is authenticated by a SHA1 signature over four strings and encrypted with
//! AES-256-CBC. Two quirks make generic code fail here: PKCS#7 padding is to **32-byte** blocks
//! (pad values 1..=32), and the plaintext carries the id of the receiver after the message, which
//! callers must check themselves (see [`Decrypted::receive_id`]). Every input is untrusted: no
//! function in this module panics, whatever bytes it is given.

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit, block_padding::NoPadding};
use base64::Engine;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig, general_purpose::STANDARD};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;
type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;

/// WeCom pads to this block size, not AES's 16.
pub const PAD_BLOCK: usize = 32;
const RANDOM_LEN: usize = 16;
const LEN_FIELD: usize = 4;
const AES_BLOCK: usize = 16;

/// Errors of the callback crypto, one per official SDK code (-40001..=-40011).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// -40001: the signature does not match.
    #[error("signature mismatch")]
    InvalidSignature,
    /// -40002: the body is not a callback envelope.
    #[error("body is not a callback envelope: {0}")]
    ParseXml(String),
    /// -40003: a signature could not be computed (e.g. a parameter is missing).
    #[error("cannot compute signature: {0}")]
    ComputeSignature(&'static str),
    /// -40004: the EncodingAESKey does not decode to 32 bytes.
    #[error("EncodingAESKey must be 43 base64 characters decoding to 32 bytes")]
    IllegalAesKey,
    /// -40005: the receiveid in the plaintext is not one this endpoint accepts.
    #[error("receiveid {actual:?} is not one of {expected:?}")]
    ReceiveIdMismatch {
        actual: String,
        expected: Vec<String>,
    },
    /// -40006: encryption failed (the message is too long for the length field).
    #[error("cannot encrypt: {0}")]
    EncryptAes(&'static str),
    /// -40007: the ciphertext is not a whole number of AES blocks.
    #[error("cannot decrypt: {0}")]
    DecryptAes(&'static str),
    /// -40008: the decrypted plaintext is not framed as WeCom frames it.
    #[error("bad plaintext: {0}")]
    IllegalBuffer(&'static str),
    /// -40009: base64 encoding failed (kept for parity with the official codes).
    #[error("cannot encode base64")]
    EncodeBase64,
    /// -40010: the ciphertext is not valid base64.
    #[error("ciphertext is not valid base64")]
    DecodeBase64,
    /// -40011: a reply could not be built (kept for parity with the official codes).
    #[error("cannot build the reply")]
    GenReturnXml,
}

impl CryptoError {
    /// The official WeCom SDK error code.
    pub fn code(&self) -> i32 {
        match self {
            Self::InvalidSignature => -40001,
            Self::ParseXml(_) => -40002,
            Self::ComputeSignature(_) => -40003,
            Self::IllegalAesKey => -40004,
            Self::ReceiveIdMismatch { .. } => -40005,
            Self::EncryptAes(_) => -40006,
            Self::DecryptAes(_) => -40007,
            Self::IllegalBuffer(_) => -40008,
            Self::EncodeBase64 => -40009,
            Self::DecodeBase64 => -40010,
            Self::GenReturnXml => -40011,
        }
    }
}

/// A decrypted callback: the message and the id it was addressed to.
#[derive(Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The plaintext message: XML for callbacks, a decimal string for URL verification.
    pub message: String,
    /// The receiveid WeCom put after the message: a suite id, a corp id or empty.
    pub receive_id: String,
}

impl Decrypted {
    /// Accepts the plaintext only if its receiveid is one of `expected`.
    pub fn check_receive_id(&self, expected: &[&str]) -> Result<(), CryptoError> {
        if expected.contains(&self.receive_id.as_str()) {
            return Ok(());
        }
        Err(CryptoError::ReceiveIdMismatch {
            actual: self.receive_id.clone(),
            expected: expected.iter().map(|id| (*id).to_owned()).collect(),
        })
    }
}

impl std::fmt::Debug for Decrypted {
    // The message may hold personal data: keep it out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypted")
            .field("message_len", &self.message.len())
            .field("receive_id", &self.receive_id)
            .finish()
    }
}

/// The crypto of one callback endpoint: its token and AES key.
#[derive(Clone)]
pub struct CallbackCrypto {
    token: String,
    key: [u8; 32],
}

impl std::fmt::Debug for CallbackCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackCrypto { .. }")
    }
}

impl CallbackCrypto {
    /// Builds the crypto from the token and the 43-character EncodingAESKey.
    ///
    /// The key is decoded as standard base64 of `key + "="`, tolerating non-zero trailing bits as
    /// WeCom's own SDKs do; anything that does not decode to exactly 32 bytes is
    /// [`CryptoError::IllegalAesKey`].
    pub fn new(token: &str, encoding_aes_key: &str) -> Result<Self, CryptoError> {
        Ok(Self {
            token: token.to_owned(),
            key: decode_aes_key(encoding_aes_key)?,
        })
    }

    /// `hex(sha1(sorted(token, timestamp, nonce, encrypt)))`, lowercase.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        let mut parts = [self.token.as_str(), timestamp, nonce, encrypt];
        parts.sort_unstable();
        let mut sha = Sha1::new();
        for part in parts {
            sha.update(part.as_bytes());
        }
        hex::encode(sha.finalize())
    }

    /// Checks `msg_signature` against the signature of the other three strings, in constant time.
    ///
    /// `encrypt` must be the text exactly as received: the `Encrypt` element of a POST, or the
    /// percent-decoded `echostr` of a GET (never form-decoded: `+` stays `+`).
    pub fn verify_signature(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<(), CryptoError> {
        let expected = self.signature(timestamp, nonce, encrypt);
        let given = msg_signature.to_ascii_lowercase();
        if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            Ok(())
        } else {
            Err(CryptoError::InvalidSignature)
        }
    }

    /// Verifies the signature, then decrypts: the one call a callback endpoint needs.
    pub fn open(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<Decrypted, CryptoError> {
        self.verify_signature(msg_signature, timestamp, nonce, encrypt)?;
        self.decrypt(encrypt)
    }

    /// Decrypts a base64 ciphertext and unframes the plaintext (docs/wecom.md §1.9).
    pub fn decrypt(&self, encrypt: &str) -> Result<Decrypted, CryptoError> {
        let mut buf = STANDARD
            .decode(encrypt.trim())
            .map_err(|_| CryptoError::DecodeBase64)?;
        if buf.is_empty() || buf.len() % AES_BLOCK != 0 {
            return Err(CryptoError::DecryptAes("not a whole number of AES blocks"));
        }
        let cipher = Aes256CbcDec::new_from_slices(&self.key, self.iv())
            .map_err(|_| CryptoError::DecryptAes("bad key length"))?;
        let plain = cipher
            .decrypt_padded::<NoPadding>(&mut buf)
            .map_err(|_| CryptoError::DecryptAes("cipher rejected the buffer"))?;
        let unpadded = strip_padding(plain)?;
        unframe(unpadded)
    }

    /// Encrypts `message` for `receive_id` with fresh random bytes, as WeCom does.
    pub fn encrypt(&self, message: &str, receive_id: &str) -> Result<String, CryptoError> {
        self.encrypt_with_random(rand::random(), message, receive_id)
    }

    /// Encrypts with the given 16 "random" bytes: deterministic, for tests and vectors.
    pub fn encrypt_with_random(
        &self,
        random: [u8; RANDOM_LEN],
        message: &str,
        receive_id: &str,
    ) -> Result<String, CryptoError> {
        let msg_len = u32::try_from(message.len())
            .map_err(|_| CryptoError::EncryptAes("message longer than 4 GiB"))?;
        let mut buf = Vec::with_capacity(
            RANDOM_LEN + LEN_FIELD + message.len() + receive_id.len() + PAD_BLOCK,
        );
        buf.extend_from_slice(&random);
        buf.extend_from_slice(&msg_len.to_be_bytes());
        buf.extend_from_slice(message.as_bytes());
        buf.extend_from_slice(receive_id.as_bytes());
        add_padding(&mut buf);
        let len = buf.len();
        let cipher = Aes256CbcEnc::new_from_slices(&self.key, self.iv())
            .map_err(|_| CryptoError::EncryptAes("bad key length"))?;
        let sealed = cipher
            .encrypt_padded::<NoPadding>(&mut buf, len)
            .map_err(|_| CryptoError::EncryptAes("buffer not block aligned"))?;
        Ok(STANDARD.encode(sealed))
    }

    /// Builds the encrypted XML of a passive reply (docs/wecom.md §1.7).
    pub fn encrypt_reply(
        &self,
        message: &str,
        receive_id: &str,
        timestamp: &str,
        nonce: &str,
    ) -> Result<String, CryptoError> {
        let encrypt = self.encrypt(message, receive_id)?;
        let signature = self.signature(timestamp, nonce, &encrypt);
        if [timestamp, nonce]
            .iter()
            .any(|s| s.contains("]]>") || s.contains('<'))
        {
            return Err(CryptoError::GenReturnXml);
        }
        Ok(format!(
            "<xml>\n<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n\
             <MsgSignature><![CDATA[{signature}]]></MsgSignature>\n\
             <TimeStamp>{timestamp}</TimeStamp>\n<Nonce><![CDATA[{nonce}]]></Nonce>\n</xml>"
        ))
    }

    fn iv(&self) -> &[u8] {
        &self.key[..AES_BLOCK]
    }
}

fn decode_aes_key(encoding_aes_key: &str) -> Result<[u8; 32], CryptoError> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    if encoding_aes_key.len() != 43 {
        return Err(CryptoError::IllegalAesKey);
    }
    let bytes = LENIENT
        .decode(format!("{encoding_aes_key}="))
        .map_err(|_| CryptoError::IllegalAesKey)?;
    bytes.try_into().map_err(|_| CryptoError::IllegalAesKey)
}

/// Appends PKCS#7 padding to a multiple of 32 bytes: 1..=32 bytes, each equal to their count.
fn add_padding(buf: &mut Vec<u8>) {
    let pad = PAD_BLOCK - buf.len() % PAD_BLOCK;
    // pad is 1..=32, so the cast is lossless.
    #[allow(clippy::cast_possible_truncation)]
    buf.resize(buf.len() + pad, pad as u8);
}

/// Removes 32-byte-block PKCS#7 padding by hand: a 16-byte unpadder would reject pad 17..=32.
fn strip_padding(plain: &[u8]) -> Result<&[u8], CryptoError> {
    let Some(&last) = plain.last() else {
        return Err(CryptoError::IllegalBuffer("empty plaintext"));
    };
    let pad = usize::from(last);
    if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
        return Err(CryptoError::IllegalBuffer("padding out of range 1..=32"));
    }
    let (body, padding) = plain.split_at(plain.len() - pad);
    if padding.iter().any(|&b| b != last) {
        return Err(CryptoError::IllegalBuffer("inconsistent padding bytes"));
    }
    Ok(body)
}

/// Splits `random(16) | len(u32 BE) | msg | receiveid` into the message and the receiveid.
fn unframe(body: &[u8]) -> Result<Decrypted, CryptoError> {
    let framed = body
        .get(RANDOM_LEN..)
        .ok_or(CryptoError::IllegalBuffer("shorter than the random prefix"))?;
    let (len_field, rest) = framed
        .split_first_chunk::<LEN_FIELD>()
        .ok_or(CryptoError::IllegalBuffer("no length field"))?;
    let msg_len = usize::try_from(u32::from_be_bytes(*len_field))
        .map_err(|_| CryptoError::IllegalBuffer("length field too large"))?;
    if msg_len > rest.len() {
        return Err(CryptoError::IllegalBuffer(
            "length field exceeds the plaintext",
        ));
    }
    let (message, receive_id) = rest.split_at(msg_len);
    Ok(Decrypted {
        message: String::from_utf8(message.to_vec())
            .map_err(|_| CryptoError::IllegalBuffer("message is not UTF-8"))?,
        receive_id: String::from_utf8(receive_id.to_vec())
            .map_err(|_| CryptoError::IllegalBuffer("receiveid is not UTF-8"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

    fn crypto() -> CallbackCrypto {
        CallbackCrypto::new("QDG6eK", KEY).unwrap()
    }

    #[test]
    fn key_of_wrong_length_is_illegal() {
        for key in ["", "abc", &format!("{KEY}A"), &KEY[..42]] {
            assert_eq!(
                CallbackCrypto::new("t", key).unwrap_err(),
                CryptoError::IllegalAesKey
            );
        }
    }

    #[test]
    fn key_with_non_base64_characters_is_illegal() {
        let key = format!("{}!", &KEY[..42]);
        assert_eq!(
            CallbackCrypto::new("t", &key).unwrap_err(),
            CryptoError::IllegalAesKey
        );
    }

    #[test]
    fn key_with_nonzero_trailing_bits_is_accepted() {
        // 'C' and 'D' differ only in the two bits beyond the 32nd byte.
        let a = CallbackCrypto::new("t", KEY).unwrap();
        let b = CallbackCrypto::new("t", &format!("{}D", &KEY[..42])).unwrap();
        assert_eq!(a.key, b.key);
    }

    #[test]
    fn every_code_is_the_official_one() {
        let codes: Vec<i32> = [
            CryptoError::InvalidSignature,
            CryptoError::ParseXml(String::new()),
            CryptoError::ComputeSignature(""),
            CryptoError::IllegalAesKey,
            CryptoError::ReceiveIdMismatch {
                actual: String::new(),
                expected: vec![],
            },
            CryptoError::EncryptAes(""),
            CryptoError::DecryptAes(""),
            CryptoError::IllegalBuffer(""),
            CryptoError::EncodeBase64,
            CryptoError::DecodeBase64,
            CryptoError::GenReturnXml,
        ]
        .iter()
        .map(CryptoError::code)
        .collect();
        assert_eq!(codes, (-40011..=-40001).rev().collect::<Vec<_>>());
    }

    #[test]
    fn pad_zero_and_pad_over_32_are_illegal() {
        assert!(strip_padding(&[1, 2, 0]).is_err());
        assert!(strip_padding(&[33; 64]).is_err());
        assert!(strip_padding(&[3, 3]).is_err());
        assert_eq!(strip_padding(&[9]).unwrap_err().code(), -40008);
    }

    #[test]
    fn debug_output_hides_key_and_message() {
        let shown = format!("{:?}", crypto());
        assert!(!shown.contains("QDG6eK"));
        let decrypted = Decrypted {
            message: "secret".into(),
            receive_id: "wx1".into(),
        };
        assert!(!format!("{decrypted:?}").contains("secret"));
    }
}
