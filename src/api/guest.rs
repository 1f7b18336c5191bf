//! The share key's public side: the guest page `GET /temp-keys/{uuid}`, the open flow
//! `POST /temp-keys/{uuid}/open` and `POST /temp-keys/{uuid}/doors/{doorId}/open` (303 to the
//! confirmation page) and the confirmation page; each is also served under
//! `/collective-temp-keys`, SmartphoneKey's newer name. Public keys need no authentication;
//! whitelisted keys need the visitor's credentials (a JWT).

use super::AppState;
use super::auth::authenticate_parts;
use super::extract::{is_json, parse_json, read_body};
use super::pages::page;
use super::smartphonekey::SpkError;
use super::xml::esc;
use crate::error::Error;
use crate::service::Principal;
use crate::service::collective::{DoorChoice, admits, doors};
use crate::service::share::status;
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::SecondsFormat;
use uuid::Uuid;

/// The visitor, if the request carries credentials (bad credentials are refused, not ignored).
/// Only explicit headers count: a browser's session cookie is never used here, so another site
/// cannot make a signed-in visitor's browser open a door (no cross-site request forgery).
async fn visitor(st: &AppState, parts: &mut Parts) -> Result<Option<Principal>, Error> {
    let h = &parts.headers;
    if !h.contains_key(header::AUTHORIZATION) && !h.contains_key(super::auth::API_KEY_HEADER) {
        return Ok(None);
    }
    parts.headers.remove(header::COOKIE);
    authenticate_parts(st, parts).await.map(Some)
}

fn wants_html(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn html_page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · keygate</title><link rel=\"stylesheet\" href=\"/account/style.css\"></head>\
         <body><main class=\"narrow\"><h1>{t}</h1><section class=\"card\">{body}</section></main></body></html>",
        t = esc(title)
    )
}

/// An error as HTML (for browsers) or in SmartphoneKey's JSON shape.
fn refuse(e: Error, html: bool) -> Response {
    if !html {
        return SpkError::from(e).into_response();
    }
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let text = match &e {
        Error::Invalid { message, .. } => message.clone(),
        Error::Unauthenticated => "Sign in with the app you were invited through to use this key.".into(),
        Error::Forbidden(m) => m.clone(),
        Error::NotFound("door") => "This key has no such door.".into(),
        Error::NotFound(_) => "There is no such key.".into(),
        Error::Internal(d) => {
            tracing::error!(detail = d.as_str(), "internal error");
            "Something went wrong.".into()
        }
        other => other.to_string(),
    };
    let mut r = page(
        "text/html; charset=utf-8",
        html_page(
            "This key cannot be used",
            &format!("<p class=\"error\">{}</p>", esc(&text)),
        ),
    );
    *r.status_mut() = status;
    r
}

fn parse(uuid: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(uuid).map_err(|_| Error::NotFound("temp key"))
}

/// GET /temp-keys/{uuid}
pub async fn show(State(st): State<AppState>, Path(uuid): Path<String>, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    let result = async {
        let id = parse(&uuid)?;
        let who = visitor(&st, &mut parts).await?;
        st.svc.guest_share(id, who.as_ref()).await
    }
    .await;
    let (c, lock) = match result {
        Ok(x) => x,
        Err(e) => return refuse(e, true),
    };
    let fmt = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    let state = status(&c, st.svc.now());
    let uses = match c.max_uses {
        Some(m) => format!("{} of {m} uses left", (m - c.used_count).max(0)),
        None => "unlimited uses".into(),
    };
    let description = c.metadata.get("description").and_then(|d| d.as_str()).unwrap_or("");
    // A per-lock key opens through `/open`; each link door of a collective key through its own
    // door route.
    let open_form = |door: Option<i64>, label: &str| {
        let action = match door {
            Some(d) => format!("/temp-keys/{}/doors/{d}/open", c.id),
            None => format!("/temp-keys/{}/open", c.id),
        };
        format!(
            "<form method=\"post\" action=\"{action}\"><button type=\"submit\" class=\"open\">{}</button></form>",
            esc(label)
        )
    };
    let (place, action) = match &lock {
        Some(lock) => {
            let action = if c.allowed_users.is_empty() && state == "valid" {
                open_form(None, "Open the door")
            } else if state == "valid" {
                "<p class=\"hint\">This key is for named people: open it from your app.</p>".to_string()
            } else {
                format!("<p class=\"error\">This key is {state}.</p>")
            };
            (esc(&lock.name).into_owned(), action)
        }
        None => {
            let all = doors(&c);
            let label = |id: i64, d: &serde_json::Value| {
                d.get("label")
                    .and_then(|l| l.as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("door {id}"))
            };
            let names: Vec<String> = all.iter().map(|(id, d)| esc(&label(*id, d)).into_owned()).collect();
            let link_doors: Vec<&(i64, &serde_json::Value)> = all.iter().filter(|(_, d)| admits(d, "key")).collect();
            let action = if state != "valid" {
                format!("<p class=\"error\">This key is {state}.</p>")
            } else if link_doors.is_empty() {
                "<p class=\"hint\">Use your PIN at the door's keypad.</p>".to_string()
            } else {
                link_doors
                    .iter()
                    .map(|(id, d)| open_form(Some(*id), &format!("Open {}", label(*id, d))))
                    .collect()
            };
            (names.join(", "), action)
        }
    };
    let body = format!(
        "<p>{}</p><dl><dt>Doors</dt><dd id=\"lock\">{place}</dd><dt>Valid</dt><dd>{} to {}</dd><dt>Uses</dt><dd>{}</dd><dt>Status</dt><dd id=\"status\">{}</dd></dl>{}",
        esc(description),
        fmt(c.not_before),
        fmt(c.expires_at),
        uses,
        state,
        action
    );
    page("text/html; charset=utf-8", html_page("Your key", &body))
}

