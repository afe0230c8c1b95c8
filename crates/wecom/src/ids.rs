//! The identifiers and credentials of the WeCom protocol, each its own type.
//!
//! WeCom speaks in look-alike strings: a suite id, a corp id, a provider corp id, a userid, a
//! receiveid are all short ASCII; an AuthCode, a permanent code, a suite ticket and a token are
//! all opaque secrets. Swapping two of them is the classic integration bug (one suite's ticket
//! stored under another, a corp id passed where a userid belongs), so each is parsed once at the
//! boundary into a type that cannot be confused with the others and cannot hold an invalid value.
//!
//! - Ids ([`SuiteId`], [`CorpId`], [`UserId`]): non-empty, at most [`MAX_ID_LEN`] bytes, no
//!   whitespace or control characters, case kept exactly (encrypted corp ids are case-sensitive).
//! - Numeric ids ([`AgentId`], [`DepartmentId`], [`TagId`]): WeCom's numbers, positive.
//! - Secrets ([`AuthCode`], [`PermanentCode`], [`Ticket`], [`AccessToken`]): non-empty;
//!   `Debug` and `Display` never show the value (`expose` does, for the one call that needs it).
//!
//! Every type deserializes through its parser, so a value read from JSON is as valid as one
//! built in code. With the `sqlx` feature the string ids are Postgres `text` columns and the
//! numeric ids `bigint` ones.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Longest id accepted. WeCom's ids are short (`dk…` suite ids, `ww…`/`wp…` corp ids, encrypted
/// ids of about 32 characters, userids of at most 64); the bound only keeps garbage out.
pub const MAX_ID_LEN: usize = 128;

/// Why a value is not a valid id or credential. Never holds the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {reason}")]
pub struct IdError {
    /// What was being parsed (`suite id`, `AuthCode`, …).
    pub what: &'static str,
    /// Why it was refused.
    pub reason: &'static str,
}

fn check_text(what: &'static str, value: &str) -> Result<(), IdError> {
    let reason = if value.is_empty() {
        "is empty"
    } else if value.len() > MAX_ID_LEN {
        "is longer than 128 bytes"
    } else if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        "contains whitespace or control characters"
    } else {
        return Ok(());
    };
    Err(IdError { what, reason })
}

/// A suite (代开发 template) id, `dk…`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
#[serde(try_from = "String", into = "String")]
pub struct SuiteId(String);

/// An authorizing corp's id: plain (`ww…`) or, for installs after 2022-06-20, the
/// provider-scoped encrypted form. Case-sensitive; never normalized.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
#[serde(try_from = "String", into = "String")]
pub struct CorpId(String);

/// A member's userid inside one corp (for 代开发 apps: the corp's own userid).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

macro_rules! text_id_impls {
    ($name:ident, $what:literal) => {
        impl $name {
            /// Parses an id as WeCom sends it (case kept exactly).
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_text($what, &value)?;
                Ok(Self(value))
            }

            /// The id as WeCom spells it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(value: &str) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    };
}

text_id_impls!(SuiteId, "suite id");
text_id_impls!(CorpId, "corp id");
text_id_impls!(UserId, "userid");

/// An app's agentid inside a corp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
#[serde(try_from = "i64", into = "i64")]
pub struct AgentId(i64);

/// A department id inside a corp (1 is the root, [`DepartmentId::ROOT`]). WeCom writes the
/// root's parent as 0; the API types and events read that as "no parent" (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
#[serde(try_from = "i64", into = "i64")]
pub struct DepartmentId(i64);

/// A tag id inside a corp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
#[serde(try_from = "i64", into = "i64")]
pub struct TagId(i64);

macro_rules! number_id_impls {
    ($name:ident, $what:literal) => {
        impl $name {
            /// Accepts WeCom's positive ids.
            pub fn new(value: i64) -> Result<Self, IdError> {
                if value > 0 {
                    Ok(Self(value))
                } else {
                    Err(IdError {
                        what: $what,
                        reason: "is not a positive number",
                    })
                }
            }

            /// The number WeCom uses.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl TryFrom<i64> for $name {
            type Error = IdError;
            fn try_from(value: i64) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        /// Parses the decimal form WeCom uses in XML and query strings (trimmed).
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                let number = value.trim().parse::<i64>().map_err(|_| IdError {
                    what: $what,
                    reason: "is not a number",
                })?;
                Self::new(number)
            }
        }

        impl PartialEq<i64> for $name {
            fn eq(&self, other: &i64) -> bool {
                self.0 == *other
            }
        }
    };
}

