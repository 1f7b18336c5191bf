//! Tedee-compatible personal access keys under `/api/{apiVersion}/my/personalaccesskey`.
//! Every answer, errors included, is Tedee's envelope
//! `{"result", "success", "errorMessages", "statusCode"}` (a 204 has no body), and carries
//! `X-Correlation-ID` and `API-Supported-Versions` (see [`wire`]).

use super::AppState;
use super::auth::authenticate_parts;
use super::extract::{is_json, parse_json, read_body};
use super::json_out::{self, Out};
use crate::core::credential::Credential;
use crate::error::Error;
use crate::service::Principal;
use crate::service::personal::PersonalKeyRequest;
use axum::Json;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::Instrument;
use uuid::Uuid;

/// The answer header naming the request: a fresh UUID per request, also in the request's log line.
pub const CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
/// The answer header listing the versions served under `/api/v{N}`.
pub const SUPPORTED_VERSIONS_HEADER: HeaderName = HeaderName::from_static("api-supported-versions");
/// The highest `N` served under `/api/v{N}`; the lowest is 1. Every version behaves alike.
pub const MAX_VERSION: u32 = 999;
/// `API-Supported-Versions`: the range `1-999` (Tedee lists its versions, e.g. `37`).
pub const SUPPORTED_VERSIONS: &str = "1-999";

/// A surface error in Tedee's envelope.
#[derive(Debug)]
pub struct TedeeError(pub Error);

impl From<Error> for TedeeError {
    fn from(e: Error) -> Self {
        TedeeError(e)
    }
}

impl IntoResponse for TedeeError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match &e {
            Error::Invalid { field, message } => format!("{field}: {message}"),
            Error::Internal(detail) => {
                tracing::error!(detail, "internal error");
                "Internal server error".to_string()
            }
            Error::Unauthenticated => "Unauthorized: provide a valid access token or personal access key".to_string(),
            Error::NotFound(what) => format!("The {what} was not found"),
            other => other.to_string(),
        };
        let mut resp = error_envelope(status, message);
        let h = resp.headers_mut();
        match e {
            Error::Unauthenticated => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer, PersonalKey"),
                );
            }
            Error::RateLimited { retry_after_secs } | Error::Busy { retry_after_secs } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    h.insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        resp
    }
}

type TedeeResult<T> = Result<T, TedeeError>;

/// A refusal in Tedee's envelope.
fn error_envelope(status: StatusCode, message: String) -> Response {
    let body = json!({"success": false, "errorMessages": [message], "statusCode": status.as_u16()});
    (status, Json(body)).into_response()
}

/// The wire rules every Tedee route follows, applied as a layer to each `tedee` route of the
/// route table (src/server.rs), so a route added to the table gets them too:
/// - every answer carries `X-Correlation-ID` (a fresh UUID; a client's own `X-Correlation-ID`
///   is not echoed) and `API-Supported-Versions`; the id is on the request's log lines;
/// - a method the route does not take answers 405 in the envelope (the router adds `Allow`,
///   built from the same table);
/// - any other refusal that is not already JSON (e.g. a path that is not valid UTF-8) is put
///   into the envelope.
pub async fn wire(req: Request, next: Next) -> Response {
    // A random (version 4) id from the thread's generator: `Uuid::new_v4` asks the kernel for
    // each one, a system call per request (4.6% of the Tedee list's CPU).
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let method = req.method().clone();
    let span = tracing::info_span!("tedee", correlation_id = %id);
    let resp = next.run(req).instrument(span).await;
    let status = resp.status();
    let mut resp = if status == StatusCode::METHOD_NOT_ALLOWED {
        error_envelope(status, format!("The method {method} is not allowed for this resource"))
    } else if (status.is_client_error() || status.is_server_error()) && !is_json(resp.headers()) {
        let (parts, body) = resp.into_parts();
        let text = axum::body::to_bytes(body, 1024)
            .await
            .ok()
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty() && !status.is_server_error());
        let message = text.unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_string());
        let mut r = error_envelope(status, message);
        for name in [header::WWW_AUTHENTICATE, header::RETRY_AFTER, header::ALLOW] {
            if let Some(v) = parts.headers.get(&name) {
                r.headers_mut().insert(name, v.clone());
            }
        }
        r
    } else {
        resp
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        h.insert(CORRELATION_ID, v);
    }
    h.insert(SUPPORTED_VERSIONS_HEADER, HeaderValue::from_static(SUPPORTED_VERSIONS));
    resp
}

