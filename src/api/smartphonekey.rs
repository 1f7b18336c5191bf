//! SmartphoneKey-compatible lock temp keys: `/locks/{id}/create-temp-key` and friends, and
//! collective keys (`/temp-keys`, also served as `/collective-temp-keys`).
//! Errors answer `{error, message, code, details: [{field, message}]}`; every invalid field of a
//! body gets its own details entry. Answers carry exactly SmartphoneKey's members: events are
//! rendered with [`project`] onto their closed shapes, actors as `user:<uuid>` or
//! `api_key:<uuid>` ([`surface_actor`]).

use super::AppState;
use super::auth::authenticate_parts;
use super::extract::{ClientAddr, is_json, parse_json, read_body};
use crate::core::share::{PUBLIC, Schedule, USER_WHITELIST, project, surface_actor};
use crate::error::Error;
use crate::service::Principal;
use crate::service::collective::{
    ACCESS_METHODS, CollectiveInput, DoorInput, MAX_COLLECTIVE_DOORS, MAX_LABEL, door_id, doors,
};
use crate::service::share::{ShareKeyChanges, ShareKeyInput, WriteResult, status};
use axum::Json;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// A refusal in SmartphoneKey's shape.
#[derive(Debug)]
pub enum SpkError {
    /// Several invalid fields at once.
    Invalid(Vec<(String, String)>),
    Other(Error),
}

impl From<Error> for SpkError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { field, message } => SpkError::Invalid(vec![(field, message)]),
            other => SpkError::Other(other),
        }
    }
}

impl IntoResponse for SpkError {
    fn into_response(self) -> Response {
        let (status, error, message, details, extra) = match self {
            SpkError::Invalid(d) => (
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "The request contains invalid parameters or malformed data".to_string(),
                Some(d),
                None,
            ),
            SpkError::Other(e) => {
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let (error, message) = match &e {
                    Error::Unauthenticated => (
                        "Unauthorized",
                        "Authentication required. Please provide a valid API token".to_string(),
                    ),
                    Error::Forbidden(m) => ("Forbidden", m.clone()),
                    Error::NotFound(what) => ("Not Found", format!("The {what} was not found")),
                    Error::Conflict(m) => ("Conflict", m.clone()),
                    Error::RateLimited { .. } => ("Too Many Requests", e.to_string()),
                    Error::Busy { .. } => ("Service Unavailable", e.to_string()),
                    Error::PayloadTooLarge => ("Payload Too Large", e.to_string()),
                    Error::UnsupportedMediaType(m) => {
                        ("Unsupported Media Type", format!("expected application/json: {m}"))
                    }
                    Error::Unavailable(d) => {
                        tracing::warn!(detail = d.as_str(), "database unavailable");
                        (
                            "Service Unavailable",
                            "the database is unavailable; try again shortly".to_string(),
                        )
                    }
                    Error::Internal(d) => {
                        tracing::error!(detail = d.as_str(), "internal error");
                        ("Internal Server Error", "internal error".to_string())
                    }
                    Error::Invalid { .. } => ("Bad Request", e.to_string()),
                };
                (status, error, message, None, Some(e))
            }
        };
        let mut body = json!({"error": error, "message": message, "code": status.as_u16()});
        if let Some(d) = details {
            body["details"] = d.into_iter().map(|(f, m)| json!({"field": f, "message": m})).collect();
        }
        let mut r = (status, Json(body)).into_response();
        match extra {
            Some(Error::Unauthenticated) => {
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Some(Error::RateLimited { retry_after_secs }) => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        r
    }
}

type SpkResult<T> = Result<T, SpkError>;

/// Collects every problem of a body before answering.
#[derive(Default)]
struct Check(Vec<(String, String)>);

impl Check {
    fn bad(&mut self, field: &str, msg: &str) {
        self.0.push((field.to_string(), msg.to_string()));
    }

    fn uuid(&mut self, obj: &Map<String, Value>, field: &str, required: bool) -> Option<Uuid> {
        match obj.get(field) {
            None | Some(Value::Null) => {
                if required {
                    self.bad(field, "is required");
                }
                None
            }
            Some(Value::String(s)) => Uuid::parse_str(s).ok().or_else(|| {
                self.bad(field, "must be a UUID");
                None
            }),
            Some(_) => {
                self.bad(field, "must be a UUID string");
                None
            }
        }
    }

    fn uuids(&mut self, obj: &Map<String, Value>, field: &str) -> Option<Vec<Uuid>> {
        match obj.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => {
                let mut out = vec![];
                for (i, it) in items.iter().enumerate() {
                    match it.as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                        Some(u) => out.push(u),
                        None => self.bad(&format!("{field}[{i}]"), "must be a UUID"),
                    }
                }
                if items.len() > 1000 {
                    self.bad(field, "at most 1000 users");
                }
                Some(out)
            }
            Some(_) => {
                self.bad(field, "must be an array of UUIDs");
                None
            }
        }
    }

