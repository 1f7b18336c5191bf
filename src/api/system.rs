//! Health, metrics, the OpenAPI document, and (tests only) the movable clock.

use super::extract::client_ip;
use super::{ApiError, ApiResult, AppState};
use crate::core::net;
use crate::core::secret::ct_eq;
use crate::error::Error;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::json;

/// Liveness and database reachability.
pub async fn healthz(State(st): State<AppState>) -> Response {
    match st.svc.ping().await {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => ApiError(Error::Unavailable(e.to_string())).into_response(),
    }
}

/// Prometheus text exposition.
/// Prometheus metrics: with `metrics_token` set, only for `Authorization: Bearer <token>`;
/// without it, only for client addresses in `metrics_allow` (loopback by default).
pub async fn metrics(State(st): State<AppState>, req: axum::extract::Request) -> Response {
    let (parts, _) = req.into_parts();
    match &st.settings.metrics_token {
        Some(token) => {
            let sent = super::auth::authorization(&parts.headers)
                .filter(|(scheme, _)| scheme == "bearer")
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
            if !ct_eq(sent.as_bytes(), token.as_bytes()) {
                let mut r = (StatusCode::UNAUTHORIZED, "send Authorization: Bearer <metrics_token>").into_response();
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
                return r;
            }
        }
        None => {
            let allowed =
                client_ip(&parts, &st.net.trusted_proxies).is_some_and(|ip| net::in_any(&st.net.metrics_allow, ip));
            if !allowed {
                return (StatusCode::FORBIDDEN, "metrics are not served to this address").into_response();
            }
        }
    }
    match &st.metrics {
        Some(h) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.render()).into_response(),
        None => (StatusCode::NOT_FOUND, "metrics recorder not installed").into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockRequest {
    pub advance_secs: Option<i64>,
    pub set: Option<DateTime<Utc>>,
}

/// Move the test clock. Only routed when `unsafe_test_clock` is on.
pub async fn move_clock(
    State(st): State<AppState>,
    super::extract::ApiJson(req): super::extract::ApiJson<ClockRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let clock = st.test_clock.as_ref().ok_or(Error::NotFound("route"))?;
    if let Some(at) = req.set {
        clock.set(at);
    }
    if let Some(s) = req.advance_secs {
        let d = Duration::try_seconds(s).ok_or_else(|| Error::invalid("advance_secs", "out of range"))?;
        clock.advance(d);
    }
    Ok(Json(json!({"now": st.svc.now()})))
}
