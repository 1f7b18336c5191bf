//! Answers in JSON or XML (by Accept), `$select`, and the agent's error shapes.

use super::ops::{self, Operation, Returns, Ty};
use super::{Answer, Lang, carrier, info_json, info_xml_members};
use crate::api::xml::esc;
use crate::error::Error;
use crate::service::temporary::{Domain, TemporaryKeyInfo};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub const SERIALIZATION_NS: &str = "http://schemas.microsoft.com/2003/10/Serialization/";
pub const DATACONTRACT_NS: &str = "http://schemas.datacontract.org/2004/07/SuperOffice.CRM.Services";
pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// The response media type, echoing the flavour the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json(&'static str),
    Xml(&'static str),
}

impl Format {
    /// The first acceptable type in Accept order (ignoring q=0); JSON when nothing matches.
    pub fn from_accept(h: &HeaderMap) -> Format {
        /// The media types answered, each with its Content-Type.
        const TYPES: [(&str, Format); 8] = [
            ("application/json", Format::Json("application/json")),
            ("text/json", Format::Json("text/json")),
            (
                "application/json-patch+json",
                Format::Json("application/json-patch+json"),
            ),
            (
                "application/merge-patch+json",
                Format::Json("application/merge-patch+json"),
            ),
            ("application/xml", Format::Xml("application/xml")),
            ("text/xml", Format::Xml("text/xml")),
            ("*/*", Format::Json("application/json")),
            ("application/*", Format::Json("application/json")),
        ];
        let accept = h.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
        for part in accept.split(',') {
            let mut it = part.split(';');
            let mime = it.next().unwrap_or("").trim();
            if it.any(is_q_zero) {
                continue;
            }
            if let Some((_, f)) = TYPES.iter().find(|(name, _)| name.eq_ignore_ascii_case(mime)) {
                return *f;
            }
        }
        Format::Json("application/json")
    }

    fn content_type(self) -> HeaderValue {
        let m = match self {
            Format::Json(m) | Format::Xml(m) => m,
        };
        // The types `from_accept` picks, without formatting one per answer.
        let known = match m {
            "application/json" => "application/json; charset=utf-8",
            "text/json" => "text/json; charset=utf-8",
            "application/json-patch+json" => "application/json-patch+json; charset=utf-8",
            "application/merge-patch+json" => "application/merge-patch+json; charset=utf-8",
            "application/xml" => "application/xml; charset=utf-8",
            "text/xml" => "text/xml; charset=utf-8",
            _ => {
                return HeaderValue::from_str(&format!("{m}; charset=utf-8"))
                    .unwrap_or(HeaderValue::from_static("application/json"));
            }
        };
        HeaderValue::from_static(known)
    }
}

/// An Accept parameter that refuses the type: `q=0` (to three decimals), spaces anywhere.
fn is_q_zero(param: &str) -> bool {
    let mut compact = [0u8; 8];
    let mut n = 0;
    for b in param.trim().bytes().filter(|b| *b != b' ') {
        if n == compact.len() {
            return false;
        }
        compact[n] = b;
        n += 1;
    }
    matches!(&compact[..n], b"q=0" | b"q=0.0" | b"q=0.00" | b"q=0.000")
}

/// `$select=a,b,c/d`: the listed properties (case-insensitive, `/` for nesting) stay; the
/// others are nulled out.
pub fn apply_select(v: &mut Value, select: &str) {
    let paths: Vec<Vec<String>> = select
        .split(',')
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| p.split('/').map(|s| s.trim().to_ascii_lowercase()).collect())
        .collect();
    if !paths.is_empty() {
        keep(v, &paths);
    }
}

fn keep(v: &mut Value, paths: &[Vec<String>]) {
    let Value::Object(map) = v else { return };
    for (k, val) in map.iter_mut() {
        let key = k.to_ascii_lowercase();
        let matching: Vec<&Vec<String>> = paths.iter().filter(|p| p.first() == Some(&key)).collect();
        if matching.is_empty() {
            *val = Value::Null;
        } else if matching.iter().any(|p| p.len() == 1) {
            // The whole property is selected.
        } else {
            let rest: Vec<Vec<String>> = matching.iter().map(|p| p[1..].to_vec()).collect();
            keep(val, &rest);
        }
    }
}

