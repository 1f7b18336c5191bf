//! Administration: organizations, users and organization API keys.

use super::auth::Auth;
use super::doc::schema;
use super::extract::{ApiJson, parse_uuid};
use super::{ApiResult, AppState, ErrorBody};
use crate::model::{ApiKey, Organization, User};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    pub id: Uuid,
    pub name: String,
    pub is_system: bool,
    pub created_at: DateTime<Utc>,
}

impl From<&Organization> for OrgView {
    fn from(o: &Organization) -> Self {
        OrgView {
            id: o.id,
            name: o.name.clone(),
            is_system: o.is_system,
            created_at: o.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    #[schema(schema_with = schema::org_name)]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedOrg {
    pub id: Uuid,
    pub name: String,
    /// The organization's first API key (`X-API-Key`), shown once.
    #[serde(rename = "apiKey")]
    pub api_key: String,
}

/// Create an organization (administrators of the system organization).
#[utoipa::path(post, path = "/v1/orgs", tag = "admin", request_body = CreateOrgRequest,
    responses((status = 201, description = "The organization, with its first API key (once).", body = CreatedOrg),
        (status = 403, description = "Only administrators of the system organization create organizations.", body = ErrorBody),
        (status = 409, description = "An organization of that name exists.", body = ErrorBody)))]
pub async fn create_org(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<CreateOrgRequest>,
) -> ApiResult<(StatusCode, Json<CreatedOrg>)> {
    let (org, key) = st.svc.create_org(Some(&p), &req.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedOrg {
            id: org.id,
            name: org.name,
            api_key: key,
        }),
    ))
}

/// Organizations the caller may see.
#[utoipa::path(get, path = "/v1/orgs", tag = "admin",
    responses((status = 200, description = "The caller's organization (system administrators: all).", body = [OrgView])))]
pub async fn list_orgs(State(st): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Vec<OrgView>>> {
    Ok(Json(st.svc.list_orgs(&p).await?.iter().map(OrgView::from).collect()))
}

/// One organization.
#[utoipa::path(get, path = "/v1/orgs/{id}", tag = "admin", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The organization.", body = OrgView),
        (status = 404, description = "No such organization visible to the caller.", body = ErrorBody)))]
pub async fn get_org(State(st): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<OrgView>> {
    let id = parse_uuid("id", &id)?;
    Ok(Json(OrgView::from(&st.svc.get_org(&p, id).await?)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub username: String,
    pub person_id: Option<i64>,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
    /// A disabled user's every credential is refused.
    pub disabled: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id,
            org_id: u.org_id,
            username: u.username.clone(),
            person_id: u.person_id,
            is_admin: u.is_admin,
            created_at: u.created_at,
            disabled: u.disabled,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[schema(schema_with = schema::username)]
    pub username: String,
    #[schema(schema_with = schema::new_password)]
    pub password: String,
    /// Default: the caller's organization.
    pub org_id: Option<Uuid>,
    #[serde(default)]
    pub admin: bool,
    /// Numeric person id for the SuperOffice surface: 1 to 2147483647.
    #[schema(minimum = 1, maximum = 2_147_483_647)]
    #[serde(default, deserialize_with = "super::whole::opt_i64")]
    pub person_id: Option<i64>,
}

/// Create a user (organization administrators; system administrators in any organization).
#[utoipa::path(post, path = "/v1/users", tag = "admin", request_body = CreateUserRequest,
    responses((status = 201, description = "The user.", body = UserView),
        (status = 404, description = "No such organization visible to the caller (`org_id`).", body = ErrorBody),
        (status = 409, description = "A user of that name exists.", body = ErrorBody)))]
pub async fn create_user(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let org = req.org_id.unwrap_or(p.org_id);
    let u = st
        .svc
        .create_user(Some(&p), org, &req.username, req.password, req.admin, req.person_id)
        .await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&u))))
}

