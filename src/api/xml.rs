//! A small, safe XML reader: the document becomes a tree of elements with resolved
//! namespaces. DOCTYPE (and so every entity declaration) is refused, only the predefined
//! entities and character references are expanded, and depth, element count, attributes per
//! element, name lengths and text sizes are bounded, so that the work is linear in the input
//! and every cap answers at once. (quick-xml's own duplicate-attribute check compares every
//! pair, which is quadratic: it is turned off, and duplicates are found here with a set.)

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
const MAX_DEPTH: usize = 64;
const MAX_ELEMENTS: usize = 10_000;
/// A SOAP body needs a handful (xmlns declarations included).
pub const MAX_ATTRIBUTES: usize = 64;
/// Element and attribute names, prefix included.
pub const MAX_NAME_BYTES: usize = 256;
/// One attribute's value.
const MAX_ATTRIBUTE_BYTES: usize = 16 * 1024;
/// One element's text (the longest value any operation takes is 4,000 characters).
const MAX_TEXT_BYTES: usize = 256 * 1024;

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
                if e.name().as_ref().len() > MAX_NAME_BYTES {
                    return Err(format!("an element name is longer than {MAX_NAME_BYTES} bytes"));
                }
                let mut el = Element {
                    ns: ns_of(ns),
                    name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    ..Element::default()
                };
                let mut seen = std::collections::HashSet::new();
                for a in e.attributes().with_checks(false) {
                    let a = a.map_err(|e| format!("malformed XML attribute: {e}"))?;
                    let key = a.key.as_ref();
                    if seen.len() >= MAX_ATTRIBUTES {
                        return Err(format!("an element has too many attributes (at most {MAX_ATTRIBUTES})"));
                    }
                    if key.len() > MAX_NAME_BYTES {
                        return Err(format!("an attribute name is longer than {MAX_NAME_BYTES} bytes"));
                    }
                    if a.value.len() > MAX_ATTRIBUTE_BYTES {
                        return Err(format!("an attribute value is longer than {MAX_ATTRIBUTE_BYTES} bytes"));
                    }
                    if !seen.insert(key.to_vec()) {
                        return Err("malformed XML attribute: a duplicate attribute".into());
                    }
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
                    Some(top) if top.text.len() + s.len() > MAX_TEXT_BYTES => {
                        return Err(format!("an element's text is longer than {MAX_TEXT_BYTES} bytes"));
                    }
                    Some(top) => top.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => return Err("malformed XML: text outside the root element".into()),
                }
            }
            Event::CData(c) => {
                let s = String::from_utf8(c.into_inner().into_owned())
                    .map_err(|_| "the XML is not valid UTF-8".to_string())?;
                match stack.last_mut() {
                    Some(top) if top.text.len() + s.len() > MAX_TEXT_BYTES => {
                        return Err(format!("an element's text is longer than {MAX_TEXT_BYTES} bytes"));
                    }
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

/// Escape text for element content and attribute values. A carriage return is written as
/// `&#xD;` (as .NET's serializer does): a raw one would reach the reader as a line feed (XML's
/// end-of-line handling), and the text would not come back as it was.
pub fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    match quick_xml::escape::escape(s) {
        std::borrow::Cow::Borrowed(b) if !b.contains('\r') => std::borrow::Cow::Borrowed(b),
        other => std::borrow::Cow::Owned(other.replace('\r', "&#xD;")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_carriage_returns() {
        assert_eq!(esc("a\r\n<&\t"), "a&#xD;\n&lt;&amp;\t");
        assert_eq!(esc("plain"), "plain");
        let back = parse(format!("<r>{}</r>", esc("x\r\ny")).as_bytes()).unwrap();
        assert_eq!(back.text, "x\r\ny");
    }

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

    #[test]
    fn attributes_names_and_text_are_capped() {
        let attrs = |n: usize| (0..n).map(|i| format!(" a{i}=\"\"")).collect::<String>();
        assert!(parse(format!("<r{}/>", attrs(MAX_ATTRIBUTES)).as_bytes()).is_ok());
        let many = parse(format!("<r{}/>", attrs(MAX_ATTRIBUTES + 1)).as_bytes()).unwrap_err();
        assert!(many.contains("too many attributes"), "{many}");
        assert!(parse(br#"<r a="1" a="2"/>"#).unwrap_err().contains("duplicate"));
        // Namespace declarations count, and a redeclared prefix is a duplicate too.
        assert!(parse(br#"<r xmlns:p="urn:a" xmlns:p="urn:b"/>"#).is_err());
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        assert!(parse(format!("<{long}/>").as_bytes()).is_err());
        assert!(parse(format!("<r {long}=\"1\"/>").as_bytes()).is_err());
        let text = "x".repeat(MAX_TEXT_BYTES + 1);
        assert!(parse(format!("<r>{text}</r>").as_bytes()).is_err());
        assert!(parse(format!("<r><![CDATA[{text}]]></r>").as_bytes()).is_err());
    }
}