/// A JSON value as DataContract XML children (object members in order; null as `i:nil`).
fn xml_members(out: &mut String, v: &Value) {
    if let Value::Object(m) = v {
        for (k, val) in m {
            match val {
                Value::Null => out.push_str(&format!("<{k} i:nil=\"true\"/>")),
                Value::Object(_) => {
                    out.push_str(&format!("<{k}>"));
                    xml_members(out, val);
                    out.push_str(&format!("</{k}>"));
                }
                Value::String(s) => out.push_str(&format!("<{k}>{}</{k}>", esc(s))),
                other => out.push_str(&format!("<{k}>{other}</{k}>")),
            }
        }
    }
}

/// A DataContract document: `<Root xmlns=... xmlns:i=...>members</Root>`.
pub fn xml_object(root: &str, v: &Value) -> String {
    let mut s = format!("<{root} xmlns=\"{DATACONTRACT_NS}\" xmlns:i=\"{XSI}\">");
    xml_members(&mut s, v);
    s.push_str(&format!("</{root}>"));
    s
}

fn body(status: StatusCode, format: Format, text: String) -> Response {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, format.content_type());
    r
}

pub const ARRAYS_NS: &str = "http://schemas.microsoft.com/2003/10/Serialization/Arrays";

/// Render an operation's answer.
pub fn answer(op: &Operation, a: Answer, format: Format, select: Option<&str>) -> Response {
    match a {
        Answer::Void => StatusCode::NO_CONTENT.into_response(),
        Answer::Null => match format {
            Format::Json(_) => body(StatusCode::OK, format, "null".into()),
            Format::Xml(_) => {
                let root = match op.returns {
                    Returns::Carrier(c) => c.name,
                    _ => "string",
                };
                let ns = if root == "string" {
                    SERIALIZATION_NS
                } else {
                    DATACONTRACT_NS
                };
                body(
                    StatusCode::OK,
                    format,
                    format!("<{root} i:nil=\"true\" xmlns=\"{ns}\" xmlns:i=\"{XSI}\"/>"),
                )
            }
        },
        Answer::Carrier(def, mut v) => {
            if let Some(sel) = select {
                apply_select(&mut v, sel);
            }
            let mut out = String::new();
            match format {
                Format::Json(_) => carrier::json(def, &v, &mut out),
                Format::Xml(_) => {
                    out.push_str(&format!("<{} xmlns=\"{DATACONTRACT_NS}\" xmlns:i=\"{XSI}\">", def.name));
                    carrier::xml_members(def, &v, &mut out);
                    out.push_str(&format!("</{}>", def.name));
                }
            }
            body(StatusCode::OK, format, out)
        }
        Answer::List(def, mut items) => {
            let mut out = String::new();
            if let Some(sel) = select {
                items.iter_mut().for_each(|v| apply_select(v, sel));
            }
            match format {
                Format::Json(_) => {
                    out.push('[');
                    for (i, v) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        carrier::json(def, v, &mut out);
                    }
                    out.push(']');
                }
                Format::Xml(_) => {
                    out.push_str(&format!(
                        "<ArrayOf{} xmlns=\"{DATACONTRACT_NS}\" xmlns:i=\"{XSI}\">",
                        def.name
                    ));
                    for v in &items {
                        out.push_str(&format!("<{}>", def.name));
                        carrier::xml_members(def, v, &mut out);
                        out.push_str(&format!("</{}>", def.name));
                    }
                    out.push_str(&format!("</ArrayOf{}>", def.name));
                }
            }
            body(StatusCode::OK, format, out)
        }
        Answer::Dict(pairs) => match format {
            Format::Json(_) => {
                let mut m = serde_json::Map::new();
                for (k, v) in pairs {
                    m.insert(k, Value::String(v));
                }
                body(StatusCode::OK, format, Value::Object(m).to_string())
            }
            Format::Xml(_) => {
                let mut out = format!("<ArrayOfKeyValueOfstringstring xmlns=\"{ARRAYS_NS}\" xmlns:i=\"{XSI}\">");
                for (k, v) in &pairs {
                    out.push_str(&format!(
                        "<KeyValueOfstringstring><Key>{}</Key><Value>{}</Value></KeyValueOfstringstring>",
                        esc(k),
                        esc(v)
                    ));
                }
                out.push_str("</ArrayOfKeyValueOfstringstring>");
                body(StatusCode::OK, format, out)
            }
        },
        Answer::Str(s) => match format {
            Format::Json(_) => body(StatusCode::OK, format, Value::String(s).to_string()),
            Format::Xml(_) => body(
                StatusCode::OK,
                format,
                format!("<string xmlns=\"{SERIALIZATION_NS}\">{}</string>", esc(&s)),
            ),
        },
        Answer::Info(info) if select.is_none() && matches!(format, Format::Json(_)) => {
            body(StatusCode::OK, format, info_json_text(&info))
        }
        Answer::Info(info) => {
            let mut v = info_json(&info);
            if let Some(sel) = select {
                apply_select(&mut v, sel);
            }
            match format {
                Format::Json(_) => body(StatusCode::OK, format, v.to_string()),
                Format::Xml(_) => {
                    let mut out = format!("<TemporaryKeyInfo xmlns=\"{DATACONTRACT_NS}\" xmlns:i=\"{XSI}\">");
                    info_xml_members(&v, ops::LATEST, &mut out);
                    out.push_str("</TemporaryKeyInfo>");
                    body(StatusCode::OK, format, out)
                }
            }
        }
    }
}

