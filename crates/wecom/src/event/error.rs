//! Why a decrypted callback body could not become an [`Event`](super::Event).

/// Longest field value quoted back in an [`EventError::InvalidField`], in characters.
const QUOTE_CHARS: usize = 64;

/// Why a decrypted callback body was refused.
///
/// Every variant is the sender's fault (the body is not what WeCom sends), so the ingress answers
/// 400; none of them is ever a panic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    /// The body is larger than [`MAX_XML_BYTES`](super::MAX_XML_BYTES).
    #[error("event body is {size} bytes, more than the {max} allowed")]
    TooLarge {
        /// Size of the body in bytes.
        size: usize,
        /// The limit it exceeded.
        max: usize,
    },
    /// The body is not well-formed XML (or has no single root element).
    #[error("event body is not XML: {0}")]
    NotXml(String),
    /// Elements are nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
    #[error("event body is nested deeper than {} elements", super::MAX_DEPTH)]
    TooDeep,
    /// The body has a `<!DOCTYPE …>`: refused so no DTD entity can ever be expanded.
    #[error("event body has a DOCTYPE; DTDs and custom entities are refused")]
    Doctype,
    /// A field this event kind cannot do without is absent (or empty).
    #[error("event field {0} is missing")]
    MissingField(&'static str),
    /// An id or credential field that is not a valid one (`wecom::ids`); its value is not
    /// quoted, since it may be a secret.
    #[error("event field {field} {reason}")]
    InvalidId {
        /// The XML element name.
        field: &'static str,
        /// Why the value was refused.
        reason: &'static str,
    },
    /// A field is present but its value has the wrong shape (e.g. a non-numeric department id).
    #[error("event field {field} has an invalid value {value:?}")]
    InvalidField {
        /// The XML element name.
        field: &'static str,
        /// The offending value (or list item), cut to a few dozen characters.
        value: String,
    },
}

impl EventError {
    /// An [`EventError::InvalidField`] quoting at most [`QUOTE_CHARS`] characters of `value`.
    pub(crate) fn invalid(field: &'static str, value: &str) -> Self {
        let value = match value.char_indices().nth(QUOTE_CHARS) {
            Some((cut, _)) => format!("{}…", value.get(..cut).unwrap_or_default()),
            None => value.to_owned(),
        };
        Self::InvalidField { field, value }
    }
}
