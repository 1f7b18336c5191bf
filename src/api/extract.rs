//! Request parsing shared by the surfaces: JSON bodies and query strings whose errors name
//! the offending field, and the caller's address.

use crate::core::net::{self, Cidr};
use crate::error::Error;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};

use super::{ApiError, AppState};

/// Read a whole body, answering 413 past the limit.
pub async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, Error> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = src {
            if s.is::<http_body_util::LengthLimitError>() {
                return Error::PayloadTooLarge;
            }
            src = s.source();
        }
        Error::invalid("body", "could not read the request body")
    })
}

/// Is this a JSON media type (`application/json`, `text/json`, `*+json`)?
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = ct.split(';').next().unwrap_or("").trim();
    let (kind, subtype) = mime.split_once('/').unwrap_or((mime, ""));
    let subtype_is_json = subtype.eq_ignore_ascii_case("json");
    (kind.eq_ignore_ascii_case("application")
        && (subtype_is_json
            || (subtype.len() >= 5
                && subtype.is_char_boundary(subtype.len() - 5)
                && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))))
        || (kind.eq_ignore_ascii_case("text") && subtype_is_json)
}

/// Turn a serde error into a 400 that names the field.
fn field_error<E: std::fmt::Display>(path: String, inner: E) -> Error {
    let msg = inner.to_string();
    // "missing field `x`" / "unknown field `x`, expected ..." are reported at the parent path.
    let named = ["missing field `", "unknown field `"].iter().find_map(|lead| {
        msg.strip_prefix(lead)
            .and_then(|r| r.split('`').next())
            .map(str::to_string)
    });
    let msg = match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    };
    let field = match (named, path.as_str()) {
        (Some(n), "." | "") => n,
        // serde_path_to_error already put an unknown field's name at the end of the path.
        (Some(n), p) if p == n || p.ends_with(&format!(".{n}")) => p.to_string(),
        (Some(n), p) => format!("{p}.{n}"),
        (None, "." | "") => "body".to_string(),
        (None, p) => p.to_string(),
    };
    Error::invalid(field, msg)
}

/// Parse JSON, naming the offending field on error. The body is parsed once without keeping
/// track of the path; only a body that fails is parsed again to name the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(_) => parse_json_tracked(bytes),
    }
}

/// [`parse_json`]'s slow path: the error names the field.
fn parse_json_tracked<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            Error::invalid("body", format!("malformed JSON: {inner}"))
        } else {
            field_error(path, inner)
        }
    })?;
    de.end()
        .map_err(|e| Error::invalid("body", format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// Parse a query string, naming the offending parameter on error.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, Error> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        field_error(path, e.into_inner())
    })
}

fn form_urlencoded_parse(q: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(q.as_bytes())
}

/// A JSON body (native API): 415 for other media types, 413 past the limit, 400 naming
/// the field for anything malformed.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(Error::UnsupportedMediaType("expected Content-Type: application/json".into()).into());
        }
        let bytes = read_body(req.into_body(), state.settings.body_limit_bytes).await?;
        Ok(ApiJson(parse_json(&bytes)?))
    }
}

/// Like [`ApiJson`], but an empty body, or a JSON `null`, means `T::default()`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let json = is_json(req.headers());
        let bytes = read_body(req.into_body(), state.settings.body_limit_bytes).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !json {
            return Err(Error::UnsupportedMediaType("expected Content-Type: application/json".into()).into());
        }
        Ok(OptionalJson(parse_json::<Option<T>>(&bytes)?.unwrap_or_default()))
    }
}

/// Query parameters with errors that name the parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiQuery(parse_query(parts.uri.query().unwrap_or(""))?))
    }
}

/// The request's client address, by the one rule (`core::net::client_address`): the peer, or,
/// when the peer is a trusted proxy, the last untrusted hop of `Forwarded` / `X-Forwarded-For`.
pub fn client_ip(parts: &Parts, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
    if !net::in_any(trusted, peer) {
        return Some(peer);
    }
    let values = |name: &str| -> Vec<&str> {
        parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    };
    let chain = net::forwarded_chain(&values("forwarded"), &values("x-forwarded-for"));
    Some(net::client_address(peer, chain.as_deref(), trusted))
}

/// The client address as every per-address limit counts it (IPv6 by its /64).
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_key(parts, &st.net.trusted_proxies)))
    }
}

/// [`ClientAddr`]'s key, for a caller that wants it only sometimes (it costs a formatted string).
pub fn client_key(parts: &Parts, trusted: &[Cidr]) -> String {
    client_ip(parts, trusted)
        .map(net::address_key)
        .unwrap_or_else(|| "unknown".into())
}

/// Parse a UUID path segment, naming it on error.
pub fn parse_uuid(field: &str, s: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::parse_str(s).map_err(|_| Error::invalid(field, "must be a UUID"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        name: String,
        n: Option<i64>,
        inner: Option<Inner>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        x: u8,
    }

    fn field_of(json: &str) -> String {
        match parse_json::<T>(json.as_bytes()) {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(r#"{"n": 1}"#), "name");
        assert_eq!(field_of(r#"{"name": 5}"#), "name");
        assert_eq!(field_of(r#"{"name": "a", "n": "x"}"#), "n");
        assert_eq!(field_of(r#"{"name": "a", "bogus": 1}"#), "bogus");
        assert_eq!(field_of(r#"{"name": "a", "inner": {"x": 300}}"#), "inner.x");
        assert_eq!(field_of(r#"{"name": "a", "inner": {}}"#), "inner.x");
        assert_eq!(field_of(r#"{"name": "a""#), "body");
        assert_eq!(field_of(r#"{"name": "a"} trailing"#), "body");
        assert_eq!(field_of(r#""#), "body");
    }
}
