//! A small, safe XML reader: the document becomes a tree of elements with resolved
//! namespaces. DOCTYPE (and so every entity declaration) is refused, only the predefined
//! entities and character references are expanded, and depth and size are bounded.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
const MAX_DEPTH: usize = 64;
const MAX_ELEMENTS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Element {
    pub ns: Option<String>,
    /// The local name (without prefix).
    pub name: String,
    /// (namespace, local name, value); `xmlns` declarations are not included.
    pub attrs: Vec<(Option<String>, String, String)>,
    pub children: Vec<Element>,
    /// The element's own text, concatenated.
    pub text: String,
}

impl Element {
    /// The first child with this local name (case-insensitive).
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// `xsi:nil="true"`.
    pub fn is_nil(&self) -> bool {
        self.attrs
            .iter()
            .any(|(ns, n, v)| ns.as_deref() == Some(XSI_NS) && n == "nil" && (v == "true" || v == "1"))
    }

    pub fn in_ns(&self, ns: &str) -> bool {
        self.ns.as_deref() == Some(ns)
    }
}

fn ns_of(r: ResolveResult<'_>) -> Option<String> {
    match r {
        ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
        _ => None,
    }
}

/// Parse a whole document. Errors are short, safe-to-show descriptions.
pub fn parse(input: &[u8]) -> Result<Element, String> {
    let text = std::str::from_utf8(input).map_err(|_| "the XML is not valid UTF-8".to_string())?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = NsReader::from_str(text);
    reader.config_mut().expand_empty_elements = true;
    let mut stack: Vec<Element> = vec![];
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let (ns, ev) = reader
            .read_resolved_event()
            .map_err(|e| format!("malformed XML: {e}"))?;
        match ev {
            Event::Start(e) => {
                if root.is_some() {
                    return Err("malformed XML: more than one root element".into());
                }
                count += 1;
                if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err("the XML is nested too deeply or is too large".into());
                }
                let mut el = Element {
                    ns: ns_of(ns),
                    name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    ..Element::default()
                };
                for a in e.attributes() {
                    let a = a.map_err(|e| format!("malformed XML attribute: {e}"))?;
                    let key = a.key.as_ref();
                    if key == b"xmlns" || key.starts_with(b"xmlns:") {
                        continue;
                    }
                    let (ans, local) = reader.resolve_attribute(a.key);
                    let value = a
                        .decode_and_unescape_value(reader.decoder())
                        .map_err(|e| format!("malformed XML attribute: {e}"))?
                        .into_owned();
                    el.attrs
                        .push((ns_of(ans), String::from_utf8_lossy(local.as_ref()).into_owned(), value));
                }
                stack.push(el);
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("malformed XML: unexpected end tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(|e| format!("malformed XML text: {e}"))?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => return Err("malformed XML: text outside the root element".into()),
                }
            }
            Event::CData(c) => {
                let s = String::from_utf8(c.into_inner().into_owned())
                    .map_err(|_| "the XML is not valid UTF-8".to_string())?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&s),
                    None => return Err("malformed XML: CDATA outside the root element".into()),
                }
            }
            Event::DocType(_) => return Err("DOCTYPE and entity declarations are not allowed".into()),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Empty(_) => return Err("malformed XML".into()),
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err("malformed XML: unclosed element".into());
    }
    root.ok_or_else(|| "malformed XML: no root element".into())
}

/// Escape text for element content and attribute values.
pub fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespaces_text_and_nil() {
        let doc = br#"<?xml version="1.0"?>
            <a:Root xmlns:a="urn:a" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
              <a:X>1 &amp; 2</a:X><Y xsi:nil="true"/><Z><![CDATA[<raw>]]></Z>
            </a:Root>"#;
        let r = parse(doc).unwrap();
        assert_eq!(r.name, "Root");
        assert!(r.in_ns("urn:a"));
        assert_eq!(r.child("x").unwrap().text, "1 & 2");
        assert!(r.child("Y").unwrap().is_nil());
        assert_eq!(r.child("Z").unwrap().text, "<raw>");
    }

    #[test]
    fn refuses_doctype_entities_and_garbage() {
        let xxe = br#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
        assert!(parse(xxe).unwrap_err().contains("DOCTYPE"));
        let bomb = br#"<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><r>&b;</r>"#;
        assert!(parse(bomb).is_err());
        assert!(parse(b"<r>&undefined;</r>").is_err());
        assert!(parse(b"<r><a></r>").is_err());
        assert!(parse(b"<r/><s/>").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(&[0xff, 0xfe]).is_err());
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