    fn time(&mut self, obj: &Map<String, Value>, field: &str, required: bool) -> Option<DateTime<Utc>> {
        match obj.get(field) {
            None | Some(Value::Null) => {
                if required {
                    self.bad(field, "is required");
                }
                None
            }
            Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) => {
                    let t = t.with_timezone(&Utc);
                    if crate::service::check_time(field, Some(t)).is_err() {
                        self.bad(field, "must be between 1970-01-01 and 9999-12-31");
                        None
                    } else {
                        Some(t)
                    }
                }
                Err(_) => {
                    self.bad(field, "must be an RFC 3339 date-time such as 2024-12-25T10:00:00Z");
                    None
                }
            },
            Some(_) => {
                self.bad(field, "must be a date-time string");
                None
            }
        }
    }

    fn access_mode(&mut self, obj: &Map<String, Value>, required: bool) -> Option<String> {
        match obj.get("accessMode") {
            None | Some(Value::Null) => {
                if required {
                    self.bad("accessMode", "is required");
                }
                None
            }
            Some(Value::String(m)) if m == PUBLIC || m == USER_WHITELIST => Some(m.clone()),
            Some(_) => {
                self.bad("accessMode", "must be public or user-whitelist");
                None
            }
        }
    }

    /// `maxUses`: a positive integer, or null (the seed's string "null" counts as null).
    /// Outer `None`: absent.
    fn max_uses(&mut self, obj: &Map<String, Value>) -> Option<Option<i64>> {
        match obj.get("maxUses") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) if s == "null" => Some(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) if (1..=crate::service::MAX_USES).contains(&v) => Some(Some(v)),
                _ => {
                    self.bad("maxUses", "must be a positive integer or null");
                    None
                }
            },
            Some(_) => {
                self.bad("maxUses", "must be a positive integer or null");
                None
            }
        }
    }

    fn description(&mut self, obj: &Map<String, Value>) -> Option<String> {
        self.description_change(obj).flatten()
    }

    /// `description`: text of at most 2000 characters, or null. Outer `None`: absent.
    fn description_change(&mut self, obj: &Map<String, Value>) -> Option<Option<String>> {
        match obj.get("description") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(d)) if d.chars().count() <= crate::service::share::MAX_DESCRIPTION => {
                Some(Some(d.clone()))
            }
            Some(Value::String(_)) => {
                self.bad("description", "must be at most 2000 characters");
                None
            }
            Some(_) => {
                self.bad("description", "must be a string");
                None
            }
        }
    }

    /// `doors` of a collective key: 1 to 50 of `{lockId, label?, accessMethod?}`. `lockId` is a
    /// lock id as a string (SmartphoneKey's type) or a number; `accessMethod` defaults to `key`.
    fn doors(&mut self, obj: &Map<String, Value>) -> Vec<DoorInput> {
        let Some(Value::Array(items)) = obj.get("doors") else {
            self.bad("doors", "is required: a list of {lockId, label, accessMethod}");
            return vec![];
        };
        if items.is_empty() || items.len() > MAX_COLLECTIVE_DOORS {
            self.bad("doors", &format!("must list 1 to {MAX_COLLECTIVE_DOORS} doors"));
            return vec![];
        }
        let mut out = vec![];
        for (i, d) in items.iter().enumerate() {
            let Some(d) = d.as_object() else {
                self.bad(
                    &format!("doors[{i}]"),
                    "must be an object {lockId, label, accessMethod}",
                );
                continue;
            };
            let lock_id = match d.get("lockId") {
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
                _ => None,
            }
            .filter(|n: &i64| *n > 0);
            if lock_id.is_none() {
                self.bad(
                    &format!("doors[{i}].lockId"),
                    "must be a lock id: a positive integer, as a string or a number",
                );
            }
            let label = match d.get("label") {
                None | Some(Value::Null) => Some(None),
                Some(Value::String(l))
                    if !l.trim().is_empty() && l.chars().count() <= MAX_LABEL && !l.chars().any(char::is_control) =>
                {
                    Some(Some(l.clone()))
                }
                Some(_) => {
                    self.bad(
                        &format!("doors[{i}].label"),
                        "must be text of 1 to 120 characters without control characters",
                    );
                    None
                }
            };
            let method = match d.get("accessMethod") {
                None | Some(Value::Null) => Some("key"),
                Some(v) => v.as_str().filter(|m| ACCESS_METHODS.contains(m)),
            };
            if method.is_none() {
                self.bad(&format!("doors[{i}].accessMethod"), "must be key, code or both");
            }
            if let (Some(lock_id), Some(label), Some(method)) = (lock_id, label, method) {
                out.push(DoorInput {
                    lock_id,
                    label,
                    access_method: method.to_string(),
                });
            }
        }
        out
    }

    /// `schedule`: an object, or null to remove it. Outer `None`: absent.
    fn schedule(&mut self, obj: &Map<String, Value>) -> Option<Option<Schedule>> {
        match obj.get("schedule") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(v) => match Schedule::parse(v) {
                Ok(s) => Some(Some(s)),
                Err((f, m)) => {
                    self.bad(&f, &m);
                    None
                }
            },
        }
    }

    fn done(self) -> SpkResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(SpkError::Invalid(self.0))
        }
    }
}

