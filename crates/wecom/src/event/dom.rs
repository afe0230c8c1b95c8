//! A small, bounded XML tree: the only place callback bytes meet the XML reader.
//!
//! WeCom bodies are tiny and shallow, so the whole document becomes a tree of [`Element`]s, which
//! the event parsers then read by element name. This module owns the hostile-input rules: size
//! limit, depth limit, no DTD (so no entity can be declared, let alone expanded), one root, and
//! text handling (plain text unescaped and trimmed, CDATA kept verbatim).

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event as XmlEvent};

use super::{EventError, MAX_DEPTH, MAX_XML_BYTES};

/// One element: its name, its text and its child elements (attributes are ignored). Both name
/// and text borrow from the input unless they had to be unescaped or joined. An element with
/// children has no text: WeCom never mixes the two, and dropping it saves work on every `<xml>`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Element<'a> {
    pub(crate) name: Cow<'a, str>,
    pub(crate) text: Cow<'a, str>,
    pub(crate) children: Vec<Element<'a>>,
}

impl<'a> Element<'a> {
    /// The first child element called `name`.
    pub(crate) fn child(&self, name: &str) -> Option<&Element<'a>> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// Parses `xml` into its root element, enforcing the limits above.
pub(crate) fn parse(xml: &str) -> Result<Element<'_>, EventError> {
    if xml.len() > MAX_XML_BYTES {
        return Err(EventError::TooLarge {
            size: xml.len(),
            max: MAX_XML_BYTES,
        });
    }
    let mut reader = Reader::from_str(xml);
    let mut tree = TreeBuilder::default();
    loop {
        let at = reader.buffer_position();
        let event = reader.read_event().map_err(|err| {
            EventError::NotXml(format!("{err} (at byte {})", reader.error_position()))
        })?;
        match event {
            XmlEvent::Start(start) => tree.open(name_of(xml, at, &start)?)?,
            XmlEvent::Empty(start) => {
                tree.open(name_of(xml, at, &start)?)?;
                tree.close()?;
            }
            XmlEvent::End(_) => tree.close()?,
            XmlEvent::Text(text) if is_blank(&text) && !tree.keeps_blank() => {}
            XmlEvent::Text(text) => tree.text(text.unescape().map_err(not_xml)?)?,
            XmlEvent::CData(cdata) => tree.cdata(cdata.decode().map_err(not_xml)?)?,
            XmlEvent::DocType(_) => return Err(EventError::Doctype),
            XmlEvent::Decl(_) | XmlEvent::PI(_) | XmlEvent::Comment(_) => {}
            XmlEvent::Eof => return tree.finish(),
        }
    }
}

fn not_xml(err: impl std::fmt::Display) -> EventError {
    EventError::NotXml(err.to_string())
}

/// Whitespace only (XML whitespace is ASCII); needs no unescaping.
fn is_blank(text: &[u8]) -> bool {
    text.iter().all(u8::is_ascii_whitespace)
}

/// The element name, borrowed from `xml` when the tag starts at `at` (it does, for a slice
/// reader); checked byte for byte, with an owned copy as the fallback.
fn name_of<'a>(xml: &'a str, at: u64, start: &BytesStart<'_>) -> Result<Cow<'a, str>, EventError> {
    let name = start.name();
    let name = name.as_ref();
    let borrowed = usize::try_from(at)
        .ok()
        .and_then(|at| xml.get(at.checked_add(1)?..at.checked_add(1 + name.len())?));
    match borrowed {
        Some(slice) if slice.as_bytes() == name => Ok(Cow::Borrowed(slice)),
        _ => std::str::from_utf8(name)
            .map(|s| Cow::Owned(s.to_owned()))
            .map_err(not_xml),
    }
}

/// Builds the tree from reader events: a stack of open elements and, once closed, the root.
#[derive(Default)]
struct TreeBuilder<'a> {
    open: Vec<OpenElement<'a>>,
    root: Option<Element<'a>>,
}

impl<'a> TreeBuilder<'a> {
    fn open(&mut self, name: Cow<'a, str>) -> Result<(), EventError> {
        match self.open.last_mut() {
            Some(parent) => parent.adopt_child(),
            None if self.root.is_some() => {
                return Err(EventError::NotXml("more than one root element".into()));
            }
            None => {}
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(EventError::TooDeep);
        }
        self.open.push(OpenElement::new(name));
        Ok(())
    }

    fn close(&mut self) -> Result<(), EventError> {
        let element = self
            .open
            .pop()
            .ok_or_else(|| EventError::NotXml("closing tag without an open element".into()))?
            .close();
        match self.open.last_mut() {
            Some(parent) => parent.children.push(element),
            None => self.root = Some(element),
        }
        Ok(())
    }

    /// Whether whitespace read now could end up in a value: only inside a leaf that already
    /// has text (it may sit between two pieces); anywhere else it is trimmed or dropped anyway.
    fn keeps_blank(&self) -> bool {
        self.open.last().is_some_and(|element| {
            !element.has_children && (!element.text.is_empty() || element.verbatim.is_some())
        })
    }

    fn text(&mut self, text: Cow<'a, str>) -> Result<(), EventError> {
        match self.open.last_mut() {
            Some(element) => element.push(text),
            // A stray byte-order mark around the root is fine; content is not.
            None if text
                .trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
                .is_empty() => {}
            None => return Err(EventError::NotXml("text outside the root element".into())),
        }
        Ok(())
    }

