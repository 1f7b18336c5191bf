//! `/v1/locks`: locks that share keys are bound to.

use super::auth::Auth;
use super::doc::schema;
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
    #[schema(schema_with = schema::name)]
    pub name: String,
    /// The user who owns the lock (B2C); they manage its share keys.
    pub owner: Option<Uuid>,
    #[schema(schema_with = doors_schema)]
    #[serde(default)]
    pub doors: serde_json::Value,
}

/// A lock's doors as `create_lock` takes them: at most `MAX_DOORS`, each `{id, name}`.
fn doors_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let door = ObjectBuilder::new()
        .property(
            "id",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(i64::MIN))
                .maximum(Some(i64::MAX)),
        )
        .required("id")
        .property("name", schema::door_name())
        .required("name");
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(door)
        .max_items(Some(crate::service::share::MAX_DOORS))
        .description(Some(
            "The lock's doors, each `{\"id\": n, \"name\": \"...\"}`; null or absent: none.",
        ))
        .build()
}

/// Doors whose `id` is written as a whole float (`3.0`) have it as the integer it is.
fn whole_door_ids(doors: serde_json::Value) -> serde_json::Value {
    match doors {
        serde_json::Value::Array(a) => serde_json::Value::Array(a.into_iter().map(super::whole::members).collect()),
        other => other,
    }
}

/// Create a lock (organization administrators).
#[utoipa::path(post, path = "/v1/locks", tag = "locks", operation_id = "create_lock", request_body = CreateLockRequest,
    responses((status = 201, description = "The lock.", body = LockView)))]
pub async fn create(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<CreateLockRequest>,
) -> ApiResult<(StatusCode, Json<LockView>)> {
    let lock = st
        .svc
        .create_lock(Some(&p), p.org_id, &req.name, req.owner, whole_door_ids(req.doors))
        .await?;
    Ok((StatusCode::CREATED, Json(LockView::from(&lock))))
}

/// The locks the caller manages (administrators: all of the organization's; users: their own).
#[utoipa::path(get, path = "/v1/locks", tag = "locks", operation_id = "list_locks",
    responses((status = 200, description = "The locks the caller manages.", body = [LockView])))]
pub async fn list(State(st): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Vec<LockView>>> {
    Ok(Json(st.svc.list_locks(&p).await?.iter().map(LockView::from).collect()))
}

/// One lock.
#[utoipa::path(get, path = "/v1/locks/{id}", tag = "locks", operation_id = "get_lock", params(("id" = i64, Path)),
    responses((status = 200, description = "The lock.", body = LockView),
        (status = 403, description = "A user who does not own the lock.", body = ErrorBody),
        (status = 404, description = "No such lock in the organization.", body = ErrorBody)))]
pub async fn get(State(st): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<LockView>> {
    let id = id
        .parse::<i64>()
        .map_err(|_| Error::invalid("id", "must be a lock id (a positive integer)"))?;
    Ok(Json(LockView::from(&st.svc.get_lock(&p, id).await?)))
}
