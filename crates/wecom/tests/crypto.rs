//! The callback crypto against WeCom's official vectors, round trips across every pad value,
//! and hostile input.
// Helpers outside #[test] functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde::Deserialize;
use wecom::callback::{CallbackQuery, EncryptedEnvelope};
use wecom::crypto::{CallbackCrypto, CryptoError};

#[derive(Debug, Deserialize)]
struct VectorFile {
    vectors: Vec<Vector>,
}

#[derive(Debug, Deserialize)]
struct Vector {
    id: String,
    kind: String,
    token: String,
    encoding_aes_key: String,
    receive_id: String,
    timestamp: String,
    nonce: String,
    msg_signature: String,
    encrypt: Option<String>,
    echostr: Option<String>,
    echostr_urlencoded: Option<String>,
    expected_plaintext: String,
}

fn vectors() -> Vec<Vector> {
    // A copy of ../shared/vectors/wecom-crypto.json, kept here so a clone stands on its own.
    let text = include_str!("data/wecom-crypto.json");
    serde_json::from_str::<VectorFile>(text).unwrap().vectors
}

const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const RECEIVE_ID: &str = "wx5823bf96d3bd56c7";

fn crypto() -> CallbackCrypto {
    CallbackCrypto::new("QDG6eK", KEY).unwrap()
}

#[test]
fn every_official_vector_verifies_and_decrypts() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 3);
    for v in vectors {
        let crypto = CallbackCrypto::new(&v.token, &v.encoding_aes_key).unwrap();
        let ciphertext = match v.kind.as_str() {
            "verify_url" => {
                let query = format!(
                    "msg_signature={}&timestamp={}&nonce={}&echostr={}",
                    v.msg_signature,
                    v.timestamp,
                    v.nonce,
                    v.echostr_urlencoded.as_deref().unwrap()
                );
                let query = CallbackQuery::parse(&query).unwrap();
                assert_eq!(query.echostr, v.echostr, "{}", v.id);
                query.echostr.unwrap()
            }
            _ => v.encrypt.clone().unwrap(),
        };
        let opened = crypto
            .open(&v.msg_signature, &v.timestamp, &v.nonce, &ciphertext)
            .unwrap_or_else(|e| panic!("{}: {e}", v.id));
        assert_eq!(opened.message, v.expected_plaintext, "{}", v.id);
        assert_eq!(opened.receive_id, v.receive_id, "{}", v.id);
        opened.check_receive_id(&[&v.receive_id]).unwrap();
    }
}

#[test]
fn official_post_vector_has_pad_30_and_decrypts() {
    let v = vectors()
        .into_iter()
        .find(|v| v.kind == "post_xml")
        .unwrap();
    let encrypt = v.encrypt.unwrap();
    // 16 random + 4 length + msg + receiveid, padded to 32.
    let framed = 16 + 4 + v.expected_plaintext.len() + v.receive_id.len();
    assert_eq!(32 - framed % 32, 30);
    let xml = format!(
        "<xml><ToUserName><![CDATA[{RECEIVE_ID}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"
    );
    let envelope = EncryptedEnvelope::parse(xml.as_bytes()).unwrap();
    let opened = crypto()
        .open(&v.msg_signature, &v.timestamp, &v.nonce, &envelope.encrypt)
        .unwrap();
    assert_eq!(opened.message, v.expected_plaintext);
}

#[test]
fn deterministic_encryption_reproduces_the_official_ciphertext_layout() {
    // Decrypting and re-encrypting the official message yields a ciphertext of the same length.
    let v = vectors()
        .into_iter()
        .find(|v| v.kind == "post_xml")
        .unwrap();
    let sealed = crypto()
        .encrypt_with_random([b'7'; 16], &v.expected_plaintext, RECEIVE_ID)
        .unwrap();
    assert_eq!(sealed.len(), v.encrypt.unwrap().len());
}

#[test]
fn wrong_signature_is_rejected_with_40001() {
    let v = vectors()
        .into_iter()
        .find(|v| v.kind == "post_xml")
        .unwrap();
    let encrypt = v.encrypt.unwrap();
    let mut bad = v.msg_signature.clone();
    bad.replace_range(0..1, "0");
    for (sig, ts, nonce) in [
        (bad.as_str(), v.timestamp.as_str(), v.nonce.as_str()),
        (&v.msg_signature, "1409659814", &v.nonce),
        (&v.msg_signature, &v.timestamp, "1"),
        ("", &v.timestamp, &v.nonce),
    ] {
        let err = crypto().open(sig, ts, nonce, &encrypt).unwrap_err();
        assert_eq!(err.code(), -40001);
    }
}

