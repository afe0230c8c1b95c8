//! What arrives on a callback URL before decryption (docs/wecom.md §1.1): the query string
//! (`msg_signature`, `timestamp`, `nonce`, and `echostr` on URL verification) and the POST body
//! envelope (`ToUserName`, `Encrypt`, `AgentID`, as XML or, for JSON-mode apps, as JSON).
//!
//! The query is decoded by hand because form decoding turns `+` into a space, which breaks the
//! base64 `echostr` and its signature (docs/wecom.md §1.1).

use std::borrow::Cow;

use quick_xml::events::Event as XmlEvent;
use quick_xml::reader::Reader;

use crate::crypto::CryptoError;

/// Envelopes are small; anything bigger than this is not one.
pub const MAX_ENVELOPE_BYTES: usize = 1024 * 1024;
const MAX_ENVELOPE_DEPTH: usize = 4;

/// Why a callback query string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("missing query parameter {0}")]
    Missing(&'static str),
    #[error("query parameter {0} is not valid percent-encoded UTF-8")]
    BadEncoding(String),
}

/// The signed parameters of a callback request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackQuery {
    pub msg_signature: String,
    pub timestamp: String,
    pub nonce: String,
    /// Present on URL verification (GET) only, already percent-decoded.
    pub echostr: Option<String>,
}

impl CallbackQuery {
    /// Parses a raw query string (without the `?`). Unknown parameters are ignored; a repeated
    /// parameter keeps its first value.
    pub fn parse(raw_query: &str) -> Result<Self, QueryError> {
        let mut msg_signature = None;
        let mut timestamp = None;
        let mut nonce = None;
        let mut echostr = None;
        for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                "msg_signature" => &mut msg_signature,
                "timestamp" => &mut timestamp,
                "nonce" => &mut nonce,
                "echostr" => &mut echostr,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(
                    percent_decode(value)
                        .ok_or_else(|| QueryError::BadEncoding(name.to_owned()))?,
                );
            }
        }
        Ok(Self {
            msg_signature: msg_signature.ok_or(QueryError::Missing("msg_signature"))?,
            timestamp: timestamp.ok_or(QueryError::Missing("timestamp"))?,
            nonce: nonce.ok_or(QueryError::Missing("nonce"))?,
            echostr,
        })
    }
}

/// Percent-decodes a query value; `None` if the result is not UTF-8. Unlike form decoding,
/// `+` stays `+`.
pub fn percent_decode(value: &str) -> Option<String> {
    let decoded: Cow<'_, [u8]> = percent_encoding::percent_decode_str(value).into();
    String::from_utf8(decoded.into_owned()).ok()
}

/// The body of a callback POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedEnvelope {
    /// The suite id on template callbacks, the corp id on app callbacks.
    pub to_user_name: Option<String>,
    /// The base64 ciphertext, exactly as sent (the signature covers this text).
    pub encrypt: String,
    /// The app's agent id on app callbacks; empty or absent on template callbacks.
    pub agent_id: Option<String>,
}

impl EncryptedEnvelope {
    /// Parses the POST body: XML (`<xml><Encrypt>…`), or JSON (`{"encrypt": …}`) for apps
    /// configured in JSON mode. Errors are [`CryptoError::ParseXml`] (-40002).
    pub fn parse(body: &[u8]) -> Result<Self, CryptoError> {
        if body.len() > MAX_ENVELOPE_BYTES {
            return Err(CryptoError::ParseXml("envelope too large".into()));
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| CryptoError::ParseXml("body is not UTF-8".into()))?;
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.starts_with('{') {
            parse_json(text)
        } else {
            parse_xml(text)
        }
    }
}