/// The door to open, from a form (`lockId=N`) or JSON (`{"lockId": N}`) body (a keygate
/// extension); absent is the first door that opens through the link.
async fn chosen_door(
    st: &AppState,
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<DoorChoice, Error> {
    let bytes = read_body(body, st.settings.body_limit_bytes).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(DoorChoice::First);
    }
    let bad = || Error::invalid("lockId", "must be a lock id (a positive integer)");
    let raw: Option<String> = if is_json(headers) {
        match parse_json::<serde_json::Value>(&bytes)? {
            serde_json::Value::Object(m) => match m.get("lockId") {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => Some(v.as_i64().map(|n| n.to_string()).ok_or_else(bad)?),
            },
            _ => return Err(Error::invalid("body", "must be a JSON object")),
        }
    } else {
        form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "lockId")
            .map(|(_, v)| v.into_owned())
    };
    let lock = raw
        .map(|r| r.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(bad))
        .transpose()?;
    Ok(lock.map_or(DoorChoice::First, DoorChoice::Lock))
}

/// Where an open goes on success: the confirmation page under the name the request used.
fn confirmation_url(parts: &Parts, uuid: Uuid) -> String {
    let base = if parts.uri.path().starts_with("/collective-temp-keys/") {
        "/collective-temp-keys"
    } else {
        "/temp-keys"
    };
    format!("{base}/{uuid}/confirmation")
}

/// POST /temp-keys/{uuid}/open: opens the key's first door that opens through the link; 303 to
/// the confirmation page; 400 when the key is deleted, not valid yet, expired or used up; 403
/// when the visitor is not on the whitelist.
pub async fn open(State(st): State<AppState>, Path(uuid): Path<String>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let html = wants_html(&parts);
    let result = async {
        let id = parse(&uuid)?;
        let door = chosen_door(&st, &parts.headers, body).await?;
        let who = visitor(&st, &mut parts).await?;
        st.svc.open_share(id, who.as_ref(), door).await
    }
    .await;
    match result {
        Ok(w) => Redirect::to(&confirmation_url(&parts, w.aggregate_id)).into_response(),
        Err(e) => refuse(e, html),
    }
}

/// POST /temp-keys/{uuid}/doors/{doorId}/open: one door of a key (a per-lock key's one door is
/// 1). 303 as `/open`; 400 also when the door takes the PIN only; 404 for an unknown key or door.
pub async fn open_door(
    State(st): State<AppState>,
    Path((uuid, door)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (mut parts, _) = req.into_parts();
    let html = wants_html(&parts);
    let result = async {
        let id = parse(&uuid)?;
        let door = door
            .parse::<i64>()
            .ok()
            .filter(|d| *d > 0)
            .ok_or(Error::NotFound("door"))?;
        let who = visitor(&st, &mut parts).await?;
        st.svc.open_share(id, who.as_ref(), DoorChoice::Id(door)).await
    }
    .await;
    match result {
        Ok(w) => Redirect::to(&confirmation_url(&parts, w.aggregate_id)).into_response(),
        Err(e) => refuse(e, html),
    }
}

/// GET /temp-keys/{uuid}/confirmation
pub async fn confirmation(Path(uuid): Path<String>) -> Response {
    match parse(&uuid) {
        Ok(_) => page(
            "text/html; charset=utf-8",
            html_page("Opening", "<p id=\"confirmation\">The door has been asked to open.</p>"),
        ),
        Err(e) => refuse(e, true),
    }
}