/// A success in Tedee's envelope, serialized straight from its result. The members are in the
/// order `json!` gave them (alphabetical), so the bytes are as before.
#[derive(Serialize)]
struct Envelope<T> {
    #[serde(rename = "errorMessages")]
    error_messages: &'static [&'static str],
    result: T,
    #[serde(rename = "statusCode")]
    status_code: u16,
    success: bool,
}

fn envelope<T: Serialize>(status: StatusCode, result: T) -> Response {
    let body = Envelope {
        error_messages: &[],
        result,
        status_code: status.as_u16(),
        success: true,
    };
    (status, Json(body)).into_response()
}

/// The caller, authenticated by any keygate scheme, refused in Tedee's envelope.
pub struct TedeeAuth(pub Principal);

impl FromRequestParts<AppState> for TedeeAuth {
    type Rejection = TedeeError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(TedeeAuth(authenticate_parts(state, parts).await?))
    }
}

/// `v1` to `v999` (`v37` is Tedee's current); anything else is not a route. The `v` is part
/// of the path, so its case does not matter; the number has no leading zero.
fn check_version(v: &str) -> TedeeResult<()> {
    let ok = v
        .strip_prefix(['v', 'V'])
        .filter(|n| !n.starts_with('0') && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| (1..=MAX_VERSION).contains(&n));
    if ok {
        Ok(())
    } else {
        Err(Error::NotFound("API version").into())
    }
}

#[derive(Debug, Deserialize)]
struct Body {
    name: Option<String>,
    #[serde(rename = "validTo")]
    valid_to: Option<String>,
    scopes: Option<Vec<String>>,
}

/// Tedee dates: ISO 8601 with an offset or `Z`; without one, UTC.
fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

async fn parse_request(state: &AppState, req: Request) -> TedeeResult<PersonalKeyRequest> {
    if !is_json(req.headers()) {
        return Err(Error::UnsupportedMediaType(
            "expected a JSON body (application/json or application/json-patch+json)".into(),
        )
        .into());
    }
    let bytes = read_body(req.into_body(), state.settings.body_limit_bytes).await?;
    let b: Body = parse_json(&bytes)?;
    let name = b.name.ok_or_else(|| Error::invalid("name", "is required"))?;
    let raw = b.valid_to.ok_or_else(|| Error::invalid("validTo", "is required"))?;
    let valid_to = parse_date(&raw).ok_or_else(|| Error::invalid("validTo", "must be an ISO 8601 date and time"))?;
    crate::service::check_time("validTo", Some(valid_to))?;
    let scopes = b.scopes.ok_or_else(|| Error::invalid("scopes", "is required"))?;
    Ok(PersonalKeyRequest { name, valid_to, scopes })
}

fn parse_id(id: &str) -> TedeeResult<Uuid> {
    // An id that is not a UUID names no key of the caller's.
    Uuid::parse_str(id).map_err(|_| Error::NotFound("personal access key").into())
}

/// POST /api/{apiVersion}/my/personalaccesskey
pub async fn create(
    State(st): State<AppState>,
    Path(version): Path<String>,
    TedeeAuth(p): TedeeAuth,
    req: Request,
) -> TedeeResult<Response> {
    check_version(&version)?;
    let body = parse_request(&st, req).await?;
    let (cred, secret) = st.svc.create_personal_key(&p, body).await?;
    Ok(envelope(StatusCode::CREATED, json!({"id": cred.id, "key": secret})))
}

/// GET /api/{apiVersion}/my/personalaccesskey
pub async fn list(
    State(st): State<AppState>,
    Path(version): Path<String>,
    TedeeAuth(p): TedeeAuth,
) -> TedeeResult<Response> {
    check_version(&version)?;
    let keys = st.svc.list_personal_keys(&p).await?;
    let capacity = LIST_ANSWER_BYTES + KEY_ITEM_BYTES * keys.len();
    Ok(json_out::answer(capacity, "the key list", |out| list_json(&keys, out))?)
}

