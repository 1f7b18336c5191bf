//! Carriers on the wire: JSON and DataContract XML written from the carrier definitions in
//! `ops`, rights masks rendered as .NET renders flags enums, and the server-stamped dates in UTC.
//!
//! A carrier travels as a `serde_json::Value` map between the operation and the renderer
//! (so that `$select` works on it); masks are numbers in it, named when rendered.

use super::Ctx;
use super::ops::{CarrierDef, FieldTy};
use crate::api::xml::esc;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::fmt::Write;

/// ETableRight: every defined name (composites included), for JSON.
pub const TABLE_RIGHT_NAMES: &[(u32, &str)] = &[
    (0, "None"),
    (1, "Select"),
    (2, "Update"),
    (3, "UR"),
    (4, "Insert"),
    (5, "RI"),
    (7, "URI"),
    (8, "Delete"),
    (11, "UDR"),
    (15, "FULL"),
    (16, "Filtering"),
    (17, "RF"),
    (20, "FI"),
    (32, "RestrictedUpdate"),
    (34, "URU"),
    (38, "WRITE"),
    (64, "Unused1"),
    (128, "Uninitialized"),
];

/// ETableRight's single flags: the WSDL's xs:list enumeration.
pub const TABLE_RIGHT_FLAGS: &[(u32, &str)] = &[
    (1, "Select"),
    (2, "Update"),
    (4, "Insert"),
    (8, "Delete"),
    (16, "Filtering"),
    (32, "RestrictedUpdate"),
    (64, "Unused1"),
    (128, "Uninitialized"),
];

/// EFieldRight: every defined name, for JSON (3 is FULL, as the seed's sample shows).
pub const FIELD_RIGHT_NAMES: &[(u32, &str)] = &[
    (0, "None"),
    (1, "Read"),
    (2, "Write"),
    (3, "FULL"),
    (32, "Nullable"),
    (64, "UIHintMandatory"),
    (128, "UIHintReadOnly"),
    (192, "UIHints"),
];

/// EFieldRight's single flags: the WSDL's xs:list enumeration.
pub const FIELD_RIGHT_FLAGS: &[(u32, &str)] = &[
    (1, "Read"),
    (2, "Write"),
    (4, "Unused1"),
    (8, "Unused2"),
    (16, "Unused3"),
    (32, "Nullable"),
    (64, "UIHintMandatory"),
    (128, "UIHintReadOnly"),
    (256, "UndefinedValue256"),
];

pub const TABLE_SELECT: u32 = 1;
pub const TABLE_FULL: u32 = 15;
pub const FIELD_READ: u32 = 1;
pub const FIELD_FULL: u32 = 3;
pub const FIELD_READ_ONLY: u32 = 1 | 128;

/// A flags value as .NET's `Enum.ToString()` writes it: the defined name when the value has
/// one; else the names that make it up, largest first taken, written smallest first and
/// joined with ", "; else the number.
pub fn dotnet_flags(value: u32, names: &[(u32, &str)]) -> String {
    if let Some((_, n)) = names.iter().find(|(v, _)| *v == value) {
        return (*n).to_string();
    }
    let mut rest = value;
    let mut parts = vec![];
    for (v, n) in names.iter().rev() {
        if *v != 0 && rest & v == *v {
            parts.push(*n);
            rest &= !v;
        }
    }
    if rest != 0 {
        return value.to_string();
    }
    parts.reverse();
    parts.join(", ")
}

/// A flags value as an xs:list of single flags (space-separated, smallest first).
pub fn xml_flags(value: u32, flags: &[(u32, &str)]) -> String {
    flags
        .iter()
        .filter(|(v, _)| value & v == *v)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A server-stamped date (CreatedDate, UpdatedDate: the only dates the carriers have) as the
/// agent answers it. SuperOffice keeps these in UTC and documents that the time zone header
/// does not convert them ("Created and updated date ... are always UTC ... If you specify
/// includeTZOffset they are always tagged as UTC times"): UTC with `Z`; with a client time
/// zone (SO-TimeZone, SOAP TimeZone) the same UTC value without a zone specifier, as every date
/// then is, unless `includeTZOffset` asks for the tag.
pub fn date(t: DateTime<Utc>, ctx: &Ctx) -> String {
    let utc = t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    if ctx.client_tz.is_some() && !ctx.include_offset {
        utc
    } else {
        utc + "Z"
    }
}

fn mask(v: &Value) -> Option<u32> {
    v.get("Mask")
        .and_then(Value::as_u64)
        .and_then(|m| u32::try_from(m).ok())
}

fn json_str(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn json_right(out: &mut String, v: &Value, names: &[(u32, &str)]) {
    match mask(v) {
        None if v.is_null() => out.push_str("null"),
        m => {
            let mask = m.map(|m| Value::String(dotnet_flags(m, names))).unwrap_or(Value::Null);
            let reason = v.get("Reason").cloned().unwrap_or(Value::Null);
            let _ = write!(out, "{{\"Mask\":{},\"Reason\":{}}}", json_str(&mask), json_str(&reason));
        }
    }
}

/// A carrier as JSON text, members in the carrier's declared order.
pub fn json(def: &CarrierDef, v: &Value, out: &mut String) {
    let Value::Object(m) = v else {
        out.push_str("null");
        return;
    };
    out.push('{');
    for (name, ty) in def.fields {
        let val = m.get(*name).unwrap_or(&Value::Null);
        let _ = write!(out, "{}:", json_str(&Value::String((*name).into())));
        match (ty, val) {
            (_, Value::Null) => out.push_str("null"),
            (FieldTy::Carrier(d), _) => json(d, val, out),
            (FieldTy::List(d), Value::Array(items)) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json(d, item, out);
                }
                out.push(']');
            }
            _ => out.push_str(&json_str(val)),
        }
        out.push(',');
    }
    out.push_str("\"TableRight\":");
    json_right(out, m.get("TableRight").unwrap_or(&Value::Null), TABLE_RIGHT_NAMES);
    out.push_str(",\"FieldProperties\":");
    match m.get("FieldProperties") {
        Some(Value::Object(fp)) => {
            out.push('{');
            for (i, (field, prop)) in fp.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}:{{\"FieldRight\":", json_str(&Value::String(field.clone())));
                json_right(out, prop.get("FieldRight").unwrap_or(&Value::Null), FIELD_RIGHT_NAMES);
                let _ = write!(
                    out,
                    ",\"FieldType\":{},\"FieldLength\":{}}}",
                    json_str(prop.get("FieldType").unwrap_or(&Value::Null)),
                    json_str(prop.get("FieldLength").unwrap_or(&Value::Null))
                );
            }
            out.push('}');
        }
        _ => out.push_str("null"),
    }
    out.push('}');
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => esc(s).into_owned(),
        other => other.to_string(),
    }
}

