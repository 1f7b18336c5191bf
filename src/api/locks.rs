//! `/v1/locks`: locks that share keys are bound to.

use super::auth::Auth;
use super::extract::ApiJson;
use super::{ApiResult, AppState, ErrorBody};
use crate::error::Error;
use crate::model::Lock;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
pub struct LockView {
    pub id: i64,
    pub uuid: Uuid,
    pub name: String,
    pub owner_id: Option<Uuid>,
    /// `[{"id": n, "name": "..."}]`
    #[schema(value_type = Vec<Object>)]
    pub doors: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl From<&Lock> for LockView {
    fn from(l: &Lock) -> Self {
        LockView {
            id: l.id,
            uuid: l.uuid,
            name: l.name.clone(),
            owner_id: l.owner_id,
            doors: l.doors.clone(),
            created_at: l.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLockRequest {
    pub name: String,
    /// The user who owns the lock (B2C); they manage its share keys.
    pub owner: Option<Uuid>,
    #[schema(value_type = Option<Vec<Object>>)]
    #[serde(default)]
    pub doors: serde_json::Value,
}

/// Create a lock (organization administrators).
#[utoipa::path(post, path = "/v1/locks", tag = "locks", request_body = CreateLockRequest,
    responses((status = 201, body = LockView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<CreateLockRequest>,
) -> ApiResult<(StatusCode, Json<LockView>)> {
    let lock = st
        .svc
        .create_lock(Some(&p), p.org_id, &req.name, req.owner, req.doors)
        .await?;
    Ok((StatusCode::CREATED, Json(LockView::from(&lock))))
}

/// The locks the caller manages (administrators: all of the organization's; users: their own).
#[utoipa::path(get, path = "/v1/locks", tag = "locks", responses((status = 200, body = [LockView])))]
pub async fn list(State(st): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Vec<LockView>>> {
    Ok(Json(st.svc.list_locks(&p).await?.iter().map(LockView::from).collect()))
}

/// One lock.
#[utoipa::path(get, path = "/v1/locks/{id}", tag = "locks", params(("id" = i64, Path)),
    responses((status = 200, body = LockView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(State(st): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<LockView>> {
    let id = id
        .parse::<i64>()
        .map_err(|_| Error::invalid("id", "must be a lock id (a positive integer)"))?;
    Ok(Json(LockView::from(&st.svc.get_lock(&p, id).await?)))
}
