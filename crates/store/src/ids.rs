//! Identifier newtypes: a suite id and a corp id are both strings to WeCom, and swapping them is
//! the classic bug (easywechat PR #2269: one suite's ticket overwritten by another's). Each is
//! parsed once at the boundary and cannot be confused with the other afterwards.

use std::fmt;

use crate::error::StoreError;

/// Longest id accepted. WeCom ids are short (`dk…` suite ids, `ww…`/`wp…` corp ids, encrypted
/// corp ids of ~32 characters); the bound only keeps garbage out.
const MAX_ID_LEN: usize = 128;

fn check_id(what: &'static str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::invalid(what, "is empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(StoreError::invalid(
            what,
            format!("is longer than {MAX_ID_LEN} bytes"),
        ));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(StoreError::invalid(
            what,
            "contains whitespace or control characters",
        ));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::Type)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses an id as WeCom sends it (case-sensitive, never normalized).
            pub fn parse(value: impl Into<String>) -> Result<Self, StoreError> {
                let value = value.into();
                check_id($what, &value)?;
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
            type Error = StoreError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = StoreError;
            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }
    };
}

id_type!(
    /// A suite (代开发 template) id, `dk…`.
    SuiteId,
    "suite id"
);

id_type!(
    /// An authorizing corp's id: plain (`ww…`) or, for installs after 2022-06-20, the
    /// provider-scoped encrypted form. Case-sensitive.
    CorpId,
    "corp id"
);

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
    }
}
