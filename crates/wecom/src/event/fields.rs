//! Typed reads of an element's children, with WeCom's value conventions in one place.
//!
//! Conventions (the same for every event):
//! - A string field present in the XML is `Some`, even when empty (an `update_user` that clears
//!   an alias differs from one that leaves it alone); an absent one is `None`.
//! - A *required* field that is absent or empty is [`EventError::MissingField`].
//! - Numbers are trimmed; an empty optional number counts as absent; anything else that does not
//!   parse is [`EventError::InvalidField`]. Numeric ids (`DepartmentId`, `TagId`, `AgentId`) are
//!   numbers that must also be positive.
//! - Text ids (`SuiteId`, `CorpId`, `UserId`) are trimmed and parsed; an empty optional one counts
//!   as absent, an invalid one is [`EventError::InvalidId`] (its value never quoted).
//! - Comma lists (`1,2,3`) have their items trimmed and empty items dropped, so an empty element
//!   is `Some(vec![])`; one bad item makes the whole field [`EventError::InvalidField`].

use std::str::FromStr;

use super::EventError;
use super::dom::Element;
use crate::ids::IdError;

/// The children of one element (usually the `<xml>` root), read by name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    element: &'a Element<'a>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(element: &'a Element<'a>) -> Self {
        Self { element }
    }

    /// The child element called `name`, if any.
    pub(crate) fn child(self, name: &str) -> Option<&'a Element<'a>> {
        self.element.child(name)
    }

    /// The text of `name` as received.
    pub(crate) fn raw(self, name: &str) -> Option<&'a str> {
        self.child(name).map(|c| c.text.as_ref())
    }

    /// The trimmed text of `name`, for dispatch keys such as `InfoType` or `Event`.
    pub(crate) fn key(self, name: &str) -> Option<&'a str> {
        self.raw(name).map(str::trim)
    }

    /// An optional string field.
    pub(crate) fn string(self, name: &str) -> Option<String> {
        self.raw(name).map(str::to_owned)
    }

    /// An id or credential that must be present: trimmed, then parsed into its type
    /// (`wecom::ids`), so an invalid one never gets past the parser.
    pub(crate) fn required_id<T>(self, name: &'static str) -> Result<T, EventError>
    where
        T: TryFrom<String, Error = IdError>,
    {
        match self.key(name) {
            Some(text) if !text.is_empty() => {
                T::try_from(text.to_owned()).map_err(|error| EventError::InvalidId {
                    field: name,
                    reason: error.reason,
                })
            }
            _ => Err(EventError::MissingField(name)),
        }
    }

    /// An optional id (`wecom::ids`), trimmed; empty counts as absent, an invalid one is
    /// [`EventError::InvalidId`].
    pub(crate) fn optional_id<T>(self, name: &'static str) -> Result<Option<T>, EventError>
    where
        T: TryFrom<String, Error = IdError>,
    {
        match self.key(name) {
            None | Some("") => Ok(None),
            Some(_) => self.required_id(name).map(Some),
        }
    }

    /// An optional number; empty counts as absent.
    pub(crate) fn number<T: FromStr>(self, name: &'static str) -> Result<Option<T>, EventError> {
        match self.key(name) {
            None | Some("") => Ok(None),
            Some(text) => parse_number(name, text).map(Some),
        }
    }

    /// A number that must be present.
    pub(crate) fn required_number<T: FromStr>(self, name: &'static str) -> Result<T, EventError> {
        self.number(name)?.ok_or(EventError::MissingField(name))
    }

    /// An optional comma-separated list, each item read by `item`.
    pub(crate) fn list<T>(
        self,
        name: &'static str,
        item: impl Fn(&'static str, &str) -> Result<T, EventError>,
    ) -> Result<Option<Vec<T>>, EventError> {
        self.raw(name)
            .map(|text| {
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| item(name, s))
                    .collect()
            })
            .transpose()
    }

    /// Every child without children of its own whose name is not in `known`, in document order.
    pub(crate) fn leaves_except(self, known: &[&str]) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.element
            .children
            .iter()
            .filter(move |c| c.children.is_empty() && !known.contains(&c.name.as_ref()))
            .map(|c| (c.name.as_ref(), c.text.as_ref()))
    }
}

/// Parses a trimmed number, naming `field` when it fails.
pub(crate) fn parse_number<T: FromStr>(field: &'static str, text: &str) -> Result<T, EventError> {
    text.trim()
        .parse()
        .map_err(|_| EventError::invalid(field, text))
}

/// A list item that is a text id (`wecom::ids`), such as a userid in `DirectLeader`.
pub(crate) fn id_item<T>(field: &'static str, text: &str) -> Result<T, EventError>
where
    T: TryFrom<String, Error = IdError>,
{
    T::try_from(text.to_owned()).map_err(|error| EventError::InvalidId {
        field,
        reason: error.reason,
    })
}

/// A `1`/`0` flag, as in `IsLeaderInDept`.
pub(crate) fn flag_item(field: &'static str, text: &str) -> Result<bool, EventError> {
    match text {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(EventError::invalid(field, text)),
    }
}
