//! One place that authenticates a request. Every credential the request carries is checked:
//! `Authorization` (every value: `Basic`, `SOTicket`/`SoTicket`, `Bearer <JWT>`,
//! `PersonalKey <key>`), `X-API-Key`, and the cookie session, which counts only when no
//! `Authorization` header is sent (and must carry `X-XSRF-TOKEN` on every non-GET request).
//! Any one that is present but bad refuses the request, and so do valid ones of different
//! organizations; of several valid ones, this order picks the caller: Basic, ticket, Bearer,
//! personal key, API key, session.

use super::extract::client_key;
use super::{ApiError, AppState};
use crate::error::Error;
use crate::service::Principal;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Method, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

pub const SESSION_COOKIE: &str = "keygate_session";
pub const XSRF_COOKIE: &str = "XSRF-TOKEN";
pub const XSRF_HEADER: HeaderName = HeaderName::from_static("x-xsrf-token");
/// An organization API key. Header names are made once (a `&str` name is parsed on every lookup).
pub const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

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
    authenticate_from(state, headers, method, || source.to_string()).await
}

/// Of the valid credentials found so far: the caller (the lowest rank in the README's order)
/// and whether any two belong to different organizations.
#[derive(Default)]
struct Found {
    caller: Option<(u8, Principal)>,
    mixed: bool,
}

impl Found {
    fn add(&mut self, rank: u8, p: Principal) {
        match &self.caller {
            Some((r, c)) => {
                self.mixed |= c.org_id != p.org_id;
                if rank < *r {
                    self.caller = Some((rank, p));
                }
            }
            None => self.caller = Some((rank, p)),
        }
    }
}

/// [`authenticate`], with the client address (which only a password login counts) asked for
/// only when a `Basic` credential is present.
pub async fn authenticate_from(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    source: impl FnOnce() -> String,
) -> Result<Principal, Error> {
    let svc = &state.svc;
    let mut found = Found::default();
    let mut source = Some(source);
    let mut src: Option<String> = None;
    let authorizations = headers.get_all(header::AUTHORIZATION);
    for v in authorizations.iter() {
        let v = v.to_str().map_err(|_| Error::Unauthenticated)?;
        let (scheme, value) = v.trim().split_once(' ').ok_or(Error::Unauthenticated)?;
        let value = value.trim();
        let is = |name: &str| scheme.eq_ignore_ascii_case(name);
        if is("basic") {
            let (u, p) = decode_basic(value).ok_or(Error::Unauthenticated)?;
            let src = src.get_or_insert_with(|| source.take().map(|f| f()).unwrap_or_default());
            found.add(0, svc.auth_basic(&u, &p, src).await?);
        } else if is("soticket") {
            found.add(1, svc.auth_ticket(value).await?);
        } else if is("bearer") {
            found.add(2, svc.auth_bearer(value).await?);
        } else if is("personalkey") {
            found.add(3, svc.auth_personal_key(value).await?);
        } else {
            return Err(Error::Unauthenticated);
        }
    }
    for k in headers.get_all(API_KEY_HEADER).iter() {
        let k = k.to_str().map_err(|_| Error::Unauthenticated)?;
        found.add(4, svc.auth_api_key(k.trim()).await?);
    }
    if authorizations.iter().next().is_none() {
        if let Some(session) = cookie(headers, SESSION_COOKIE) {
            let unsafe_method = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
            let header = headers.get(XSRF_HEADER).and_then(|v| v.to_str().ok());
            let p = svc
                .auth_session(session, cookie(headers, XSRF_COOKIE), header, unsafe_method)
                .await?;
            found.add(5, p);
        }
    }
    match found {
        Found { mixed: true, .. } | Found { caller: None, .. } => Err(Error::Unauthenticated),
        Found {
            caller: Some((_, caller)),
            ..
        } => Ok(caller),
    }
}

/// The authenticated caller of a native API route.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Auth(authenticate_parts(state, parts).await?))
    }
}

/// [`authenticate_from`] for a request's head. The client address costs a formatted string
/// (2% of a CheckTemporaryKey); only a password login needs it, so only that asks for it.
pub async fn authenticate_parts(state: &AppState, parts: &Parts) -> Result<Principal, Error> {
    let source = || client_key(parts, &state.net.trusted_proxies);
    authenticate_from(state, &parts.headers, &parts.method, source).await
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
