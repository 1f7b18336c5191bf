//! Tickets, cookie sessions and "who am I".

use super::auth::{Auth, SESSION_COOKIE, XSRF_COOKIE, cookie};
use super::extract::{ApiJson, ClientAddr};
use super::{ApiResult, AppState, ErrorBody};
use crate::error::Error;
use crate::service::AuthMethod;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketResponse {
    /// `7T:...`; use as `Authorization: SOTicket <ticket>`.
    pub ticket: String,
    pub expires_at: DateTime<Utc>,
}

/// Exchange a user login (Basic, or any user credential) for a `7T:` ticket.
#[utoipa::path(post, path = "/v1/tickets", tag = "auth",
    responses((status = 201, description = "The ticket.", body = TicketResponse),
        (status = 403, description = "Tickets are issued to users: not to API keys or personal access keys.", body = ErrorBody)))]
pub async fn create_ticket(State(st): State<AppState>, Auth(p): Auth) -> ApiResult<(StatusCode, Json<TicketResponse>)> {
    let (ticket, expires_at) = st.svc.create_ticket(&p).await?;
    Ok((StatusCode::CREATED, Json(TicketResponse { ticket, expires_at })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub expires_at: DateTime<Utc>,
    /// Also set as the `XSRF-TOKEN` cookie: send it back as `X-XSRF-TOKEN` on every non-GET request.
    pub xsrf_token: String,
}

fn cookie_header(st: &AppState, name: &str, value: &str, http_only: bool, max_age: i64) -> Result<HeaderValue, Error> {
    let mut c = format!("{name}={value}; Path=/; SameSite=Lax; Max-Age={max_age}");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if st.settings.cookie_secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).map_err(Error::internal)
}

/// Log in with username and password; sets the session and XSRF cookies.
#[utoipa::path(post, path = "/v1/sessions", tag = "auth", request_body = LoginRequest, security(),
    responses((status = 201, description = "Signed in; sets the `keygate_session` and `XSRF-TOKEN` cookies.", body = SessionResponse),
        (status = 401, description = "Wrong username or password, or a disabled user.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"keygate\", Bearer`"))),
        (status = 429, description = "Too many failed logins from this client address or for this user. Retry after `Retry-After` seconds.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
        (status = 503, description = "Too busy (password hashing) or the database cannot be reached. Retry after `Retry-After` seconds.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again.")))))]
pub async fn create_session(
    State(st): State<AppState>,
    ClientAddr(src): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let user = st.svc.login(&req.username, &req.password, &src).await?;
    let (session, xsrf, expires_at) = st.svc.start_session(&user).await?;
    let max_age = (expires_at - st.svc.now()).num_seconds().max(0);
    let mut resp = (
        StatusCode::CREATED,
        Json(SessionResponse {
            user_id: user.id,
            org_id: user.org_id,
            expires_at,
            xsrf_token: xsrf.clone(),
        }),
    )
        .into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        cookie_header(&st, SESSION_COOKIE, &session, true, max_age)?,
    );
    h.append(
        header::SET_COOKIE,
        cookie_header(&st, XSRF_COOKIE, &xsrf, false, max_age)?,
    );
    Ok(resp)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    #[schema(schema_with = super::doc::schema::new_password)]
    pub new_password: String,
}

/// Change your own password, giving the current one (signed in as a person). Ends your tickets
/// and sessions, this one included.
#[utoipa::path(post, path = "/v1/me/password", tag = "auth", request_body = ChangePasswordRequest,
    responses((status = 204, description = "Changed; the caller's tickets and sessions have ended."),
        (status = 403, description = "Not signed in as a person (API keys and personal keys may not), or the current password is not right.", body = ErrorBody),
        (status = 404, description = "The caller's user no longer exists.", body = ErrorBody)))]
pub async fn change_password(
    State(st): State<AppState>,
    Auth(p): Auth,
    ClientAddr(src): ClientAddr,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    st.svc
        .change_own_password(&p, &req.current_password, req.new_password, &src)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Log out of a cookie session.
#[utoipa::path(delete, path = "/v1/sessions", tag = "auth",
    responses((status = 204, description = "Signed out; clears the cookies."),
        (status = 403, description = "The caller is not signed in with a cookie session.", body = ErrorBody)))]
pub async fn delete_session(State(st): State<AppState>, Auth(p): Auth, headers: HeaderMap) -> ApiResult<Response> {
    if p.method != AuthMethod::Session {
        return Err(Error::Forbidden("not authenticated by a cookie session".into()).into());
    }
    if let Some(s) = cookie(&headers, SESSION_COOKIE) {
        st.svc.end_session(&p, s).await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.append(header::SET_COOKIE, cookie_header(&st, SESSION_COOKIE, "", true, 0)?);
    h.append(header::SET_COOKIE, cookie_header(&st, XSRF_COOKIE, "", false, 0)?);
    Ok(resp)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    pub org_id: Uuid,
    pub user_id: Option<Uuid>,
    pub is_admin: bool,
    pub is_system_admin: bool,
    /// basic, ticket, bearer, api_key, session or personal_key.
    pub auth: String,
}

/// Who the caller is.
#[utoipa::path(get, path = "/v1/me", tag = "auth", responses((status = 200, description = "The caller.", body = MeResponse)))]
pub async fn me(Auth(p): Auth) -> ApiResult<Json<MeResponse>> {
    p.require(crate::service::personal::scope::ACCOUNT_READ)?;
    let auth = match p.method {
        AuthMethod::Basic => "basic",
        AuthMethod::Ticket => "ticket",
        AuthMethod::Bearer => "bearer",
        AuthMethod::ApiKey => "api_key",
        AuthMethod::Session => "session",
        AuthMethod::PersonalKey => "personal_key",
        AuthMethod::Operator => "operator",
    };
    Ok(Json(MeResponse {
        org_id: p.org_id,
        user_id: p.user_id,
        is_admin: p.is_admin,
        is_system_admin: p.is_system_admin,
        auth: auth.into(),
    }))
}