async fn body_object(st: &AppState, req: Request) -> SpkResult<Map<String, Value>> {
    if !is_json(req.headers()) {
        return Err(Error::UnsupportedMediaType("Content-Type".into()).into());
    }
    let bytes = read_body(req.into_body(), st.settings.body_limit_bytes).await?;
    match parse_json::<Value>(&bytes)? {
        Value::Object(m) => Ok(m),
        _ => Err(Error::invalid("body", "must be a JSON object").into()),
    }
}

fn lock_id(raw: &str) -> SpkResult<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::invalid("id", "must be a positive integer (the lock id)").into())
}

pub(crate) async fn caller(st: &AppState, parts: &mut Parts) -> SpkResult<Principal> {
    Ok(authenticate_parts(st, parts).await?)
}

/// The caller, refused in SmartphoneKey's shape.
pub struct SpkAuth(pub Principal);

impl FromRequestParts<AppState> for SpkAuth {
    type Rejection = SpkError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        Ok(SpkAuth(caller(st, parts).await?))
    }
}

/// POST /locks/{id}/create-temp-key. The caller first (an anonymous request learns nothing about
/// the body's rules), then the whole body, so a malformed request gets the full list of problems.
pub async fn create(State(st): State<AppState>, Path(id): Path<String>, req: Request) -> SpkResult<Json<Value>> {
    let (mut parts, body) = req.into_parts();
    let p = caller(&st, &mut parts).await?;
    let obj = body_object(&st, Request::from_parts(parts, body)).await?;
    let mut c = Check::default();
    let lock = lock_id(&id)
        .map_err(|_| c.bad("id", "must be a positive integer (the lock id)"))
        .ok();
    let uuid = c.uuid(&obj, "tempKeyUuid", true);
    let mode = c.access_mode(&obj, true);
    let users = c.uuids(&obj, "allowedUserIds").unwrap_or_default();
    let from = c.time(&obj, "validFrom", true);
    let until = c.time(&obj, "validUntil", true);
    if let (Some(f), Some(u)) = (from, until) {
        if u <= f {
            c.bad("validUntil", "must be after validFrom");
        }
    }
    let max_uses = c.max_uses(&obj).flatten();
    let schedule = c.schedule(&obj).flatten();
    let description = c.description(&obj);
    c.done()?;
    let (Some(lock), Some(uuid), Some(mode), Some(from), Some(until)) = (lock, uuid, mode, from, until) else {
        return Err(Error::internal("validated fields missing").into());
    };
    let input = ShareKeyInput {
        uuid,
        access_mode: mode,
        allowed_user_ids: users,
        valid_from: from,
        valid_until: until,
        max_uses,
        description,
        schedule,
    };
    let w = st.svc.create_share_key(&p, lock, input).await?;
    let mut v = write_json(&w);
    v["tempKeyUuid"] = json!(uuid);
    Ok(Json(v))
}