/// `info_json(i).to_string()` without building the map: the same bytes (members in
/// alphabetical order, as serde_json's map keeps them).
fn info_json_text(i: &TemporaryKeyInfo) -> String {
    let payload = i.payload.as_deref().and_then(|p| serde_json::to_string(p).ok());
    let payload = payload.as_deref().unwrap_or("null");
    let mut ints = itoa::Buffer::new();
    let mut out = String::with_capacity(160 + payload.len());
    // Domain names are plain ASCII words: nothing to escape.
    out.push_str("{\"Domain\":\"");
    out.push_str(i.domain.name());
    out.push_str("\",\"FieldProperties\":{},\"IsExpired\":");
    out.push_str(if i.is_expired { "true" } else { "false" });
    out.push_str(",\"Payload\":");
    out.push_str(payload);
    out.push_str(",\"PersonId\":");
    out.push_str(ints.format(i.person_id));
    out.push_str(",\"TableRight\":null,\"TargetId\":");
    out.push_str(ints.format(i.target_id));
    out.push('}');
    out
}

/// A parameter's type as the description names it (.NET's names).
fn type_name(t: Ty) -> String {
    match t {
        Ty::Int => "Int32".into(),
        Ty::String => "String".into(),
        Ty::DateTime => "DateTime".into(),
        Ty::Domain => "TemporaryKeyDomain".into(),
        Ty::Carrier(c) => c.name.into(),
    }
}

/// What an operation answers, as the description names it, and its HTTP status.
fn returns_name(r: Returns) -> (String, u16) {
    match r {
        Returns::String => ("String".into(), 200),
        Returns::TemporaryKeyInfo => ("TemporaryKeyInfo".into(), 200),
        Returns::Void => ("Void".into(), 204),
        Returns::Authenticate => ("AuthenticateResponse".into(), 200),
        Returns::Carrier(c) => (c.name.into(), 200),
        Returns::List(c) => (format!("{}[]", c.name), 200),
        Returns::StringDictionary => ("StringDictionary".into(), 200),
    }
}

