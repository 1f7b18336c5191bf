//! `/v1/keys`: create, verify, use, list, get, revoke.

use super::auth::Auth;
use super::extract::{ApiJson, ApiQuery, OptionalJson, parse_uuid};
use super::{ApiResult, AppState, ErrorBody};
use crate::core::credential::{Code, Credential, Kind};
use crate::error::Error;
use crate::service::{NewKey, Verification};
use crate::store::CredentialFilter;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A key as the API shows it: never the secret, never its digest.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: Uuid,
    pub kind: Kind,
    pub name: String,
    /// Public part of the key, for recognising it in lists.
    pub prefix: String,
    pub owner_id: Option<Uuid>,
    pub scopes: Vec<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i64>,
    pub used_count: i64,
    /// Uses left, when limited.
    pub remaining: Option<i64>,
    pub allowed_users: Vec<Uuid>,
    #[schema(value_type = Object)]
    pub subject: serde_json::Value,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
}

impl From<&Credential> for KeyView {
    fn from(c: &Credential) -> Self {
        KeyView {
            id: c.id,
            kind: c.kind,
            name: c.name.clone(),
            prefix: c.prefix.clone(),
            owner_id: c.owner_id,
            scopes: c.scopes.clone(),
            not_before: c.not_before,
            expires_at: c.expires_at,
            max_uses: c.max_uses,
            used_count: c.used_count,
            remaining: c.max_uses.map(|m| (m - c.used_count).max(0)),
            allowed_users: c.allowed_users.clone(),
            subject: c.subject.clone(),
            metadata: c.metadata.clone(),
            created_at: c.created_at,
            created_by: c.created_by.clone(),
            updated_at: c.updated_at,
            revoked_at: c.revoked_at,
            revoked_by: c.revoked_by.clone(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// Default `api`.
    pub kind: Option<Kind>,
    /// 1 to 200 characters.
    pub name: String,
    /// Owner user (administrators only); default: the caller.
    pub owner: Option<Uuid>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub not_before: Option<DateTime<Utc>>,
    /// Must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
    /// 1 to 1,000,000,000; absent or null for unlimited.
    pub max_uses: Option<i64>,
    /// When non-empty, only these users (of the organization) may use the key.
    #[serde(default)]
    pub allowed_users: Vec<Uuid>,
    /// What the key is bound to.
    #[schema(value_type = Object)]
    #[serde(default)]
    pub subject: serde_json::Value,
    /// A JSON object of at most 16 KiB.
    #[schema(value_type = Object)]
    #[serde(default)]
    pub metadata: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The secret. Shown this once; keygate keeps only a keyed digest. Null for a share key,
    /// which has no secret: its guest link is `/temp-keys/{id}`.
    pub key: Option<String>,
    #[serde(flatten)]
    pub info: KeyView,
}

/// Issue a key. The answer carries the secret, once.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKeyRequest,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let new = NewKey {
        kind: req.kind,
        name: req.name,
        owner_id: req.owner,
        scopes: req.scopes,
        not_before: req.not_before,
        expires_at: req.expires_at,
        max_uses: req.max_uses,
        allowed_users: req.allowed_users,
        subject: req.subject,
        metadata: req.metadata,
    };
    let (cred, secret) = st.svc.create_key(&p, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: secret,
            info: KeyView::from(&cred),
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The secret to check.
    pub key: String,
    /// The scope the caller needs.
    pub scope: Option<String>,
    /// The user presenting the key (for whitelisted keys).
    pub user: Option<Uuid>,
    /// Also consume one use when valid (atomic). Default false.
    #[serde(default)]
    pub consume: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse {
    pub valid: bool,
    pub code: Code,
    /// The key, unless the code is NOT_FOUND.
    pub key: Option<KeyView>,
}

impl From<Verification> for VerifyResponse {
    fn from(v: Verification) -> Self {
        VerifyResponse {
            valid: v.code.is_valid(),
            code: v.code,
            key: v.credential.as_ref().map(KeyView::from),
        }
    }
}

const MAX_PRESENTED_KEY: usize = 1024;

/// Check a key. Always 200 with a reason code; a key of another organization is NOT_FOUND.
#[utoipa::path(post, path = "/v1/keys/verify", tag = "keys", request_body = VerifyRequest,
    responses((status = 200, body = VerifyResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn verify(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> ApiResult<Json<VerifyResponse>> {
    if req.key.is_empty() || req.key.len() > MAX_PRESENTED_KEY {
        return Err(Error::invalid("key", format!("must be 1 to {MAX_PRESENTED_KEY} characters")).into());
    }
    let v = st
        .svc
        .verify_key(&p, &req.key, req.scope, req.user, req.consume)
        .await?;
    Ok(Json(v.into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UseRequest {
    pub scope: Option<String>,
    pub user: Option<Uuid>,
}

/// Consume one use of a key. Exact under concurrency: a key with max_uses N succeeds N times.
#[utoipa::path(post, path = "/v1/keys/{id}/use", tag = "keys", params(("id" = Uuid, Path)), request_body(content = UseRequest, description = "optional"),
    responses((status = 200, body = VerifyResponse), (status = 404, body = ErrorBody)))]
pub async fn use_key(
    State(st): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<UseRequest>,
) -> ApiResult<Json<VerifyResponse>> {
    let id = parse_uuid("id", &id)?;
    let v = st.svc.use_key(&p, id, req.scope, req.user).await?;
    Ok(Json(v.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub kind: Option<Kind>,
    /// Owner user id.
    pub owner: Option<Uuid>,
    /// 1 to 500, default 100.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyPage {
    pub items: Vec<KeyView>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<Uuid>,
}

/// List keys (administrators: the organization's; users: their own).
#[utoipa::path(get, path = "/v1/keys", tag = "keys", params(ListQuery), responses((status = 200, body = KeyPage), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<KeyPage>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=crate::service::MAX_PAGE).contains(&limit) {
        return Err(Error::invalid("limit", "must be between 1 and 500").into());
    }
    let f = CredentialFilter {
        kind: q.kind,
        owner_id: q.owner,
        after: q.cursor,
        limit,
    };
    let items = st.svc.list_keys(&p, f).await?;
    let next_cursor = (items.len() as u32 == limit)
        .then(|| items.last().map(|c| c.id))
        .flatten();
    Ok(Json(KeyPage {
        items: items.iter().map(KeyView::from).collect(),
        next_cursor,
    }))
}

/// One key.
#[utoipa::path(get, path = "/v1/keys/{id}", tag = "keys", params(("id" = Uuid, Path)), responses((status = 200, body = KeyView), (status = 404, body = ErrorBody)))]
pub async fn get(State(st): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<KeyView>> {
    let id = parse_uuid("id", &id)?;
    Ok(Json(KeyView::from(&st.svc.get_key(&p, id).await?)))
}

/// Revoke a key; it stops working at once. Revoking twice is harmless.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", params(("id" = Uuid, Path)), responses((status = 200, body = KeyView), (status = 404, body = ErrorBody)))]
pub async fn revoke(State(st): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<KeyView>> {
    let id = parse_uuid("id", &id)?;
    Ok(Json(KeyView::from(&st.svc.revoke_key(&p, id).await?)))
}