number_id_impls!(AgentId, "agentid");
number_id_impls!(DepartmentId, "department id");
number_id_impls!(TagId, "tag id");

impl DepartmentId {
    /// The root department every corp has.
    pub const ROOT: Self = Self(1);
}

/// The single-use code of a create_auth or reset_permanent_code, exchanged within 10 minutes.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AuthCode(SecretString);

/// A corp's permanent code: for 代开发, the app secret used with `gettoken`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PermanentCode(SecretString);

/// A ticket: the suite ticket pushed every 10 minutes (needed for the suite access token), or
/// a JS-SDK ticket.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ticket(SecretString);

/// A suite, provider or corp access token.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccessToken(SecretString);

macro_rules! secret_impls {
    ($name:ident, $what:literal) => {
        impl $name {
            /// Accepts any non-empty value (WeCom's secrets are opaque).
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                if value.trim().is_empty() {
                    return Err(IdError {
                        what: $what,
                        reason: "is empty",
                    });
                }
                Ok(Self(SecretString::from(value)))
            }

            /// The secret itself, for the one call or seal that needs it.
            pub fn expose(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!($what, "(redacted)"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[redacted]")
            }
        }

        /// Constant-time, so comparing a secret leaks nothing through timing.
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.expose()
                    .as_bytes()
                    .ct_eq(other.expose().as_bytes())
                    .into()
            }
        }

        impl Eq for $name {}

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(secret: $name) -> String {
                secret.expose().to_owned()
            }
        }

        impl From<$name> for SecretString {
            fn from(secret: $name) -> SecretString {
                secret.0
            }
        }
    };
}

secret_impls!(AuthCode, "AuthCode");
secret_impls!(PermanentCode, "PermanentCode");
secret_impls!(Ticket, "Ticket");
secret_impls!(AccessToken, "AccessToken");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_reject_garbage() {
        assert_eq!(SuiteId::parse("dk123").unwrap().as_str(), "dk123");
        assert!(SuiteId::parse("").is_err());
        assert!(CorpId::parse("ww 1").is_err());
        assert!(CorpId::parse("x".repeat(129)).is_err());
        assert_eq!(CorpId::parse("wpAbC").unwrap().to_string(), "wpAbC");
        assert!(UserId::parse("zhang\u{0}san").is_err());
        assert!(DepartmentId::new(0).is_err());
        assert_eq!(AgentId::new(1_000_002).unwrap().get(), 1_000_002);
        assert_eq!(" 7 ".parse::<TagId>().unwrap(), 7);
        assert!("x".parse::<DepartmentId>().is_err());
        assert!("0".parse::<DepartmentId>().is_err());
        assert_eq!(DepartmentId::ROOT.get(), 1);
    }

    #[test]
    fn ids_deserialize_through_their_parser() {
        let id: CorpId = serde_json::from_str("\"wwcorp\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"wwcorp\"");
        assert!(serde_json::from_str::<CorpId>("\"\"").is_err());
        assert!(serde_json::from_str::<TagId>("-1").is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_or_display() {
        let code = AuthCode::parse("SECRET-AUTH-CODE").unwrap();
        let shown = format!("{code:?} {code}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_eq!(code.expose(), "SECRET-AUTH-CODE");
        assert_eq!(code, AuthCode::parse("SECRET-AUTH-CODE").unwrap());
        assert!(AuthCode::parse(" ").is_err());
        // JSON carries it (the envelope must), and reads it back through the parser.
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(serde_json::from_str::<AuthCode>(&json).unwrap(), code);
    }
}
