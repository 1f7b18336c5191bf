//! One place that authenticates a request, in this order: `Authorization: Basic`,
//! `Authorization: SOTicket` (or `SoTicket`), `Authorization: Bearer <JWT>`,
//! `Authorization: PersonalKey <key>` (limited to the key's scopes), `X-API-Key`,
//! then a cookie session (which must carry `X-XSRF-TOKEN` on every non-GET request).
//! A present but bad credential is refused; it never falls through to the next scheme.

use super::extract::ClientAddr;
use super::{ApiError, AppState};
use crate::error::Error;
use crate::service::Principal;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

pub const SESSION_COOKIE: &str = "keygate_session";
pub const XSRF_COOKIE: &str = "XSRF-TOKEN";
pub const XSRF_HEADER: &str = "x-xsrf-token";

/// Read one cookie's value.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Split `Authorization: <scheme> <value>`; the scheme is compared case-insensitively.
pub fn authorization(headers: &HeaderMap) -> Option<(String, &str)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    Some((scheme.to_ascii_lowercase(), rest.trim()))
}

pub fn decode_basic(value: &str) -> Option<(String, String)> {
    let raw = STANDARD.decode(value).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Authenticate from headers.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    source: &str,
) -> Result<Principal, Error> {
    let svc = &state.svc;
    if headers.contains_key(header::AUTHORIZATION) {
        let (scheme, value) = authorization(headers).ok_or(Error::Unauthenticated)?;
        return match scheme.as_str() {
            "basic" => {
                let (u, p) = decode_basic(value).ok_or(Error::Unauthenticated)?;
                svc.auth_basic(&u, &p, source).await
            }
            "soticket" => svc.auth_ticket(value).await,
            "bearer" => svc.auth_bearer(value).await,
            "personalkey" => svc.auth_personal_key(value).await,
            _ => Err(Error::Unauthenticated),
        };
    }
    if let Some(k) = headers.get("x-api-key") {
        let k = k.to_str().map_err(|_| Error::Unauthenticated)?;
        return svc.auth_api_key(k.trim()).await;
    }
    if let Some(session) = cookie(headers, SESSION_COOKIE) {
        let unsafe_method = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let header = headers.get(XSRF_HEADER).and_then(|v| v.to_str().ok());
        return svc
            .auth_session(session, cookie(headers, XSRF_COOKIE), header, unsafe_method)
            .await;
    }
    Err(Error::Unauthenticated)
}

/// The authenticated caller of a native API route.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ClientAddr(source) = ClientAddr::from_request_parts(parts, state)
            .await
            .unwrap_or(ClientAddr("unknown".into()));
        Ok(Auth(authenticate(state, &parts.headers, &parts.method, &source).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn basic_decodes_the_seed_header() {
        // The SuperOffice seeds send `Authorization: Basic dGplMDpUamUw`.
        assert_eq!(decode_basic("dGplMDpUamUw"), Some(("tje0".into(), "Tje0".into())));
        assert_eq!(decode_basic("!!!"), None);
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; XSRF-TOKEN=x; keygate_session=s"),
        );
        assert_eq!(cookie(&h, "XSRF-TOKEN"), Some("x"));
        assert_eq!(cookie(&h, "keygate_session"), Some("s"));
        assert_eq!(cookie(&h, "XSRF"), None);
    }
}