/// The write answer: `{success, aggregateId, version, event: {type, data} | null}`, the event's
/// data rendered onto its closed shape.
pub fn write_json(w: &WriteResult) -> Value {
    let event = w
        .event
        .as_ref()
        .map(|e| json!({"type": e.event_type, "data": project(e.event_type, &e.data)}));
    json!({"success": true, "aggregateId": w.aggregate_id, "version": w.version, "event": event})
}

/// POST /locks/{id}/update-temp-key. Only what differs from the key is a change; nothing to
/// change answers the current version with `event: null`. `description` (which SmartphoneKey's
/// update does not take) is stored, a keygate extension, as is `schedule`.
pub async fn update(
    State(st): State<AppState>,
    Path(id): Path<String>,
    SpkAuth(p): SpkAuth,
    req: Request,
) -> SpkResult<Json<Value>> {
    let lock = lock_id(&id)?;
    let obj = body_object(&st, req).await?;
    let mut c = Check::default();
    let uuid = c.uuid(&obj, "tempKeyUuid", true);
    let changes = ShareKeyChanges {
        access_mode: c.access_mode(&obj, false),
        allowed_user_ids: c.uuids(&obj, "allowedUserIds"),
        valid_from: c.time(&obj, "validFrom", false),
        valid_until: c.time(&obj, "validUntil", false),
        max_uses: c.max_uses(&obj),
        schedule: c.schedule(&obj),
        description: c.description_change(&obj),
    };
    c.done()?;
    let uuid = uuid.ok_or_else(|| Error::invalid("tempKeyUuid", "is required"))?;
    Ok(Json(write_json(
        &st.svc.update_share_key(&p, lock, uuid, changes).await?,
    )))
}

/// POST /locks/{id}/delete-temp-key
pub async fn delete(
    State(st): State<AppState>,
    Path(id): Path<String>,
    SpkAuth(p): SpkAuth,
    req: Request,
) -> SpkResult<Json<Value>> {
    let lock = lock_id(&id)?;
    let obj = body_object(&st, req).await?;
    let mut c = Check::default();
    let uuid = c.uuid(&obj, "tempKeyUuid", true);
    c.done()?;
    let uuid = uuid.ok_or_else(|| Error::invalid("tempKeyUuid", "is required"))?;
    Ok(Json(write_json(&st.svc.delete_share_key(&p, lock, uuid).await?)))
}

/// POST /locks/{id}/use-temp-key
pub async fn use_key(
    State(st): State<AppState>,
    Path(id): Path<String>,
    SpkAuth(p): SpkAuth,
    req: Request,
) -> SpkResult<Json<Value>> {
    let lock = lock_id(&id)?;
    let obj = body_object(&st, req).await?;
    let mut c = Check::default();
    let uuid = c.uuid(&obj, "tempKeyUuid", true);
    let user = c.uuid(&obj, "userId", false);
    c.done()?;
    let uuid = uuid.ok_or_else(|| Error::invalid("tempKeyUuid", "is required"))?;
    Ok(Json(write_json(&st.svc.use_share_key(&p, lock, uuid, user).await?)))
}