    fn cdata(&mut self, text: Cow<'a, str>) -> Result<(), EventError> {
        let element = self
            .open
            .last_mut()
            .ok_or_else(|| EventError::NotXml("CDATA outside the root element".into()))?;
        element.push_verbatim(text);
        Ok(())
    }

    fn finish(self) -> Result<Element<'a>, EventError> {
        if let Some(element) = self.open.last() {
            return Err(EventError::NotXml(format!(
                "document ends inside <{}>",
                element.name
            )));
        }
        self.root
            .ok_or_else(|| EventError::NotXml("no root element".into()))
    }
}

/// An element still being read. `verbatim` spans the CDATA part of `text`, which is never trimmed.
struct OpenElement<'a> {
    name: Cow<'a, str>,
    text: Cow<'a, str>,
    verbatim: Option<(usize, usize)>,
    has_children: bool,
    children: Vec<Element<'a>>,
}

impl<'a> OpenElement<'a> {
    fn new(name: Cow<'a, str>) -> Self {
        Self {
            name,
            text: Cow::Borrowed(""),
            verbatim: None,
            has_children: false,
            children: Vec::new(),
        }
    }

    fn adopt_child(&mut self) {
        self.has_children = true;
        self.text = Cow::Borrowed("");
        self.verbatim = None;
    }

    fn push(&mut self, piece: Cow<'a, str>) {
        if self.has_children {
            return;
        }
        if self.text.is_empty() {
            self.text = piece;
        } else {
            self.text.to_mut().push_str(&piece);
        }
    }

    fn push_verbatim(&mut self, piece: Cow<'a, str>) {
        let start = self.verbatim.map_or(self.text.len(), |(start, _)| start);
        self.push(piece);
        self.verbatim = Some((start, self.text.len()));
    }

    /// Trims plain text at the element's edges; CDATA (and anything between CDATA) stays as is.
    fn close(self) -> Element<'a> {
        let text = match (self.verbatim, self.text) {
            (None, Cow::Borrowed(text)) => Cow::Borrowed(text.trim()),
            (None, Cow::Owned(text)) => Cow::Owned(text.trim().to_owned()),
            (Some((0, end)), text) if end == text.len() => text,
            (Some((start, end)), text) => {
                let head = text.get(..start).unwrap_or_default().trim_start();
                let middle = text.get(start..end).unwrap_or_default();
                let tail = text.get(end..).unwrap_or_default().trim_end();
                Cow::Owned([head, middle, tail].concat())
            }
        };
        Element {
            name: self.name,
            text,
            children: self.children,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf<'a>(name: &'a str, text: &'a str) -> Element<'a> {
        Element {
            name: name.into(),
            text: text.into(),
            children: vec![],
        }
    }

    #[test]
    fn plain_text_is_trimmed_and_unescaped_but_cdata_is_verbatim() {
        let root = parse("<xml><a>\n  x &amp; y\n</a><b>\n<![CDATA[ &amp; ]]>\n</b><c/></xml>");
        let expected = Element {
            name: "xml".into(),
            text: "".into(),
            children: vec![leaf("a", "x & y"), leaf("b", " &amp; "), leaf("c", "")],
        };
        assert_eq!(root, Ok(expected));
    }

    #[test]
    fn split_cdata_sections_join_back() {
        let root = parse("<xml><a><![CDATA[x]]]]><![CDATA[>y]]></a></xml>");
        assert_eq!(root.map(|r| r.children), Ok(vec![leaf("a", "x]]>y")]));
    }

    #[test]
    fn a_second_root_or_stray_text_is_not_xml() {
        assert!(matches!(parse("<a/><b/>"), Err(EventError::NotXml(_))));
        assert!(matches!(parse("<a/>text"), Err(EventError::NotXml(_))));
        assert!(matches!(parse(""), Err(EventError::NotXml(_))));
        assert!(matches!(parse("<a><b></a>"), Err(EventError::NotXml(_))));
        assert!(matches!(parse("<a><b>"), Err(EventError::NotXml(_))));
    }

    #[test]
    fn eight_levels_are_allowed_nine_are_too_deep() {
        let nested = |depth: usize| format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
        assert!(parse(&nested(MAX_DEPTH)).is_ok());
        assert_eq!(parse(&nested(MAX_DEPTH + 1)), Err(EventError::TooDeep));
    }

    #[test]
    fn whitespace_between_cdata_sections_is_kept_and_parents_have_no_text() {
        let root = parse("<xml> a <b><![CDATA[x]]> <!-- c --> <![CDATA[y]]> </b> z </xml>");
        let root = root.expect("well-formed");
        assert_eq!(root.text, "");
        assert_eq!(root.children, vec![leaf("b", "x  y")]);
    }

    #[test]
    fn names_and_plain_leaf_values_borrow_from_the_input() {
        let xml = "<?xml version=\"1.0\"?>\n<xml>\n <Id>2</Id>\n<Name><![CDATA[n]]></Name><E/><A x=\"1\">t</A></xml>";
        let root = parse(xml).expect("well-formed");
        let all = std::iter::once(&root).chain(&root.children);
        for element in all {
            assert!(matches!(element.name, Cow::Borrowed(_)), "{}", element.name);
            assert!(matches!(element.text, Cow::Borrowed(_)), "{}", element.name);
        }
    }
}