/// The organization's users (administrators).
#[utoipa::path(get, path = "/v1/users", tag = "admin", responses((status = 200, description = "The organization's users.", body = [UserView])))]
pub async fn list_users(State(st): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Vec<UserView>>> {
    Ok(Json(st.svc.list_users(&p).await?.iter().map(UserView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[schema(schema_with = schema::new_password_or_null)]
    pub password: Option<String>,
    /// Disable (every credential of the user is refused at once, and its tickets and sessions
    /// end) or enable the user.
    pub disabled: Option<bool>,
}

/// Set a user's password, or disable or enable it (organization administrators, signed in as a
/// person: never an API key or a personal key).
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "admin", params(("id" = Uuid, Path)), request_body = UpdateUserRequest,
    responses((status = 200, description = "The user.", body = UserView),
        (status = 403, description = "Not an administrator signed in as a person (API keys and personal keys may not), or an administrator disabling themself.", body = ErrorBody),
        (status = 404, description = "No such user in the organization.", body = ErrorBody)))]
pub async fn update_user(
    State(st): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> ApiResult<Json<UserView>> {
    let id = parse_uuid("id", &id)?;
    let u = st.svc.update_user(&p, id, req.password, req.disabled).await?;
    Ok(Json(UserView::from(&u)))
}

/// Lift a user's lock-out after failed logins, on every node (organization administrators,
/// signed in as a person).
#[utoipa::path(post, path = "/v1/users/{id}/unlock", tag = "admin", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The user.", body = UserView),
        (status = 403, description = "Not an administrator signed in as a person (API keys and personal keys may not).", body = ErrorBody),
        (status = 404, description = "No such user in the organization.", body = ErrorBody)))]
pub async fn unlock_user(
    State(st): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<UserView>> {
    let id = parse_uuid("id", &id)?;
    Ok(Json(UserView::from(&st.svc.unlock_user(&p, id).await?)))
}

/// One user (administrators, or the user themself).
#[utoipa::path(get, path = "/v1/users/{id}", tag = "admin", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The user.", body = UserView),
        (status = 404, description = "No such user in the organization, or (for a user) not the caller.", body = ErrorBody)))]
pub async fn get_user(State(st): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<UserView>> {
    let id = parse_uuid("id", &id)?;
    Ok(Json(UserView::from(&st.svc.get_user(&p, id).await?)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        ApiKeyView {
            id: k.id,
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    #[schema(schema_with = schema::name)]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The secret for `X-API-Key`, shown once.
    #[serde(rename = "apiKey")]
    pub api_key: String,
    #[serde(flatten)]
    pub info: ApiKeyView,
}

/// Create an organization API key (administrators).
#[utoipa::path(post, path = "/v1/api-keys", tag = "admin", request_body = CreateApiKeyRequest,
    responses((status = 201, description = "The API key, with its secret (once).", body = CreatedApiKey)))]
pub async fn create_api_key(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<CreateApiKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    let (k, secret) = st.svc.create_api_key(&p, &req.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            api_key: secret,
            info: ApiKeyView::from(&k),
        }),
    ))
}

/// The organization's API keys (administrators).
#[utoipa::path(get, path = "/v1/api-keys", tag = "admin", responses((status = 200, description = "The organization's API keys.", body = [ApiKeyView])))]
pub async fn list_api_keys(State(st): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Vec<ApiKeyView>>> {
    Ok(Json(
        st.svc.list_api_keys(&p).await?.iter().map(ApiKeyView::from).collect(),
    ))
}

/// Revoke an organization API key (administrators).
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "admin", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The revoked API key.", body = ApiKeyView),
        (status = 404, description = "No such API key in the organization.", body = ErrorBody)))]
pub async fn revoke_api_key(
    State(st): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiKeyView>> {
    let id = parse_uuid("id", &id)?;
    Ok(Json(ApiKeyView::from(&st.svc.revoke_api_key(&p, id).await?)))
}
