//! Request arguments from any body format (JSON, XML, form), read by name
//! (case-insensitively) and converted to the type the operation declares.

use super::ops::{Operation, Param, Ty};
use crate::api::xml::Element;
use crate::error::{Error, Result};
use crate::service::temporary::Domain;
use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Null,
    Text(String),
    Json(Value),
    /// A carrier from XML (an element with children) or from `Name.Field` form fields.
    Nested(Args),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args(Vec<(String, Raw)>);

impl Args {
    pub fn from_json(v: Value) -> Result<Args> {
        match v {
            Value::Object(m) => Ok(Args(m.into_iter().map(|(k, v)| (k, raw_of(v))).collect())),
            _ => Err(not_an_object()),
        }
    }

    /// The children of an XML element (the request root, or a SOAP operation element).
    pub fn from_xml(root: &Element) -> Args {
        Args(
            root.children
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        if c.is_nil() {
                            Raw::Null
                        } else if !c.children.is_empty() {
                            Raw::Nested(Args::from_xml(c))
                        } else {
                            Raw::Text(c.text.clone())
                        },
                    )
                })
                .collect(),
        )
    }

    /// Form fields; `Carrier.Field` names (ASP.NET's form binding) make a nested carrier.
    pub fn from_form(pairs: Vec<(String, String)>) -> Args {
        let mut out: Vec<(String, Raw)> = vec![];
        for (k, v) in pairs {
            match k.split_once('.') {
                Some((outer, inner)) if !outer.is_empty() && !inner.is_empty() => {
                    let slot = out
                        .iter()
                        .position(|(n, r)| n.eq_ignore_ascii_case(outer) && matches!(r, Raw::Nested(_)));
                    let i = match slot {
                        Some(i) => i,
                        None => {
                            out.push((outer.to_string(), Raw::Nested(Args::default())));
                            out.len() - 1
                        }
                    };
                    if let Raw::Nested(a) = &mut out[i].1 {
                        a.0.push((inner.to_string(), Raw::Text(v)));
                    }
                }
                _ => out.push((k, Raw::Text(v))),
            }
        }
        Args(out)
    }

    /// Set a parameter the REST agent reads from the query string: whatever the body said of
    /// it is dropped, and the query's value (names matched without regard to case) is used.
    pub fn set_from_query(&mut self, name: &str, query: Option<&str>) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        if let Some((_, v)) = query
            .into_iter()
            .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            self.0.push((name.to_string(), Raw::Text(v.into_owned())));
        }
    }

    /// A carrier parameter: `None` when absent or null.
    pub fn carrier(&self, op: &Operation, name: &str) -> Result<Option<Args>> {
        let p = Self::param(op, name)?;
        let what = match p.ty {
            Ty::Carrier(c) => c.name,
            _ => "object",
        };
        match self.present(p)? {
            None => Ok(None),
            Some(Raw::Nested(a)) => Ok(Some(a.clone())),
            Some(Raw::Json(v @ Value::Object(_))) => Ok(Some(Args::from_json(v.clone())?)),
            Some(Raw::Text(t)) if t.trim().is_empty() => Ok(Some(Args::default())),
            Some(_) => Err(Error::invalid(p.name, format!("must be a {what} object"))),
        }
    }

    /// A carrier's string field (the carrier's own reader: no operation declares it).
    pub fn field_string(&self, carrier: &str, name: &'static str) -> Result<Option<String>> {
        self.string_of(&field_param(name, Ty::String))
            .map_err(|e| nest(e, carrier))
    }

    /// A carrier's int32 field; absent or null is 0.
    pub fn field_int(&self, carrier: &str, name: &'static str) -> Result<i32> {
        self.int_of(&field_param(name, Ty::Int)).map_err(|e| nest(e, carrier))
    }

    fn raw(&self, name: &str) -> Option<&Raw> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn present(&self, p: &Param) -> Result<Option<&Raw>> {
        match self.raw(p.name) {
            None | Some(Raw::Null) if p.required => Err(Error::invalid(p.name, "is required")),
            None | Some(Raw::Null) => Ok(None),
            Some(r) => Ok(Some(r)),
        }
    }

    fn param<'a>(op: &'a Operation, name: &str) -> Result<&'a Param> {
        op.param(name)
            .ok_or_else(|| Error::internal(format!("{} has no parameter {name}", op.name)))
    }

    /// An int32; absent or null is 0 unless required.
    pub fn int(&self, op: &Operation, name: &str) -> Result<i32> {
        self.int_of(Self::param(op, name)?)
    }

    fn int_of(&self, p: &Param) -> Result<i32> {
        debug_assert_eq!(p.ty, Ty::Int);
        let bad = || Error::invalid(p.name, "must be a whole number between -2147483648 and 2147483647");
        match self.present(p)? {
            None => Ok(0),
            Some(Raw::Json(Value::Number(n))) => n.as_i64().and_then(|v| i32::try_from(v).ok()).ok_or_else(bad),
            Some(Raw::Json(Value::String(s))) | Some(Raw::Text(s)) => {
                let s = s.trim();
                if s.is_empty() && !p.required {
                    return Ok(0);
                }
                s.parse::<i32>().map_err(|_| bad())
            }
            Some(_) => Err(bad()),
        }
    }

    pub fn string(&self, op: &Operation, name: &str) -> Result<Option<String>> {
        self.string_of(Self::param(op, name)?)
    }

    fn string_of(&self, p: &Param) -> Result<Option<String>> {
        Ok(self.str_of(p)?.map(str::to_string))
    }

    /// A string, borrowed from the arguments: `None` when absent or null.
    pub fn str(&self, op: &Operation, name: &str) -> Result<Option<&str>> {
        self.str_of(Self::param(op, name)?)
    }

    fn str_of(&self, p: &Param) -> Result<Option<&str>> {
        match self.present(p)? {
            None => Ok(None),
            Some(Raw::Json(Value::String(s))) | Some(Raw::Text(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(Error::invalid(p.name, "must be a string")),
        }
    }

    pub fn domain(&self, op: &Operation, name: &str) -> Result<Domain> {
        let p = Self::param(op, name)?;
        let text = match self.present(p)? {
            None => return Ok(Domain::Unknown),
            Some(Raw::Json(Value::Number(n))) => n.to_string(),
            Some(Raw::Json(Value::String(s))) | Some(Raw::Text(s)) => s.clone(),
            Some(_) => return Err(Error::invalid(p.name, "must be a TemporaryKeyDomain name or number")),
        };
        Domain::parse(&text).ok_or_else(|| Error::invalid(p.name, format!("unknown TemporaryKeyDomain {text:?}")))
    }

    /// A date-time: with an offset or `Z` it is exact; without one it is wall-clock time in `local`.
    pub fn datetime(&self, op: &Operation, name: &str, local: Tz) -> Result<DateTime<Utc>> {
        let p = Self::param(op, name)?;
        let text = match self.present(p)? {
            None => return Err(Error::invalid(p.name, "is required")),
            Some(Raw::Json(Value::String(s))) | Some(Raw::Text(s)) => s.trim().to_string(),
            Some(_) => return Err(Error::invalid(p.name, "must be a date and time string")),
        };
        parse_datetime(&text, local).ok_or_else(|| Error::invalid(p.name, "is not a valid date and time"))
    }
}

/// A JSON request body read straight into [`Args`], without building a `serde_json::Map`
/// first: `None` when the body is JSON but not an object. The members come out as
/// [`Args::from_json`] gives them from the map: sorted by name, and of equal names the last.
#[derive(Debug)]
pub struct JsonBody(pub Option<Args>);

impl<'de> Deserialize<'de> for JsonBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(JsonBodyVisitor)
    }
}

