//! `/v1/events`: the organization's audit log and feed.

use super::auth::Auth;
use super::extract::ApiQuery;
use super::{ApiResult, AppState};
use crate::core::event::Event;
use crate::error::Error;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Return events with `seq` greater than this (default 0: from the start).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// 1 to 500, default 100.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<Event>,
    /// Pass as `after` to continue; stays at the last seen position at the end of the feed.
    pub next_cursor: i64,
}

/// Events of the caller's organization, oldest first (administrators).
#[utoipa::path(get, path = "/v1/events", tag = "events", operation_id = "list_events", params(EventsQuery),
    responses((status = 200, description = "One page of events, oldest first.", body = EventPage)))]
pub async fn list(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Json<EventPage>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=crate::service::MAX_PAGE).contains(&limit) {
        return Err(Error::invalid("limit", "must be between 1 and 500").into());
    }
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(Error::invalid("after", "must not be negative").into());
    }
    let items = st.svc.list_events(&p, after, limit).await?;
    let next_cursor = items.last().map(|e| e.seq).unwrap_or(after);
    Ok(Json(EventPage { items, next_cursor }))
}