#[test]
fn uppercase_signature_is_accepted() {
    let v = vectors()
        .into_iter()
        .find(|v| v.kind == "post_xml")
        .unwrap();
    crypto()
        .verify_signature(
            &v.msg_signature.to_uppercase(),
            &v.timestamp,
            &v.nonce,
            &v.encrypt.unwrap(),
        )
        .unwrap();
}

#[test]
fn ciphertext_full_of_plus_slash_and_equals_verifies_on_get_and_post() {
    // Find a ciphertext that holds all three characters the SDKs mangle (docs/wecom.md §1.1).
    let crypto = crypto();
    let encrypt = (0u8..=255)
        .map(|seed| {
            crypto
                .encrypt_with_random([seed; 16], "1288432023552776189", RECEIVE_ID)
                .unwrap()
        })
        .find(|e| e.contains('+') && e.contains('/') && e.ends_with('='))
        .unwrap();
    let signature = crypto.signature("1409659589", "263014780", &encrypt);
    // POST: the Encrypt text as is.
    crypto
        .open(&signature, "1409659589", "263014780", &encrypt)
        .unwrap();
    // GET: echostr percent-encoded the way WeCom sends it, and with a raw `+` too.
    for encoded in [
        encrypt
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D"),
        encrypt.replace('/', "%2F"),
    ] {
        let query = CallbackQuery::parse(&format!(
            "msg_signature={signature}&timestamp=1409659589&nonce=263014780&echostr={encoded}"
        ))
        .unwrap();
        let echostr = query.echostr.unwrap();
        let opened = crypto
            .open(
                &query.msg_signature,
                &query.timestamp,
                &query.nonce,
                &echostr,
            )
            .unwrap();
        assert_eq!(opened.message, "1288432023552776189");
    }
}

#[test]
fn garbage_base64_is_rejected_with_40010() {
    for bad in ["%%%", "abc", "YWJj=ZGVm", "中文"] {
        assert_eq!(
            crypto().decrypt(bad).unwrap_err(),
            CryptoError::DecodeBase64
        );
    }
}

#[test]
fn truncated_ciphertext_is_rejected_with_40007() {
    use base64::Engine;
    let v = vectors()
        .into_iter()
        .find(|v| v.kind == "post_xml")
        .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.encrypt.unwrap())
        .unwrap();
    for cut in [1, 15, 17, 100] {
        let truncated =
            base64::engine::general_purpose::STANDARD.encode(&bytes[..bytes.len() - cut]);
        assert_eq!(crypto().decrypt(&truncated).unwrap_err().code(), -40007);
    }
    assert_eq!(crypto().decrypt("").unwrap_err().code(), -40007);
}

#[test]
fn whole_blocks_dropped_from_the_end_break_the_framing() {
    use base64::Engine;
    let v = vectors()
        .into_iter()
        .find(|v| v.kind == "post_xml")
        .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.encrypt.unwrap())
        .unwrap();
    let truncated = base64::engine::general_purpose::STANDARD.encode(&bytes[..bytes.len() - 32]);
    assert_eq!(crypto().decrypt(&truncated).unwrap_err().code(), -40008);
}

/// Encrypts an arbitrary plaintext (no framing) so the unframing checks can be reached.
fn seal_raw(plain: &[u8]) -> String {
    use aes::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::NoPadding};
    use base64::Engine;
    // The official key has non-zero trailing bits, as WeCom's own SDKs tolerate.
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let key = lenient.decode(format!("{KEY}=")).unwrap();
    let mut buf = plain.to_vec();
    let len = buf.len();
    let sealed = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &key[..16])
        .unwrap()
        .encrypt_padded::<NoPadding>(&mut buf, len)
        .unwrap()
        .to_vec();
    base64::engine::general_purpose::STANDARD.encode(sealed)
}

fn framed(msg: &[u8], declared_len: u32, receive_id: &[u8]) -> Vec<u8> {
    let mut plain = vec![b'r'; 16];
    plain.extend_from_slice(&declared_len.to_be_bytes());
    plain.extend_from_slice(msg);
    plain.extend_from_slice(receive_id);
    plain
}

fn pad_to_32(mut plain: Vec<u8>, pad_byte: Option<u8>) -> Vec<u8> {
    let pad = 32 - plain.len() % 32;
    let byte = pad_byte.unwrap_or(u8::try_from(pad).unwrap());
    plain.resize(plain.len() + pad, byte);
    plain
}

