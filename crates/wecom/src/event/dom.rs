//! A small, bounded XML tree: the only place callback bytes meet the XML reader.
//!
//! WeCom bodies are tiny and shallow, so the whole document becomes a tree of [`Element`]s, which
//! the event parsers then read by element name. This module owns the hostile-input rules: size
//! limit, depth limit, no DTD (so no entity can be declared, let alone expanded), one root, and
//! text handling (plain text unescaped and trimmed, CDATA kept verbatim).

use quick_xml::Reader;
use quick_xml::events::Event as XmlEvent;

use super::{EventError, MAX_DEPTH, MAX_XML_BYTES};

/// One element: its name, its own text and its child elements (attributes are ignored).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) text: String,
    pub(crate) children: Vec<Element>,
}

impl Element {
    /// The first child element called `name`.
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// Parses `xml` into its root element, enforcing the limits above.
pub(crate) fn parse(xml: &str) -> Result<Element, EventError> {
    if xml.len() > MAX_XML_BYTES {
        return Err(EventError::TooLarge {
            size: xml.len(),
            max: MAX_XML_BYTES,
        });
    }
    let mut reader = Reader::from_str(xml);
    let mut tree = TreeBuilder::default();
    loop {
        let event = reader.read_event().map_err(|err| {
            EventError::NotXml(format!("{err} (at byte {})", reader.error_position()))
        })?;
        match event {
            XmlEvent::Start(start) => tree.open(name_of(start.name().as_ref())?)?,
            XmlEvent::Empty(start) => {
                tree.open(name_of(start.name().as_ref())?)?;
                tree.close()?;
            }
            XmlEvent::End(_) => tree.close()?,
            XmlEvent::Text(text) => tree.text(&text.unescape().map_err(not_xml)?)?,
            XmlEvent::CData(cdata) => tree.cdata(&cdata.decode().map_err(not_xml)?)?,
            XmlEvent::DocType(_) => return Err(EventError::Doctype),
            XmlEvent::Decl(_) | XmlEvent::PI(_) | XmlEvent::Comment(_) => {}
            XmlEvent::Eof => return tree.finish(),
        }
    }
}

fn not_xml(err: impl std::fmt::Display) -> EventError {
    EventError::NotXml(err.to_string())
}

fn name_of(raw: &[u8]) -> Result<String, EventError> {
    std::str::from_utf8(raw).map(str::to_owned).map_err(not_xml)
}

/// Builds the tree from reader events: a stack of open elements and, once closed, the root.
#[derive(Default)]
struct TreeBuilder {
    open: Vec<OpenElement>,
    root: Option<Element>,
}

impl TreeBuilder {
    fn open(&mut self, name: String) -> Result<(), EventError> {
        if self.open.is_empty() && self.root.is_some() {
            return Err(EventError::NotXml("more than one root element".into()));
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

    fn text(&mut self, text: &str) -> Result<(), EventError> {
        match self.open.last_mut() {
            Some(element) => element.text.push_str(text),
            // Whitespace (and a stray byte-order mark) around the root is fine; content is not.
            None if text
                .trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
                .is_empty() => {}
            None => return Err(EventError::NotXml("text outside the root element".into())),
        }
        Ok(())
    }

    fn cdata(&mut self, text: &str) -> Result<(), EventError> {
        let element = self
            .open
            .last_mut()
            .ok_or_else(|| EventError::NotXml("CDATA outside the root element".into()))?;
        element.push_verbatim(text);
        Ok(())
    }

    fn finish(self) -> Result<Element, EventError> {
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
struct OpenElement {
    name: String,
    text: String,
    verbatim: Option<(usize, usize)>,
    children: Vec<Element>,
}

impl OpenElement {
    fn new(name: String) -> Self {
        Self {
            name,
            text: String::new(),
            verbatim: None,
            children: Vec::new(),
        }
    }

    fn push_verbatim(&mut self, text: &str) {
        let start = self.verbatim.map_or(self.text.len(), |(start, _)| start);
        self.text.push_str(text);
        self.verbatim = Some((start, self.text.len()));
    }

    /// Trims plain text at the element's edges; CDATA (and anything between CDATA) stays as is.
    fn close(self) -> Element {
        let text = match self.verbatim {
            None => self.text.trim().to_owned(),
            Some((start, end)) => {
                let head = self.text.get(..start).unwrap_or_default().trim_start();
                let middle = self.text.get(start..end).unwrap_or_default();
                let tail = self.text.get(end..).unwrap_or_default().trim_end();
                [head, middle, tail].concat()
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

    fn leaf(name: &str, text: &str) -> Element {
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
            text: String::new(),
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
}