struct JsonBodyVisitor;

impl<'de> Visitor<'de> for JsonBodyVisitor {
    type Value = JsonBody;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<JsonBody, A::Error> {
        let mut members: Vec<(String, Raw)> = Vec::with_capacity(map.size_hint().unwrap_or(0).min(16));
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            members.push((k, raw_of(v)));
        }
        // As a BTreeMap keeps them: sorted (stably, so equal names stay in the order sent) ...
        members.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(String, Raw)> = Vec::with_capacity(members.len());
        for (k, v) in members {
            match out.last_mut() {
                // ... and the last of equal names replaces the earlier.
                Some(last) if last.0 == k => last.1 = v,
                _ => out.push((k, v)),
            }
        }
        Ok(JsonBody(Some(Args(out))))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<JsonBody, A::Error> {
        // Read as values, not skipped: serde_json's nesting limit holds as it did for a `Value`.
        while seq.next_element::<Value>()?.is_some() {}
        Ok(JsonBody(None))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> std::result::Result<JsonBody, E> {
        Ok(JsonBody(None))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> std::result::Result<JsonBody, E> {
        Ok(JsonBody(None))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> std::result::Result<JsonBody, E> {
        Ok(JsonBody(None))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> std::result::Result<JsonBody, E> {
        Ok(JsonBody(None))
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> std::result::Result<JsonBody, E> {
        Ok(JsonBody(None))
    }

    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<JsonBody, E> {
        Ok(JsonBody(None))
    }
}

/// The refusal of a JSON request body that is not an object.
pub fn not_an_object() -> Error {
    Error::invalid("request", "the body must be a JSON object")
}

/// A JSON member's value as an argument: `null` is [`Raw::Null`].
fn raw_of(v: Value) -> Raw {
    if v.is_null() { Raw::Null } else { Raw::Json(v) }
}

fn field_param(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        required: false,
        query: false,
    }
}

/// An error about a carrier's field names the carrier too (`ForeignKey.Value`).
fn nest(e: Error, carrier: &str) -> Error {
    match e {
        Error::Invalid { field, message } => Error::Invalid {
            field: format!("{carrier}.{field}"),
            message,
        },
        other => other,
    }
}

/// ISO 8601 / xsd:dateTime with any number of fractional digits (.NET writes 7).
pub fn parse_datetime(s: &str, local: Tz) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default()))
        .ok()?;
    match local.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        // In a daylight-saving overlap take the earlier instant.
        LocalResult::Ambiguous(a, _) => Some(a.with_timezone(&Utc)),
        // A wall-clock time skipped by daylight saving does not exist.
        LocalResult::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_dates_parse() {
        let d = parse_datetime("2005-09-18T11:10:27.4874598+02:00", Tz::UTC).unwrap();
        assert_eq!(d.to_rfc3339(), "2005-09-18T09:10:27.487459800+00:00");
        assert_eq!(
            parse_datetime("2021-11-30T13:22:59Z", Tz::UTC).unwrap().to_rfc3339(),
            "2021-11-30T13:22:59+00:00"
        );
        let oslo = parse_datetime("2021-11-30T13:22:59", chrono_tz::Europe::Oslo).unwrap();
        assert_eq!(oslo.to_rfc3339(), "2021-11-30T12:22:59+00:00");
        assert!(
            parse_datetime("2021-03-28T02:30:00", chrono_tz::Europe::Oslo).is_none(),
            "skipped by DST"
        );
        assert!(parse_datetime("yesterday", Tz::UTC).is_none());
        assert!(parse_datetime("2021-02-30T00:00:00Z", Tz::UTC).is_none());
    }

    const NAMES: [&str; 8] = [
        "TemporaryKey",
        "temporarykey",
        "TEMPORARYKEY",
        "Domain",
        "a",
        "",
        "é",
        "b\"q",
    ];
    const VALUES: [&str; 9] = [
        "null",
        "1",
        "-5",
        "1.5",
        "true",
        "\"x\"",
        "\"TemporaryKey\"",
        "[1,{\"a\":[2,null]}]",
        "{\"Value\":\"v\",\"Name\":null}",
    ];

    /// The body as the map reads it (`Args::from_json` of a `Value`), or its error's text.
    fn through_the_map(text: &str) -> std::result::Result<Args, String> {
        crate::api::extract::parse_json::<Value>(text.as_bytes())
            .and_then(Args::from_json)
            .map_err(|e| e.to_string())
    }

    fn straight(text: &str) -> std::result::Result<Option<Args>, String> {
        crate::api::extract::parse_json::<JsonBody>(text.as_bytes())
            .map(|b| b.0)
            .map_err(|e| e.to_string())
    }

    proptest::proptest! {
        /// Any members, with repeated names and names that differ only in case: the same
        /// arguments in the same order as through the map.
        #[test]
        fn a_json_body_reads_as_through_the_map(
            members in proptest::collection::vec((0..NAMES.len(), 0..VALUES.len()), 0..8),
        ) {
            let text = format!(
                "{{{}}}",
                members
                    .iter()
                    .map(|(k, v)| format!("{}:{}", Value::from(NAMES[*k]), VALUES[*v]))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            proptest::prop_assert_eq!(straight(&text), through_the_map(&text).map(Some), "{}", text);
        }
    }

    #[test]
    fn a_json_body_that_is_no_object_or_no_json_is_told_as_before() {
        for text in [
            "[]",
            "[1,[2,{\"a\":3}]]",
            "1",
            "-1",
            "1.5",
            "18446744073709551615",
            "\"s\"",
            "true",
            "null",
        ] {
            assert_eq!(straight(text), Ok(None), "{text}");
            assert!(through_the_map(text).is_err(), "{text}");
        }
        for text in ["{", "{\"a\":}", "[", "{}x", "{\"a\":1,}", "{'a':1}", "{\"a\":1}}"] {
            let before = through_the_map(text).expect_err(text);
            assert_eq!(straight(text), Err(before), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for text in [deep.clone(), format!("{{\"a\":{deep}}}")] {
            let before = through_the_map(&text).expect_err("past serde_json's nesting limit");
            assert_eq!(straight(&text), Err(before), "nesting past serde_json's limit");
        }
    }
}