fn parse_json(text: &str) -> Result<EncryptedEnvelope, CryptoError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| CryptoError::ParseXml(format!("invalid JSON: {e}")))?;
    let field = |names: [&str; 2]| -> Option<String> {
        names.iter().find_map(|n| match value.get(*n)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    Ok(EncryptedEnvelope {
        encrypt: field(["encrypt", "Encrypt"])
            .ok_or_else(|| CryptoError::ParseXml("no encrypt field".into()))?,
        to_user_name: field(["tousername", "ToUserName"]),
        agent_id: field(["agentid", "AgentID"]).filter(|s| !s.is_empty()),
    })
}

fn parse_xml(text: &str) -> Result<EncryptedEnvelope, CryptoError> {
    let mut reader = Reader::from_str(text);
    let mut depth = 0usize;
    let mut current: Option<String> = None;
    let mut fields: [Option<String>; 3] = [None, None, None];
    loop {
        let event = reader
            .read_event()
            .map_err(|e| CryptoError::ParseXml(format!("invalid XML: {e}")))?;
        match event {
            XmlEvent::Start(start) => {
                depth += 1;
                if depth > MAX_ENVELOPE_DEPTH {
                    return Err(CryptoError::ParseXml("nesting too deep".into()));
                }
                current = (depth == 2).then(|| AsRef::<str>::as_ref(&start.name()).to_owned());
            }
            XmlEvent::End(_) => {
                depth = depth.saturating_sub(1);
                current = None;
            }
            XmlEvent::Text(t) => store_field(&mut fields, current.as_deref(), t.trim()),
            XmlEvent::CData(c) => store_field(&mut fields, current.as_deref(), c.trim()),
            // `&…;` comes as its own event: a character reference or a predefined entity, kept
            // untrimmed; any other name is refused (no DTD can declare it).
            XmlEvent::GeneralRef(r) => {
                let text = crate::event::dom::resolve_reference(&r)
                    .map_err(|e| CryptoError::ParseXml(format!("invalid text: {e}")))?;
                store_field(&mut fields, current.as_deref(), &text);
            }
            XmlEvent::DocType(_) => return Err(CryptoError::ParseXml("DTD refused".into())),
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    let [to_user_name, encrypt, agent_id] = fields;
    Ok(EncryptedEnvelope {
        encrypt: encrypt.ok_or_else(|| CryptoError::ParseXml("no Encrypt element".into()))?,
        to_user_name,
        agent_id: agent_id.filter(|s| !s.is_empty()),
    })
}

/// Appends `text` (trimmed by the caller where it should be) to the field `element` names.
fn store_field(fields: &mut [Option<String>; 3], element: Option<&str>, text: &str) {
    let index = match element {
        Some("ToUserName") => 0,
        Some("Encrypt") => 1,
        Some("AgentID") => 2,
        _ => return,
    };
    let slot = &mut fields[index];
    match slot {
        Some(existing) => existing.push_str(text),
        None => *slot = Some(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_stays_plus_and_percent_escapes_decode() {
        let q =
            CallbackQuery::parse("msg_signature=ab&timestamp=1&nonce=2&echostr=a+b%2Bc%2F%3D%3D")
                .unwrap();
        assert_eq!(q.echostr.as_deref(), Some("a+b+c/=="));
    }

    #[test]
    fn missing_signature_is_named() {
        assert_eq!(
            CallbackQuery::parse("timestamp=1&nonce=2").unwrap_err(),
            QueryError::Missing("msg_signature")
        );
    }

    #[test]
    fn invalid_utf8_escape_is_rejected() {
        assert!(matches!(
            CallbackQuery::parse("msg_signature=%FF&timestamp=1&nonce=2"),
            Err(QueryError::BadEncoding(_))
        ));
    }

    #[test]
    fn xml_envelope_with_empty_agent_id() {
        let env = EncryptedEnvelope::parse(
            b"<xml><ToUserName><![CDATA[dk1]]></ToUserName>\n<Encrypt><![CDATA[a+b/c=]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>",
        )
        .unwrap();
        assert_eq!(env.to_user_name.as_deref(), Some("dk1"));
        assert_eq!(env.encrypt, "a+b/c=");
        assert_eq!(env.agent_id, None);
    }

    #[test]
    fn json_envelope() {
        let env =
            EncryptedEnvelope::parse(br#"{"tousername":"wx1","encrypt":"abc","agentid":218}"#)
                .unwrap();
        assert_eq!(env.agent_id.as_deref(), Some("218"));
        assert_eq!(env.encrypt, "abc");
    }

    #[test]
    fn envelope_without_encrypt_or_with_dtd_is_rejected() {
        for body in [
            &b"<xml><ToUserName>x</ToUserName></xml>"[..],
            b"<!DOCTYPE x [<!ENTITY a \"b\">]><xml><Encrypt>&a;</Encrypt></xml>",
            b"<xml><Encrypt>ab&a;</Encrypt></xml>",
            b"not xml <<<",
            b"{\"encrypt\": 1",
        ] {
            assert_eq!(EncryptedEnvelope::parse(body).unwrap_err().code(), -40002);
        }
    }
}