/// `GET` on an agent method: the call's description (its name, parameters with their types,
/// what it returns, and the operation table's text), in JSON or DataContract XML.
pub fn description(op: &Operation, format: Format) -> Response {
    let (returns, status) = returns_name(op.returns);
    let params: Vec<Value> = op
        .params
        .iter()
        .map(|p| {
            let mut v = serde_json::json!({
                "Name": p.name,
                "Type": type_name(p.ty),
                "Required": p.required,
                "In": if p.query { "query" } else { "body" },
            });
            if p.ty == Ty::Domain {
                v["Values"] = Domain::ALL.iter().map(|d| Value::from(d.name())).collect();
            }
            v
        })
        .collect();
    let v = serde_json::json!({
        "Agent": op.agent.name(),
        "Method": op.name,
        "Description": op.doc,
        "HttpMethod": "POST",
        "Url": format!("/api/v1/Agents/{}/{}", op.agent.name(), op.name),
        "Parameters": params,
        "Returns": returns,
        "Status": status,
    });
    match format {
        Format::Json(_) => body(StatusCode::OK, format, v.to_string()),
        Format::Xml(_) => {
            let mut out = format!("<AgentMethodDescription xmlns=\"{DATACONTRACT_NS}\" xmlns:i=\"{XSI}\">");
            description_xml(&mut out, &v);
            out.push_str("</AgentMethodDescription>");
            body(StatusCode::OK, format, out)
        }
    }
}

/// The description's members as XML: arrays hold one element per item, named in the singular
/// (`Parameters/Parameter`, `Values/Value`).
fn description_xml(out: &mut String, v: &Value) {
    let Value::Object(m) = v else { return };
    for (k, val) in m {
        match val {
            Value::Array(items) => {
                let item = k.strip_suffix('s').unwrap_or(k);
                out.push_str(&format!("<{k}>"));
                for i in items {
                    out.push_str(&format!("<{item}>"));
                    match i {
                        Value::Object(_) => description_xml(out, i),
                        Value::String(t) => out.push_str(&esc(t)),
                        other => out.push_str(&other.to_string()),
                    }
                    out.push_str(&format!("</{item}>"));
                }
                out.push_str(&format!("</{k}>"));
            }
            Value::String(t) => out.push_str(&format!("<{k}>{}</{k}>", esc(t))),
            Value::Null => out.push_str(&format!("<{k} i:nil=\"true\"/>")),
            other => out.push_str(&format!("<{k}>{other}</{k}>")),
        }
    }
}