fn iso(t: Option<DateTime<Utc>>) -> Value {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)).into()
}

/// GET /locks/{id}/temp-keys
pub async fn list(State(st): State<AppState>, Path(id): Path<String>, SpkAuth(p): SpkAuth) -> SpkResult<Json<Value>> {
    let lock_id = lock_id(&id)?;
    let (lock, keys) = st.svc.list_share_keys(&p, lock_id).await?;
    let now = st.svc.now();
    let items: Vec<Value> = keys
        .iter()
        .map(|c| {
            json!({
                "uuid": c.id,
                "lockId": lock.id,
                "lockUuid": lock.uuid,
                "accessMode": c.subject.get("access_mode"),
                "allowedUserIds": c.subject.get("allowed_user_ids"),
                "validFrom": iso(c.not_before),
                "validUntil": iso(c.expires_at),
                "maxUses": c.max_uses,
                "usedCount": c.used_count,
                "createdAt": iso(Some(c.created_at)),
                "createdBy": surface_actor(&c.created_by),
                "status": status(c, now),
            })
        })
        .collect();
    Ok(Json(json!({"tempKeys": items})))
}

/// Where a guest opens a key: the configured public URL, else this request's host.
fn guest_url(st: &AppState, headers: &axum::http::HeaderMap, uuid: uuid::Uuid) -> String {
    let base = match &st.settings.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)))
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    format!("{base}/temp-keys/{uuid}")
}

/// A collective key's doors as SmartphoneKey shows them: `[{id, lockId (a string), lockUuid,
/// label, accessMethod}]`.
fn doors_json(doors: &[(i64, &Value)]) -> Value {
    doors
        .iter()
        .map(|(id, d)| {
            let lock_id = d.get("lockId").and_then(Value::as_i64).map(|l| l.to_string());
            json!({
                "id": id, "lockId": lock_id, "lockUuid": d.get("lockUuid"),
                "label": d.get("label").cloned().unwrap_or(Value::Null),
                "accessMethod": d.get("accessMethod"),
            })
        })
        .collect()
}

fn collective_json(st: &AppState, headers: &axum::http::HeaderMap, c: &crate::core::credential::Credential) -> Value {
    json!({
        "uuid": c.id,
        "url": guest_url(st, headers, c.id),
        "validFrom": iso(c.not_before),
        "validUntil": iso(c.expires_at),
        "description": c.metadata.get("description").cloned().unwrap_or(Value::Null),
        "createdBy": surface_actor(&c.created_by),
        "createdAt": iso(Some(c.created_at)),
        "revokedAt": iso(c.revoked_at),
        "doors": doors_json(&doors(c)),
    })
}