#[test]
fn pad_byte_zero_is_illegal_buffer() {
    let plain = pad_to_32(framed(b"hello", 5, b"wx1"), Some(0));
    assert_eq!(
        crypto().decrypt(&seal_raw(&plain)).unwrap_err().code(),
        -40008
    );
}

#[test]
fn pad_byte_over_32_is_illegal_buffer() {
    let plain = pad_to_32(framed(b"hello", 5, b"wx1"), Some(33));
    assert_eq!(
        crypto().decrypt(&seal_raw(&plain)).unwrap_err().code(),
        -40008
    );
}

#[test]
fn length_field_beyond_the_buffer_is_illegal_buffer() {
    for declared in [6, 1000, u32::MAX] {
        let plain = pad_to_32(framed(b"hello", declared, b""), None);
        assert_eq!(
            crypto().decrypt(&seal_raw(&plain)).unwrap_err().code(),
            -40008
        );
    }
}

#[test]
fn wrong_receive_id_is_rejected_with_40005_naming_both_ids() {
    let sealed = crypto().encrypt("<xml/>", "wwforeign").unwrap();
    let opened = crypto().decrypt(&sealed).unwrap();
    let err = opened.check_receive_id(&["dk123", RECEIVE_ID]).unwrap_err();
    assert_eq!(err.code(), -40005);
    let text = err.to_string();
    assert!(
        text.contains("wwforeign") && text.contains("dk123"),
        "{text}"
    );
}

#[test]
fn empty_receive_id_round_trips() {
    let sealed = crypto().encrypt("hi", "").unwrap();
    assert_eq!(crypto().decrypt(&sealed).unwrap().receive_id, "");
}

#[test]
fn passive_reply_decrypts_with_its_own_signature() {
    let reply = crypto()
        .encrypt_reply(
            "<xml><Content>ok</Content></xml>",
            RECEIVE_ID,
            "1409659813",
            "42",
        )
        .unwrap();
    let envelope = EncryptedEnvelope::parse(reply.as_bytes()).unwrap();
    let signature = reply
        .split("<MsgSignature><![CDATA[")
        .nth(1)
        .and_then(|s| s.split("]]>").next())
        .unwrap();
    let opened = crypto()
        .open(signature, "1409659813", "42", &envelope.encrypt)
        .unwrap();
    assert_eq!(opened.message, "<xml><Content>ok</Content></xml>");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Message lengths 0..=96 with a fixed receiveid cover every pad value 1..=32 several times.
    #[test]
    fn encrypt_then_decrypt_round_trips(msg in "\\PC{0,96}", receive_id in "[a-zA-Z0-9]{0,24}", random in any::<[u8; 16]>()) {
        let sealed = crypto().encrypt_with_random(random, &msg, &receive_id).unwrap();
        let opened = crypto().decrypt(&sealed).unwrap();
        prop_assert_eq!(opened.message, msg);
        prop_assert_eq!(opened.receive_id, receive_id);
    }

    #[test]
    fn arbitrary_ciphertext_text_never_panics(text in "\\PC{0,400}") {
        let _ = crypto().decrypt(&text);
        let _ = crypto().open("", "", "", &text);
    }

    #[test]
    fn arbitrary_ciphertext_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        use base64::Engine;
        let _ = crypto().decrypt(&base64::engine::general_purpose::STANDARD.encode(&bytes));
        // Whole AES blocks reach the unpadder and the unframer with random content.
        let mut blocks = bytes.clone();
        blocks.truncate(bytes.len() / 16 * 16);
        let _ = crypto().decrypt(&seal_raw(&blocks));
    }

    #[test]
    fn arbitrary_bodies_and_queries_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400), query in "\\PC{0,200}") {
        let _ = EncryptedEnvelope::parse(&body);
        let _ = CallbackQuery::parse(&query);
    }
}

#[test]
fn every_pad_value_occurs_in_round_trips() {
    let mut seen = [false; 33];
    for len in 0..=64usize {
        let msg = "x".repeat(len);
        let sealed = crypto().encrypt(&msg, RECEIVE_ID).unwrap();
        assert_eq!(crypto().decrypt(&sealed).unwrap().message, msg);
        let framed = 16 + 4 + len + RECEIVE_ID.len();
        seen[32 - framed % 32] = true;
    }
    assert!(seen[1..].iter().all(|s| *s), "pad values seen: {seen:?}");
}
