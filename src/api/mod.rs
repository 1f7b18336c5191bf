//! The HTTP front: shared state, the native error shape, authentication, and the router.

pub mod admin;
pub mod auth;
pub mod doc;
pub mod events;
pub mod extract;
pub mod guest;
pub mod json_out;
pub mod keys;
pub mod locks;
pub mod login;
pub mod pages;
pub mod smartphonekey;
pub mod superoffice;
pub mod system;
pub mod tedee;
pub mod whole;
pub mod xml;

use crate::clock::ManualClock;
use crate::config::Settings;
use crate::core::net::Cidr;
use crate::error::Error;
use crate::service::Service;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use std::sync::Arc;

/// What every handler reads. axum clones it for each request that takes `State`, so it is one
/// reference count ([`AppShared`] behind an `Arc`) rather than one per field.
#[derive(Clone)]
pub struct AppState(Arc<AppShared>);

impl AppState {
    pub fn new(shared: AppShared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppShared;
    fn deref(&self) -> &AppShared {
        &self.0
    }
}

pub struct AppShared {
    pub svc: Arc<Service>,
    pub settings: Arc<Settings>,
    pub metrics: Option<PrometheusHandle>,
    pub test_clock: Option<Arc<ManualClock>>,
    /// The address ranges the settings name, parsed once.
    pub net: Arc<NetPolicy>,
    /// The server's time zone (`time_zone`, SuperOffice's answers), parsed once.
    pub server_tz: chrono_tz::Tz,
}

/// Address ranges from the settings: proxies trusted to name the client, and who may read
/// `/metrics` without a token.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    pub trusted_proxies: Vec<Cidr>,
    pub metrics_allow: Vec<Cidr>,
}

impl NetPolicy {
    pub fn from_settings(s: &Settings) -> Result<Self, String> {
        Ok(NetPolicy {
            trusted_proxies: s.trusted_proxies()?,
            metrics_allow: s.metrics_allow()?,
        })
    }
}

/// The native error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `invalid_request`, `unauthenticated`, `not_found`.
    pub error: String,
    /// Human-readable explanation. Never contains a secret.
    pub message: String,
    /// The offending input, for `invalid_request`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The service error as the native API answers it.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (message, field) = match &e {
            Error::Invalid { field, message } => (message.clone(), Some(field.clone())),
            Error::Internal(detail) => {
                tracing::error!(detail, "internal error");
                ("internal error".to_string(), None)
            }
            Error::Unavailable(detail) => {
                tracing::warn!(detail, "database unavailable");
                ("the database is unavailable; try again shortly".to_string(), None)
            }
            other => (other.to_string(), None),
        };
        let mut resp = (
            status,
            Json(ErrorBody {
                error: e.code().to_string(),
                message,
                field,
            }),
        )
            .into_response();
        let h = resp.headers_mut();
        match e {
            Error::Unauthenticated => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"keygate\", Bearer"),
                );
            }
            Error::RateLimited { retry_after_secs } | Error::Busy { retry_after_secs } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    h.insert(header::RETRY_AFTER, v);
                }
            }
            Error::Unavailable(_) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
