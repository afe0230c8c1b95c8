//! A small, bounded XML tree: the only place callback bytes meet the XML reader.
//!
//! WeCom bodies are tiny and shallow, so the whole document becomes a tree of [`Element`]s, which
//! the event parsers then read by element name. This module owns the hostile-input rules: size
//! limit, depth limit, no DTD (so no entity can be declared, let alone expanded), one root, and
//! text handling (plain text unescaped and trimmed, CDATA kept verbatim). The reader reports each
//! `&…;` reference as its own event; only character references and the five predefined entities
//! resolve, any other name is refused ([`resolve_reference`]).

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, Event as XmlEvent};

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
            XmlEvent::Start(start) => tree.open(name_of(xml, at, &start))?,
            XmlEvent::Empty(start) => {
                tree.open(name_of(xml, at, &start))?;
                tree.close()?;
            }
            XmlEvent::End(_) => tree.close()?,
            // Text as written (no end-of-line normalization); it holds no `&`: references
            // arrive as their own events.
            XmlEvent::Text(text) if is_blank(&text) && !tree.keeps_blank() => {}
            XmlEvent::Text(text) => tree.text(text.into_inner())?,
            XmlEvent::GeneralRef(reference) => {
                tree.text(resolve_reference(&reference).map_err(EventError::NotXml)?)?;
            }
            XmlEvent::CData(cdata) => tree.cdata(cdata.into_inner())?,
            XmlEvent::DocType(_) => return Err(EventError::Doctype),
            XmlEvent::Decl(_) | XmlEvent::PI(_) | XmlEvent::Comment(_) => {}
            XmlEvent::Eof => return tree.finish(),
        }
    }
}

/// Whitespace only (XML whitespace is ASCII).
fn is_blank(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_whitespace())
}

/// What a `&name;` or `&#…;` reference stands for: a character reference or one of the five
/// predefined entities. Any other name would need a DTD to declare it, and DTDs are refused, so
/// it is an error (never expanded, never kept as text).
pub(crate) fn resolve_reference(reference: &BytesRef<'_>) -> Result<Cow<'static, str>, String> {
    match reference.resolve_char_ref() {
        Ok(Some(c)) => Ok(Cow::Owned(c.to_string())),
        Err(err) => Err(format!("{err} in &{};", &**reference)),
        Ok(None) => resolve_predefined_entity(reference)
            .map(Cow::Borrowed)
            .ok_or_else(|| format!("undeclared entity &{};", &**reference)),
    }
}

/// The element name, borrowed from `xml` when the tag starts at `at` (it does, for a slice
/// reader); checked byte for byte, with an owned copy as the fallback.
fn name_of<'a>(xml: &'a str, at: u64, start: &BytesStart<'_>) -> Cow<'a, str> {
    let name = start.name();
    let name: &str = name.as_ref();
    let borrowed = usize::try_from(at)
        .ok()
        .and_then(|at| xml.get(at.checked_add(1)?..at.checked_add(1 + name.len())?));
    match borrowed {
        Some(slice) if slice == name => Cow::Borrowed(slice),
        _ => Cow::Owned(name.to_owned()),
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
    fn references_resolve_in_place_and_undeclared_entities_are_not_xml() {
        let root = parse("<xml><a> &lt;x&#x20;&amp;&#20013; y&gt; </a><b>&#32;</b></xml>");
        let children = root.map(|r| r.children);
        assert_eq!(children, Ok(vec![leaf("a", "<x &中 y>"), leaf("b", "")]));
        for xml in [
            "<xml><a>&lol;</a></xml>",
            "<xml><a>x &nbsp; y</a></xml>",
            "<xml><a>&#0;</a></xml>",
            "<xml><a>&#xD800;</a></xml>",
            "<xml><a>a & b</a></xml>",
            "&amp;<xml/>",
        ] {
            assert!(matches!(parse(xml), Err(EventError::NotXml(_))), "{xml}");
        }
    }

    #[test]
    fn a_doctype_anywhere_is_refused_before_any_entity_is_read() {
        for xml in [
            "<!DOCTYPE xml [<!ENTITY a \"b\">]><xml><a>&a;</a></xml>",
            "<!DOCTYPE xml SYSTEM \"file:///etc/passwd\"><xml/>",
            "<xml><!DOCTYPE x><a>&a;</a></xml>",
        ] {
            assert_eq!(parse(xml), Err(EventError::Doctype), "{xml}");
        }
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
