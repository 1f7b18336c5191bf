//! Web pages: "my personal access keys", behind a cookie login. The pages hold no data of
//! their own: their scripts call the Tedee-compatible API with the session cookie and send
//! the XSRF token back on every write.

use super::AppState;
use super::auth::{SESSION_COOKIE, cookie};
use crate::service::personal::CATALOGUE;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

const LOGIN_HTML: &str = include_str!("../../assets/account/login.html");
const KEYS_HTML: &str = include_str!("../../assets/account/keys.html");
const LOGIN_JS: &str = include_str!("../../assets/account/login.js");
const KEYS_JS: &str = include_str!("../../assets/account/keys.js");
const STYLE_CSS: &str = include_str!("../../assets/account/style.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub(crate) fn page(content_type: &'static str, body: String) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, header::CONTENT_TYPE, content_type);
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CACHE_CONTROL, "no-store");
    resp
}

pub async fn account() -> Redirect {
    Redirect::to("/account/keys")
}

pub async fn login_page() -> Response {
    page("text/html; charset=utf-8", LOGIN_HTML.to_string())
}

/// The keys page for a signed-in user; others are sent to the login page.
pub async fn keys_page(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let signed_in = match cookie(&headers, SESSION_COOKIE) {
        Some(s) => st
            .svc
            .auth_session(s, None, None, false)
            .await
            .is_ok_and(|p| p.user_id.is_some()),
        None => false,
    };
    if !signed_in {
        return Redirect::to("/account/login").into_response();
    }
    // The catalogue is static text; nothing user-supplied is put into the page.
    let scopes: String = CATALOGUE
        .iter()
        .map(|s| format!("<label><input type=\"checkbox\" name=\"scope\" value=\"{s}\"> {s}</label>"))
        .collect();
    page("text/html; charset=utf-8", KEYS_HTML.replace("{{SCOPES}}", &scopes))
}

pub async fn login_js() -> Response {
    page("text/javascript; charset=utf-8", LOGIN_JS.to_string())
}

pub async fn keys_js() -> Response {
    page("text/javascript; charset=utf-8", KEYS_JS.to_string())
}

pub async fn style_css() -> Response {
    page("text/css; charset=utf-8", STYLE_CSS.to_string())
}
