//! Feeds arbitrary bytes through everything an unauthenticated request reaches: the envelope
//! parser, the query parser, decryption with unpadding and unframing, and the event parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wecom::callback::{CallbackQuery, EncryptedEnvelope};
use wecom::crypto::CallbackCrypto;
use wecom::event::Event;

const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

fuzz_target!(|data: &[u8]| {
    let Ok(crypto) = CallbackCrypto::new("QDG6eK", KEY) else {
        return;
    };
    let _ = EncryptedEnvelope::parse(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = CallbackQuery::parse(text);
    let _ = Event::parse(text);
    // Arbitrary text as ciphertext, and arbitrary text sealed properly so the plaintext
    // reaches the event parser through decryption.
    let _ = crypto.decrypt(text);
    if let Ok(sealed) = crypto.encrypt(text, "wx5823bf96d3bd56c7") {
        if let Ok(opened) = crypto.decrypt(&sealed) {
            let _ = Event::parse(&opened.message);
        }
    }
});