/// POST /temp-keys (and /collective-temp-keys): a collective key over several doors -> 201
/// `{success, uuid, url, validFrom, validUntil, doors, pin}`; the PIN is shown only here, and is
/// null when no door takes one.
pub async fn create_collective(State(st): State<AppState>, req: Request) -> SpkResult<Response> {
    let (mut parts, body) = req.into_parts();
    let p = caller(&st, &mut parts).await?;
    let obj = body_object(&st, Request::from_parts(parts.clone(), body)).await?;
    let mut c = Check::default();
    let from = c.time(&obj, "validFrom", true);
    let until = c.time(&obj, "validUntil", true);
    if let (Some(f), Some(u)) = (from, until) {
        if u <= f {
            c.bad("validUntil", "must be after validFrom");
        }
    }
    let description = c.description(&obj);
    let doors_in = c.doors(&obj);
    c.done()?;
    let (Some(from), Some(until)) = (from, until) else {
        return Err(Error::internal("validated fields missing").into());
    };
    let input = CollectiveInput {
        valid_from: from,
        valid_until: until,
        description,
        doors: doors_in,
    };
    let created = st.svc.create_collective_key(&p, input).await?;
    let uuid = created.write.aggregate_id;
    let data = created.write.event.as_ref().map(|e| &e.data);
    let stored_doors: Vec<(i64, &Value)> = data
        .and_then(|d| d.get("doors"))
        .and_then(Value::as_array)
        .map(|ds| ds.iter().enumerate().map(|(i, d)| (door_id(d, i), d)).collect())
        .unwrap_or_default();
    let v = json!({
        "success": true,
        "uuid": uuid,
        "url": guest_url(&st, &parts.headers, uuid),
        "validFrom": data.and_then(|d| d.get("validFrom")),
        "validUntil": data.and_then(|d| d.get("validUntil")),
        "doors": doors_json(&stored_doors),
        "pin": created.pin,
    });
    let mut r = (StatusCode::CREATED, Json(v)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// GET /temp-keys (and /collective-temp-keys): `{"tempKeys": [...]}`, the live collective keys
/// the caller created, or with `?lockId=` every one with a door on that lock (never their PINs).
pub async fn list_collective(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    SpkAuth(p): SpkAuth,
) -> SpkResult<Json<Value>> {
    let mut lock = None;
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if k == "lockId" {
            lock = Some(lock_id(&v).map_err(|_| Error::invalid("lockId", "must be a lock id (a positive integer)"))?);
        }
    }
    let keys = st.svc.list_collective_keys(&p, lock).await?;
    let items: Vec<Value> = keys.iter().map(|c| collective_json(&st, &headers, c)).collect();
    Ok(Json(json!({"tempKeys": items})))
}

/// DELETE /temp-keys/{uuid} (and /collective-temp-keys/{uuid}): `{success, alreadyRevoked}`.
pub async fn delete_collective(
    State(st): State<AppState>,
    Path(uuid): Path<String>,
    SpkAuth(p): SpkAuth,
) -> SpkResult<Json<Value>> {
    let uuid = uuid::Uuid::parse_str(&uuid).map_err(|_| Error::NotFound("temp key"))?;
    let d = st.svc.delete_collective_key(&p, uuid).await?;
    Ok(Json(json!({"success": true, "alreadyRevoked": d.write.is_none()})))
}

/// The one answer to every refused PIN, so a PIN (or a lock id) cannot be probed.
fn pin_refused() -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({"error": "Invalid PIN"}))).into_response()
}

/// POST /locks/{id}/open-with-pin `{"pin": "<4 to 8 digits>", "doorId"?}`: no authentication
/// (an entrance panel). 200 `{success, offline}` when a collective key with a `code` door on
/// this lock takes the PIN (`offline` is always false: keygate queues nothing for a device);
/// `{"error": "Invalid PIN"}` with 401 for every refusal; 429 with Retry-After after repeated
/// failures per lock and per source; 400 for a malformed PIN or body.
pub async fn open_with_pin(
    State(st): State<AppState>,
    Path(id): Path<String>,
    ClientAddr(src): ClientAddr,
    req: Request,
) -> Response {
    let result = async {
        let lock = lock_id(&id)?;
        let obj = body_object(&st, req).await?;
        let mut c = Check::default();
        let pin = match obj.get("pin") {
            Some(Value::String(p)) if (4..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.clone())
            }
            _ => {
                c.bad("pin", "must be a string of 4 to 8 digits");
                None
            }
        };
        let door = match obj.get("doorId") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_i64() {
                Some(d) => Some(d),
                None => {
                    c.bad("doorId", "must be an integer");
                    None
                }
            },
        };
        c.done()?;
        let pin = pin.ok_or_else(|| Error::internal("validated pin missing"))?;
        Ok::<_, SpkError>(st.svc.open_with_pin(lock, &pin, door, &src).await)
    }
    .await;
    match result {
        Err(e) => e.into_response(),
        Ok(Ok(_)) => Json(json!({"success": true, "offline": false})).into_response(),
        Ok(Err(Error::Unauthenticated)) => pin_refused(),
        Ok(Err(e)) => SpkError::from(e).into_response(),
    }
}