fn xml_right(out: &mut String, name: &str, v: &Value, flags: &[(u32, &str)]) {
    if v.is_null() {
        let _ = write!(out, r#"<{name} i:nil="true"/>"#);
        return;
    }
    let mask = mask(v).map(|m| xml_flags(m, flags)).unwrap_or_default();
    let reason = v.get("Reason").map(text).unwrap_or_default();
    let _ = write!(out, "<{name}><Mask>{mask}</Mask><Reason>{reason}</Reason></{name}>");
}

/// A carrier's members as DataContract XML (the base class's TableRight and FieldProperties
/// first), unprefixed: the enclosing element sets the namespace.
pub fn xml_members(def: &CarrierDef, v: &Value, out: &mut String) {
    let Value::Object(m) = v else { return };
    xml_right(
        out,
        "TableRight",
        m.get("TableRight").unwrap_or(&Value::Null),
        TABLE_RIGHT_FLAGS,
    );
    match m.get("FieldProperties") {
        Some(Value::Object(fp)) => {
            out.push_str("<FieldProperties>");
            for (field, prop) in fp {
                let _ = write!(
                    out,
                    "<FieldPropertyDictionaryKeyValuePair><Key>{}</Key><Value>",
                    esc(field)
                );
                xml_right(
                    out,
                    "FieldRight",
                    prop.get("FieldRight").unwrap_or(&Value::Null),
                    FIELD_RIGHT_FLAGS,
                );
                let _ = write!(
                    out,
                    "<FieldType>{}</FieldType><FieldLength>{}</FieldLength></Value></FieldPropertyDictionaryKeyValuePair>",
                    prop.get("FieldType").map(text).unwrap_or_default(),
                    prop.get("FieldLength").map(text).unwrap_or_default()
                );
            }
            out.push_str("</FieldProperties>");
        }
        _ => out.push_str(r#"<FieldProperties i:nil="true"/>"#),
    }
    for (name, ty) in def.fields {
        let val = m.get(*name).unwrap_or(&Value::Null);
        match (ty, val) {
            (_, Value::Null) => {
                let _ = write!(out, r#"<{name} i:nil="true"/>"#);
            }
            (FieldTy::Carrier(d), _) => {
                let _ = write!(out, "<{name}>");
                xml_members(d, val, out);
                let _ = write!(out, "</{name}>");
            }
            (FieldTy::List(d), Value::Array(items)) => {
                let _ = write!(out, "<{name}>");
                for item in items {
                    let _ = write!(out, "<{}>", d.name);
                    xml_members(d, item, out);
                    let _ = write!(out, "</{}>", d.name);
                }
                let _ = write!(out, "</{name}>");
            }
            (FieldTy::StringDictionary, Value::Object(pairs)) => {
                let _ = write!(out, "<{name}>");
                xml_dictionary_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))), out);
                let _ = write!(out, "</{name}>");
            }
            _ => {
                let _ = write!(out, "<{name}>{}</{name}>", text(val));
            }
        }
    }
}

/// StringDictionary members: `<StringKeyValuePair><Key/><Value/></StringKeyValuePair>`.
pub fn xml_dictionary_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>, out: &mut String) {
    for (k, v) in pairs {
        let _ = write!(
            out,
            "<StringKeyValuePair><Key>{}</Key><Value>{}</Value></StringKeyValuePair>",
            esc(k),
            esc(v)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_render_as_dotnet_flags() {
        assert_eq!(dotnet_flags(15, TABLE_RIGHT_NAMES), "FULL");
        assert_eq!(dotnet_flags(8, TABLE_RIGHT_NAMES), "Delete");
        assert_eq!(dotnet_flags(9, TABLE_RIGHT_NAMES), "Select, Delete");
        assert_eq!(dotnet_flags(0, TABLE_RIGHT_NAMES), "None");
        assert_eq!(dotnet_flags(3, FIELD_RIGHT_NAMES), "FULL");
        assert_eq!(dotnet_flags(65, FIELD_RIGHT_NAMES), "Read, UIHintMandatory");
        assert_eq!(dotnet_flags(129, FIELD_RIGHT_NAMES), "Read, UIHintReadOnly");
        assert_eq!(dotnet_flags(1024, FIELD_RIGHT_NAMES), "1024");
        assert_eq!(xml_flags(15, TABLE_RIGHT_FLAGS), "Select Update Insert Delete");
        assert_eq!(xml_flags(1, TABLE_RIGHT_FLAGS), "Select");
        assert_eq!(xml_flags(3, FIELD_RIGHT_FLAGS), "Read Write");
        assert_eq!(xml_flags(0, FIELD_RIGHT_FLAGS), "");
    }
}