/// The agent's errors: invalid requests as `{"Message": "The request is invalid.", "MessageDetail"}`,
/// everything else as `{"Error": true, "ErrorType", "ErrorMessage", "ErrorSource"}`.
pub fn error(e: Error, format: Format, lang: Lang, source: &str) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let v = match &e {
        Error::Invalid { field, message } => serde_json::json!({
            "Message": lang.tr("The request is invalid."),
            "MessageDetail": lang.tr(&format!("{field}: {message}")),
        }),
        other => {
            let (kind, message) = match other {
                Error::Unauthenticated => ("UnauthorizedAccessException", "Authentication required".to_string()),
                Error::Forbidden(m) => ("SoAccessDeniedException", m.clone()),
                Error::NotFound(what) => ("SoNotFoundException", format!("{what} not found")),
                Error::Conflict(m) => ("SoConflictException", m.clone()),
                Error::RateLimited { .. } => ("SoTooManyRequestsException", other.to_string()),
                Error::Busy { .. } => ("SoServerBusyException", other.to_string()),
                Error::PayloadTooLarge => ("SoRequestTooLargeException", "request body too large".to_string()),
                Error::UnsupportedMediaType(m) => (
                    "SoUnsupportedMediaTypeException",
                    format!("unsupported media type: {m}"),
                ),
                Error::Unavailable(d) => {
                    tracing::warn!(detail = d.as_str(), "database unavailable");
                    (
                        "SoDatabaseUnavailableException",
                        "the database is unavailable; try again shortly".to_string(),
                    )
                }
                Error::Internal(d) => {
                    tracing::error!(detail = d.as_str(), "internal error");
                    ("SoException", "Internal error".to_string())
                }
                Error::Invalid { .. } => ("SoException", String::new()),
            };
            serde_json::json!({"Error": true, "ErrorType": kind, "ErrorMessage": lang.tr(&message), "ErrorSource": source})
        }
    };
    let mut r = match format {
        Format::Json(_) => body(status, format, v.to_string()),
        Format::Xml(_) => body(status, format, xml_object("Error", &v)),
    };
    let h = r.headers_mut();
    match e {
        Error::Unauthenticated => {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"SuperOffice Username or Ticket\""),
            );
        }
        Error::RateLimited { retry_after_secs } | Error::Busy { retry_after_secs } => {
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                h.insert(header::RETRY_AFTER, v);
            }
        }
        _ => {}
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn select_nulls_out_unlisted_properties() {
        let mut v =
            json!({"Domain": "PublicFaq", "TargetId": 1, "TableRight": {"Mask": "R", "Reason": "x"}, "Payload": "p"});
        apply_select(&mut v, "domain, tableright/mask");
        assert_eq!(
            v,
            json!({"Domain": "PublicFaq", "TargetId": null, "TableRight": {"Mask": "R", "Reason": null}, "Payload": null})
        );
        let mut w = json!({"A": 1});
        apply_select(&mut w, "");
        assert_eq!(w, json!({"A": 1}));
    }

    #[test]
    fn accept_negotiation() {
        let mut h = HeaderMap::new();
        assert_eq!(Format::from_accept(&h), Format::Json("application/json"));
        h.insert(header::ACCEPT, HeaderValue::from_static("text/html, text/xml;q=0.9"));
        assert_eq!(Format::from_accept(&h), Format::Xml("text/xml"));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/xml;q=0, text/json"),
        );
        assert_eq!(Format::from_accept(&h), Format::Json("text/json"));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert_eq!(Format::from_accept(&h), Format::Json("application/json"));
    }

    /// The direct TemporaryKeyInfo JSON is byte for byte the map's: every domain, both expiry
    /// states, extreme ids, and payloads that need escaping.
    #[test]
    fn info_json_text_matches_the_map() {
        let payloads = [
            None,
            Some(String::new()),
            Some("plain".to_string()),
            Some("quote \" backslash \\ slash / tab \t nl \n cr \r nul \u{0} del \u{7f}".to_string()),
            Some("æøå ✓ 😀 \u{2028}\u{2029}".to_string()),
        ];
        for domain in Domain::ALL {
            for (target_id, person_id) in [(0, 0), (98, 798), (i32::MAX, i32::MIN), (-1, 7)] {
                for is_expired in [false, true] {
                    for payload in &payloads {
                        let i = TemporaryKeyInfo {
                            domain,
                            target_id,
                            person_id,
                            is_expired,
                            payload: payload.clone(),
                        };
                        assert_eq!(info_json_text(&i), crate::api::superoffice::info_json(&i).to_string());
                    }
                }
            }
        }
    }

    #[test]
    fn accept_refusals_and_case() {
        let mut h = HeaderMap::new();
        for (accept, want) in [
            ("application/xml; q = 0 . 0 0 0, text/json", Format::Json("text/json")),
            ("application/xml;q=0.0001", Format::Xml("application/xml")),
            ("application/xml;q=0.5;q=0", Format::Json("application/json")),
            ("TEXT/XML", Format::Xml("text/xml")),
            ("Application/*", Format::Json("application/json")),
            ("image/png, */*;q=0.1", Format::Json("application/json")),
            ("text/xml;\tq=0\t", Format::Json("application/json")),
        ] {
            h.insert(header::ACCEPT, HeaderValue::from_static(accept));
            assert_eq!(Format::from_accept(&h), want, "{accept}");
        }
        for f in [
            Format::Json("application/json"),
            Format::Json("text/json"),
            Format::Json("application/json-patch+json"),
            Format::Json("application/merge-patch+json"),
            Format::Xml("application/xml"),
            Format::Xml("text/xml"),
            Format::Xml("application/soap+xml"),
        ] {
            let m = match f {
                Format::Json(m) | Format::Xml(m) => m,
            };
            assert_eq!(f.content_type(), format!("{m}; charset=utf-8"));
        }
    }

    #[test]
    fn xml_escapes_and_nils() {
        let x = xml_object("T", &json!({"A": "<&>", "B": null, "C": true}));
        assert_eq!(
            x,
            format!(
                "<T xmlns=\"{DATACONTRACT_NS}\" xmlns:i=\"{XSI}\"><A>&lt;&amp;&gt;</A><B i:nil=\"true\"/><C>true</C></T>"
            )
        );
    }
}
