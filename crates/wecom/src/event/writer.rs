//! Writes events back in WeCom's own XML shape: strings in CDATA, numbers as plain text.
//!
//! The simulator pushes callbacks with this, and the round-trip tests rely on
//! `Event::parse(&e.to_xml()) == Ok(e)`, so every string must survive exactly, `]]>` included.

use std::fmt::{Display, Write as _};

/// Builds one `<xml>…</xml>` document, one element per line like WeCom's samples.
#[derive(Debug)]
pub(crate) struct XmlWriter {
    out: String,
}

impl XmlWriter {
    pub(crate) fn new() -> Self {
        Self {
            out: String::from("<xml>"),
        }
    }

    /// `<name><![CDATA[value]]></name>`.
    pub(crate) fn text(&mut self, name: &str, value: &str) -> &mut Self {
        self.open(name);
        push_cdata(&mut self.out, value);
        self.close(name)
    }

    pub(crate) fn opt_text(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.text(name, value);
        }
        self
    }

    /// `<name>value</name>` for numbers.
    pub(crate) fn number(&mut self, name: &str, value: impl Display) -> &mut Self {
        self.open(name);
        let _ = write!(self.out, "{value}");
        self.close(name)
    }

    pub(crate) fn opt_number(&mut self, name: &str, value: Option<impl Display>) -> &mut Self {
        if let Some(value) = value {
            self.number(name, value);
        }
        self
    }

    /// A comma-separated list in CDATA, if present.
    pub(crate) fn list<T: Display>(&mut self, name: &str, items: Option<&[T]>) -> &mut Self {
        if let Some(items) = items {
            let joined: Vec<String> = items.iter().map(ToString::to_string).collect();
            self.text(name, &joined.join(","));
        }
        self
    }

    /// An element holding other elements, written by `inner`.
    pub(crate) fn nested(&mut self, name: &str, inner: impl FnOnce(&mut Self)) -> &mut Self {
        self.open(name);
        inner(self);
        self.close(name)
    }

    pub(crate) fn finish(mut self) -> String {
        self.out.push_str("</xml>");
        self.out
    }

    fn open(&mut self, name: &str) {
        let _ = write!(self.out, "<{name}>");
    }

    fn close(&mut self, name: &str) -> &mut Self {
        let _ = writeln!(self.out, "</{name}>");
        self
    }
}

/// Writes `value` as CDATA; a `]]>` inside is split across two sections so it cannot end one.
fn push_cdata(out: &mut String, value: &str) {
    out.push_str("<![CDATA[");
    out.push_str(&value.replace("]]>", "]]]]><![CDATA[>"));
    out.push_str("]]>");
}

/// Whether `name` can be written as an element name and read back as the same name: the names
/// the parser can produce (it is as lenient as the reader), never one that would end the tag or
/// turn it into a comment, declaration or processing instruction.
pub(crate) fn is_element_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['!', '?'])
        && !name.contains(|c: char| c.is_ascii_whitespace() || matches!(c, '<' | '>' | '/'))
}