/// Room for the list's envelope, and for one key of an ordinary name and scopes.
const LIST_ANSWER_BYTES: usize = 64;
const KEY_ITEM_BYTES: usize = 192;

/// The list's answer: Tedee's envelope around the keys (members in alphabetical order, as when
/// the list went through a `serde_json::Value`), written with [`json_out`] straight from the
/// credentials: the same bytes as `envelope(StatusCode::OK, items)` (the tests hold them equal),
/// without serde's escape scan of every member name and chrono's `fmt` (together 8% of the
/// list's instructions).
fn list_json(keys: &[Credential], out: &mut Out) -> serde_json::Result<()> {
    out.extend_from_slice(br#"{"errorMessages":[],"result":"#);
    json_out::list(keys.iter(), out, |c, out| {
        out.extend_from_slice(br#"{"id":"#);
        json_out::uuid(c.id, out)?;
        out.extend_from_slice(br#","name":"#);
        json_out::string(&c.name, out)?;
        out.extend_from_slice(br#","prefix":"#);
        json_out::string(&c.prefix, out)?;
        out.extend_from_slice(br#","scopes":"#);
        json_out::list(c.scopes.iter().map(String::as_str), out, json_out::string)?;
        out.extend_from_slice(br#","validTo":"#);
        json_out::opt(c.expires_at.as_ref(), out, json_out::time_millis)?;
        out.push(b'}');
        Ok(())
    })?;
    out.extend_from_slice(br#","statusCode":200,"success":true}"#);
    Ok(())
}

/// PUT /api/{apiVersion}/my/personalaccesskey/{id}
pub async fn update(
    State(st): State<AppState>,
    Path((version, id)): Path<(String, String)>,
    TedeeAuth(p): TedeeAuth,
    req: Request,
) -> TedeeResult<StatusCode> {
    check_version(&version)?;
    let id = parse_id(&id)?;
    let body = parse_request(&st, req).await?;
    st.svc.update_personal_key(&p, id, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// DELETE /api/{apiVersion}/my/personalaccesskey/{id}
pub async fn delete(
    State(st): State<AppState>,
    Path((version, id)): Path<(String, String)>,
    TedeeAuth(p): TedeeAuth,
) -> TedeeResult<StatusCode> {
    check_version(&version)?;
    let id = parse_id(&id)?;
    st.svc.delete_personal_key(&p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Anything else under `/api/{apiVersion}/my/...`.
pub async fn not_found() -> TedeeError {
    TedeeError(Error::NotFound("route"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SecondsFormat;

    #[test]
    fn dates_with_and_without_offsets() {
        let z = parse_date("2021-04-26T06:02:04.197Z").unwrap();
        assert_eq!(
            z.to_rfc3339_opts(SecondsFormat::Millis, true),
            "2021-04-26T06:02:04.197Z"
        );
        assert_eq!(parse_date("2021-04-26T08:02:04.197+02:00"), Some(z));
        assert_eq!(parse_date("2021-04-26T06:02:04.197"), Some(z));
        assert_eq!(parse_date("26/04/2021"), None);
    }

    /// One key of the list as the list answered it through serde (before [`list_json`]).
    #[derive(Serialize)]
    struct KeyItem {
        id: Uuid,
        name: String,
        prefix: String,
        scopes: Vec<String>,
        #[serde(rename = "validTo")]
        valid_to: Option<String>,
    }

    impl From<&Credential> for KeyItem {
        fn from(c: &Credential) -> Self {
            KeyItem {
                id: c.id,
                name: c.name.clone(),
                valid_to: c.expires_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
                scopes: c.scopes.clone(),
                prefix: c.prefix.clone(),
            }
        }
    }

    fn personal_key(
        id: u128,
        name: &str,
        prefix: &str,
        scopes: &[&str],
        expires_at: Option<DateTime<Utc>>,
    ) -> Credential {
        let at = DateTime::from_timestamp(1_764_000_000, 0).unwrap();
        Credential {
            id: Uuid::from_u128(id),
            owner_id: Some(Uuid::from_u128(id ^ 2)),
            name: name.into(),
            prefix: prefix.into(),
            hash: vec![7; 32],
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_at,
            created_by: "user:x".into(),
            updated_by: "user:x".into(),
            ..Credential::fixture(Uuid::from_u128(id ^ 1), crate::core::credential::Kind::Personal, at)
        }
    }

    /// The list's answer: what it was through a `Value`, what `envelope` sends for the items, and
    /// what `list_json` writes are the same bytes (and `json_out::ok` the same head).
    #[tokio::test]
    async fn the_list_answer_is_byte_for_byte_as_through_a_value() {
        let at = parse_date("2021-04-26T06:02:04.197Z");
        let keys = vec![
            personal_key(1, "laptop \"é\"", "pk_1", &["Account.Read", "Device.Read"], at),
            personal_key(2, "phone", "pk_2", &[], None),
        ];
        for keys in [vec![], keys] {
            let items: Vec<KeyItem> = keys.iter().map(KeyItem::from).collect();
            let old = serde_json::to_vec(&json!({
                "result": serde_json::to_value(&items).unwrap(),
                "success": true,
                "errorMessages": [],
                "statusCode": 200,
            }))
            .unwrap();
            let theirs = envelope(StatusCode::OK, items);
            let mut buf = vec![];
            list_json(&keys, &mut buf).unwrap();
            let ours = json_out::ok(buf);
            assert_eq!(ours.status(), theirs.status());
            assert_eq!(ours.headers(), theirs.headers());
            let theirs = axum::body::to_bytes(theirs.into_body(), usize::MAX).await.unwrap();
            let ours = axum::body::to_bytes(ours.into_body(), usize::MAX).await.unwrap();
            assert_eq!(String::from_utf8_lossy(&theirs), String::from_utf8_lossy(&old));
            assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&old));
        }
    }

    proptest::proptest! {
        /// The hand-written list is serde's envelope of the items, byte for byte, for any names,
        /// prefixes and scopes (quotes, backslashes, control characters, any Unicode) and any
        /// expiry in chrono's range (signed years included) or none.
        #[test]
        fn the_list_is_serde_jsons(
            keys in proptest::collection::vec((
                proptest::num::u128::ANY,
                "\\PC*|[\"\\\\\u{0}-\u{1f}\u{7f}a-z✓]{0,12}",
                ".{0,8}",
                proptest::collection::vec("[a-zA-Z.\"\\\\\n]{0,12}", 0..4),
                proptest::option::of((-8_334_601_228_800i64..8_210_266_876_799, 0u32..1_000_000_000)),
            ), 0..4),
        ) {
            let keys: Vec<Credential> = keys
                .iter()
                .map(|(id, name, prefix, scopes, expires)| {
                    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
                    let expires = expires.and_then(|(s, n)| DateTime::from_timestamp(s, n));
                    personal_key(*id, name, prefix, &scopes, expires)
                })
                .collect();
            let items: Vec<KeyItem> = keys.iter().map(KeyItem::from).collect();
            let theirs = serde_json::to_string(&Envelope {
                error_messages: &[],
                result: items,
                status_code: 200,
                success: true,
            })
            .unwrap();
            let mut ours = vec![];
            list_json(&keys, &mut ours).unwrap();
            proptest::prop_assert_eq!(String::from_utf8(ours).unwrap(), theirs);
        }
    }

    #[test]
    fn versions() {
        assert!(check_version("v37").is_ok());
        assert!(check_version("V37").is_ok());
        assert!(check_version("v1").is_ok());
        assert!(check_version("v999").is_ok());
        assert!(check_version("37").is_err());
        assert!(check_version("v").is_err());
        assert!(check_version("vx").is_err());
        assert!(check_version("v0").is_err());
        assert!(check_version("v037").is_err());
        assert!(check_version("v1000").is_err());
        assert!(check_version("v+37").is_err());
        assert!(check_version("v3.7").is_err());
        assert_eq!(SUPPORTED_VERSIONS, format!("1-{MAX_VERSION}"));
    }
}
