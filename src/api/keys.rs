//! `/v1/keys`: create, verify, use, list, get, revoke.

use super::auth::Auth;
use super::doc::schema;
use super::extract::{ApiJson, ApiQuery, OptionalJson, parse_uuid};
use super::json_out::{self, wire_time};
use super::{ApiError, ApiResult, AppState, ErrorBody};
use crate::core::credential::{Code, Credential, Kind};
use crate::error::Error;
use crate::service::{NewKey, Verification};
use crate::store::CredentialFilter;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
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
    #[serde(serialize_with = "wire_time::opt")]
    pub not_before: Option<DateTime<Utc>>,
    #[serde(serialize_with = "wire_time::opt")]
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i64>,
    pub used_count: i64,
    /// Uses left, when limited.
    pub remaining: Option<i64>,
    pub allowed_users: Vec<Uuid>,
    /// What the key is bound to (a share key's lock, a temporary key's target); null when it is
    /// bound to nothing.
    #[schema(value_type = Option<Object>, required = true)]
    pub subject: serde_json::Value,
    /// The key's metadata; `{}` when it has none.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    #[serde(serialize_with = "wire_time::one")]
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    #[serde(serialize_with = "wire_time::one")]
    pub updated_at: DateTime<Utc>,
    #[serde(serialize_with = "wire_time::opt")]
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
}

/// Uses left, when limited (never below zero).
fn remaining(c: &Credential) -> Option<i64> {
    c.max_uses.map(|m| m.saturating_sub(c.used_count).max(0))
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
            remaining: remaining(c),
            allowed_users: c.allowed_users.clone(),
            subject: c.subject.clone(),
            metadata: match &c.metadata {
                serde_json::Value::Object(_) => c.metadata.clone(),
                _ => serde_json::json!({}),
            },
            created_at: c.created_at,
            created_by: c.created_by.clone(),
            updated_at: c.updated_at,
            revoked_at: c.revoked_at,
            revoked_by: c.revoked_by.clone(),
        }
    }
}

/// `POST /v1/keys`. Its document (`create_key_schema`) is one schema per kind, since each kind
/// takes its own members.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// Default `api`.
    pub kind: Option<Kind>,
    pub name: String,
    pub owner: Option<Uuid>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "super::whole::opt_i64")]
    pub max_uses: Option<i64>,
    #[serde(default)]
    pub allowed_users: Vec<Uuid>,
    #[serde(default)]
    pub subject: serde_json::Value,
    #[serde(default)]
    pub metadata: serde_json::Value,
}

/// A stand-in: the document holds `create_key_schema` (`doc::to_json`), which utoipa's model
/// cannot.
impl utoipa::PartialSchema for CreateKeyRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new().into()
    }
}

impl ToSchema for CreateKeyRequest {}

/// One schema per kind, each with exactly the members that kind takes (`service::keys`). What a
/// schema cannot say is in the descriptions: that `expires_at` must lie ahead (except for a
/// temporary key), `not_before` before it, `owner` and `allowed_users` name users of the
/// organization, a share key's lock exists, and a schedule's `from` comes before its `until`.
pub fn create_key_schema() -> serde_json::Value {
    use serde_json::json;
    let name = serde_json::to_value(schema::name()).unwrap_or_default();
    let date_time = schema::date_time_json(false);
    let date_time_or_null = schema::date_time_json(true);
    let none_or_null = json!({"type": "null"});
    let no_items = json!({"type": "array", "items": {}, "maxItems": 0});
    let users = json!({"type": "array", "items": {"type": "string", "format": "uuid"}, "maxItems": 1000,
        "description": "When non-empty, only these users (of the organization) may use the key."});
    let max_uses = json!({"type": ["integer", "null"], "minimum": 1, "maximum": 1_000_000_000,
        "description": "1 to 1,000,000,000; absent or null for unlimited."});
    let owner = json!({"type": ["string", "null"], "format": "uuid",
        "description": "The owner, a user of the organization (administrators only); default: the caller."});
    let self_owner = json!({"type": ["string", "null"], "format": "uuid",
        "description": "Only the caller itself: the key belongs to whoever creates it."});
    let int32 = json!({"type": ["integer", "null"], "minimum": 0, "maximum": i32::MAX});
    let api = json!({
        "title": "api",
        "description": "A native key (the default kind).",
        "type": "object",
        "required": ["name"],
        "additionalProperties": false,
        "properties": {
            "kind": {"enum": ["api", null]},
            "name": name,
            "owner": owner,
            "scopes": schema::scopes(),
            "not_before": date_time_or_null,
            "expires_at": date_time_or_null,
            "max_uses": max_uses,
            "allowed_users": users,
            "subject": {"type": ["object", "null"], "description": "What the key is bound to; null: nothing."},
            "metadata": {"type": ["object", "null"], "description": "At most 16 KiB as JSON; null: none."},
        },
    });
    let mut personal_name = name.clone();
    personal_name["maxLength"] = json!(crate::service::personal::MAX_NAME_CHARS);
    let personal = json!({
        "title": "personal",
        "description": "A personal access key of the calling user (not an API key), as the Tedee surface makes \
            it: `expires_at` at most 5 years ahead, `scopes` from the catalogue.",
        "type": "object",
        "required": ["kind", "name", "expires_at"],
        "additionalProperties": false,
        "properties": {
            "kind": {"const": "personal"},
            "name": personal_name,
            "owner": self_owner,
            "scopes": {"type": "array", "minItems": 1, "maxItems": crate::service::MAX_SCOPES,
                "items": {"type": "string", "pattern": schema::personal_scope_pattern()}},
            "not_before": none_or_null,
            "expires_at": date_time,
            "max_uses": none_or_null,
            "allowed_users": no_items,
            "subject": none_or_null,
            "metadata": none_or_null,
        },
    });
    let temporary = json!({
        "title": "temporary",
        "description": "A SuperOffice temporary key (an expiry in the past is taken: the key checks as expired).",
        "type": "object",
        "required": ["kind", "name", "expires_at", "subject"],
        "additionalProperties": false,
        "properties": {
            "kind": {"const": "temporary"},
            "name": name,
            "owner": self_owner,
            "scopes": no_items,
            "not_before": none_or_null,
            "expires_at": date_time,
            "max_uses": none_or_null,
            "allowed_users": no_items,
            "subject": {
                "type": "object",
                "required": ["domain"],
                "additionalProperties": false,
                "properties": {
                    "domain": {
                        "description": "A TemporaryKeyDomain: its name (any case) or number.",
                        "oneOf": [
                            {"type": "string", "pattern": schema::domain_pattern()},
                            {"type": "integer", "minimum": 0, "maximum": 7},
                        ],
                    },
                    "target_id": int32,
                    "person_id": int32,
                },
            },
            "metadata": {
                "type": ["object", "null"],
                "additionalProperties": false,
                "properties": {
                    "payload": {"type": ["string", "null"], "maxLength": crate::service::temporary::MAX_PAYLOAD_CHARS},
                },
            },
        },
    });
    let share = json!({
        "title": "share",
        "description": "A share key of a lock (collective keys are made with `POST /temp-keys`); public when \
            `allowed_users` is empty. Valid from `not_before` (default: now) until `expires_at`.",
        "type": "object",
        "required": ["kind", "name", "expires_at", "subject"],
        "additionalProperties": false,
        "properties": {
            "kind": {"const": "share"},
            "name": name,
            "owner": self_owner,
            "scopes": no_items,
            "not_before": date_time_or_null,
            "expires_at": date_time,
            "max_uses": max_uses,
            "allowed_users": users,
            "subject": {
                "type": "object",
                "required": ["lock_id"],
                "additionalProperties": false,
                "properties": {
                    "lock_id": {"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX,
                        "description": "A lock of the organization."},
                    "schedule": schema::schedule_json(),
                },
            },
            "metadata": {
                "type": ["object", "null"],
                "additionalProperties": false,
                "properties": {
                    "description": {"type": ["string", "null"], "maxLength": crate::service::share::MAX_DESCRIPTION},
                },
            },
        },
    });
    json!({"oneOf": [api, personal, temporary, share]})
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
#[utoipa::path(post, path = "/v1/keys", tag = "keys", operation_id = "create_key", request_body = CreateKeyRequest,
    responses((status = 201, description = "The key, with its secret (once).", body = CreatedKey),
        (status = 404, description = "The share key's lock does not exist in the organization.", body = ErrorBody)))]
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
        subject: super::whole::members(req.subject),
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
    /// The secret to check: 1 to 1024 characters.
    #[schema(min_length = 1, max_length = 1024)]
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

/// The answer's schema and `serde` form; [`VerifyJson`] writes the same bytes straight from the
/// [`Verification`] (the tests hold them equal).
impl From<&Verification> for VerifyResponse {
    fn from(v: &Verification) -> Self {
        VerifyResponse {
            valid: v.code.is_valid(),
            code: v.code,
            key: v.credential.as_deref().map(KeyView::from),
        }
    }
}

/// What verify and use answer, as `Json(VerifyResponse::from(&v))` would send it
/// (`application/json`, the same bytes), but written from the credential itself (often the
/// credential cache's own, shared: no copy of its strings, lists and JSON values per answer),
/// into a buffer sized for a typical answer up front: `Json` starts at 128 bytes and grew (and
/// copied) three times per answer.
pub struct VerifyJson(pub Verification);

/// Room for a verify answer with a key of ordinary name, scopes and metadata.
const VERIFY_ANSWER_BYTES: usize = 1024;

impl IntoResponse for VerifyJson {
    fn into_response(self) -> Response {
        json_out::answer(VERIFY_ANSWER_BYTES, "the verify answer", |out| {
            answer_json::verify(&self.0, out)
        })
        .unwrap_or_else(|e| ApiError(e).into_response())
    }
}

/// The verify answer's JSON written member by member with [`json_out`]: the same bytes as
/// `serde_json` writes from the derived `Serialize` (the tests hold them equal); it saved 6% of a
/// verify's instructions.
mod answer_json {
    use super::{Verification, remaining};
    use crate::api::json_out::{Out, int, list, opt, opt_time, string, time, uuid};
    use crate::core::credential::Credential;

    pub(super) fn verify(v: &Verification, out: &mut Out) -> serde_json::Result<()> {
        out.extend_from_slice(if v.code.is_valid() {
            b"{\"valid\":true,\"code\":\""
        } else {
            b"{\"valid\":false,\"code\":\""
        });
        out.extend_from_slice(v.code.as_str().as_bytes());
        out.extend_from_slice(b"\",\"key\":");
        opt(v.credential.as_deref(), out, key)?;
        out.push(b'}');
        Ok(())
    }

    /// A [`super::KeyView`]'s members, in its order, from the credential.
    fn key(k: &Credential, out: &mut Out) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"id\":");
        uuid(k.id, out)?;
        out.extend_from_slice(b",\"kind\":\"");
        out.extend_from_slice(k.kind.as_str().as_bytes());
        out.extend_from_slice(b"\",\"name\":");
        string(&k.name, out)?;
        out.extend_from_slice(b",\"prefix\":");
        string(&k.prefix, out)?;
        out.extend_from_slice(b",\"owner_id\":");
        opt(k.owner_id, out, uuid)?;
        out.extend_from_slice(b",\"scopes\":");
        list(k.scopes.iter().map(String::as_str), out, string)?;
        out.extend_from_slice(b",\"not_before\":");
        opt_time(k.not_before.as_ref(), out)?;
        out.extend_from_slice(b",\"expires_at\":");
        opt_time(k.expires_at.as_ref(), out)?;
        out.extend_from_slice(b",\"max_uses\":");
        opt(k.max_uses, out, int)?;
        out.extend_from_slice(b",\"used_count\":");
        int(k.used_count, out)?;
        out.extend_from_slice(b",\"remaining\":");
        opt(remaining(k), out, int)?;
        out.extend_from_slice(b",\"allowed_users\":");
        list(k.allowed_users.iter().copied(), out, uuid)?;
        out.extend_from_slice(b",\"subject\":");
        serde_json::to_writer(&mut *out, &k.subject)?;
        out.extend_from_slice(b",\"metadata\":");
        if k.metadata.is_object() {
            serde_json::to_writer(&mut *out, &k.metadata)?;
        } else {
            out.extend_from_slice(b"{}");
        }
        out.extend_from_slice(b",\"created_at\":");
        time(&k.created_at, out)?;
        out.extend_from_slice(b",\"created_by\":");
        string(&k.created_by, out)?;
        out.extend_from_slice(b",\"updated_at\":");
        time(&k.updated_at, out)?;
        out.extend_from_slice(b",\"revoked_at\":");
        opt_time(k.revoked_at.as_ref(), out)?;
        out.extend_from_slice(b",\"revoked_by\":");
        opt(k.revoked_by.as_deref(), out, string)?;
        out.push(b'}');
        Ok(())
    }
}

const MAX_PRESENTED_KEY: usize = 1024;

/// Check a key. Always 200 with a reason code; a key of another organization is NOT_FOUND.
#[utoipa::path(post, path = "/v1/keys/verify", tag = "keys", operation_id = "verify_key", request_body = VerifyRequest,
    responses((status = 200, description = "The verdict; `key` is null when the code is NOT_FOUND.", body = VerifyResponse)))]
pub async fn verify(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> ApiResult<VerifyJson> {
    if req.key.is_empty() || req.key.chars().count() > MAX_PRESENTED_KEY {
        return Err(Error::invalid("key", format!("must be 1 to {MAX_PRESENTED_KEY} characters")).into());
    }
    let v = st
        .svc
        .verify_key(&p, &req.key, req.scope, req.user, req.consume)
        .await?;
    Ok(VerifyJson(v))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UseRequest {
    pub scope: Option<String>,
    pub user: Option<Uuid>,
}

/// Consume one use of a key. Exact under concurrency: a key with max_uses N succeeds N times.
#[utoipa::path(post, path = "/v1/keys/{id}/use", tag = "keys", operation_id = "use_key", params(("id" = Uuid, Path)),
    request_body(content = Option<UseRequest>, description = "Optional: an empty body, or `null`, is `{}`."),
    responses((status = 200, description = "The verdict, as verify answers it.", body = VerifyResponse),
        (status = 404, description = "No such key in the organization, or not the caller's.", body = ErrorBody)))]
pub async fn use_key(
    State(st): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<UseRequest>,
) -> ApiResult<VerifyJson> {
    let id = parse_uuid("id", &id)?;
    let v = st.svc.use_key(&p, id, req.scope, req.user).await?;
    Ok(VerifyJson(v))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub kind: Option<Kind>,
    /// Owner user id.
    pub owner: Option<Uuid>,
    /// 1 to 500, default 100.
    #[param(minimum = 1, maximum = 500)]
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
#[utoipa::path(get, path = "/v1/keys", tag = "keys", operation_id = "list_keys", params(ListQuery),
    responses((status = 200, description = "One page of keys, oldest first.", body = KeyPage)))]
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

/// One key; a revoked key answers 404, as after any DELETE (the list still shows it).
#[utoipa::path(get, path = "/v1/keys/{id}", tag = "keys", operation_id = "get_key", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The key.", body = KeyView),
        (status = 404, description = "No such key in the organization, not the caller's, or revoked (`DELETE`).", body = ErrorBody)))]
pub async fn get(State(st): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<KeyView>> {
    let id = parse_uuid("id", &id)?;
    Ok(Json(KeyView::from(&st.svc.get_key(&p, id).await?)))
}

/// Revoke a key; it stops working at once. Revoking twice is harmless.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", operation_id = "revoke_key", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The revoked key.", body = KeyView),
        (status = 404, description = "No such key in the organization, or not the caller's.", body = ErrorBody)))]
pub async fn revoke(State(st): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<KeyView>> {
    let id = parse_uuid("id", &id)?;
    Ok(Json(KeyView::from(&st.svc.revoke_key(&p, id).await?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};

    /// The verify answer's response is `Json`'s: status, headers and bytes.
    #[tokio::test]
    async fn verify_json_answers_as_json_does() {
        let at = |nano| {
            Utc.from_utc_datetime(
                &NaiveDate::from_ymd_opt(2026, 12, 2)
                    .unwrap()
                    .and_hms_nano_opt(16, 29, 46, nano)
                    .unwrap(),
            )
        };
        let credential = |metadata| Credential {
            id: Uuid::from_u128(1),
            org_id: Uuid::from_u128(2),
            kind: Kind::Api,
            owner_id: Some(Uuid::from_u128(3)),
            name: "na\"me ✓\n".into(),
            prefix: "kg_1234".into(),
            hash: vec![1, 2, 3],
            scopes: vec!["read".into(), "write".into()],
            not_before: Some(at(1_000)),
            expires_at: None,
            max_uses: Some(5),
            used_count: 2,
            allowed_users: vec![Uuid::from_u128(4)],
            subject: serde_json::json!({"domain": "PublicFaq", "target_id": 7}),
            metadata,
            created_at: at(0),
            created_by: "user:1".into(),
            updated_at: at(123_456_789),
            updated_by: "user:1".into(),
            revoked_at: Some(at(5_000_000)),
            revoked_by: Some("api_key:9".into()),
        };
        // Metadata that is no object is answered as `{}`, as the view shows it.
        for metadata in [serde_json::json!({"note": "x".repeat(2000)}), serde_json::Value::Null] {
            let answer = || Verification {
                code: Code::Valid,
                credential: Some(std::sync::Arc::new(credential(metadata.clone()))),
            };
            let ours = VerifyJson(answer()).into_response();
            let theirs = Json(VerifyResponse::from(&answer())).into_response();
            assert_eq!(ours.status(), theirs.status());
            assert_eq!(ours.headers(), theirs.headers());
            let ours = axum::body::to_bytes(ours.into_body(), usize::MAX).await.unwrap();
            let theirs = axum::body::to_bytes(theirs.into_body(), usize::MAX).await.unwrap();
            assert_eq!(ours, theirs);
            let ours: serde_json::Value = serde_json::from_slice(&ours).unwrap();
            assert!(ours["key"]["metadata"].is_object(), "{metadata}");
            assert_eq!(ours["key"]["remaining"], 3);
        }
        let empty = Verification {
            code: Code::NotFound,
            credential: None,
        };
        let ours = axum::body::to_bytes(VerifyJson(empty).into_response().into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&ours[..], br#"{"valid":false,"code":"NOT_FOUND","key":null}"#);
    }

    proptest::proptest! {
        /// The hand-written verify answer is serde_json's of the view, byte for byte, for any strings
        /// (quotes, backslashes, control characters, any Unicode), numbers, timestamps, JSON values
        /// and metadata that is no object.
        #[test]
        fn the_verify_answer_is_serde_jsons(
            name in "\\PC*|[\"\\\\\u{0}-\u{1f}\u{7f}a-z✓]{0,12}",
            prefix in ".{0,8}",
            scopes in proptest::collection::vec("[a-z.\"\\\\\n]{0,6}", 0..3),
            by in ".{0,12}",
            revoked_by in proptest::option::of(".{0,6}"),
            counts in (proptest::option::of(proptest::num::i64::ANY), proptest::num::i64::ANY),
            secs in (-62_135_596_800i64..253_402_300_799, 0u32..2_000_000_000),
            valid: bool,
            note in ".{0,6}",
            metadata_is_object: bool,
            ids in (proptest::num::u128::ANY, proptest::option::of(proptest::num::u128::ANY)),
        ) {
            let at = chrono::DateTime::from_timestamp(secs.0, secs.1 % 1_000_000_000).unwrap();
            let credential = Credential {
                id: Uuid::from_u128(ids.0),
                org_id: Uuid::from_u128(ids.0 ^ 1),
                kind: Kind::Share,
                owner_id: ids.1.map(Uuid::from_u128),
                name,
                prefix,
                hash: vec![7; 32],
                scopes,
                not_before: Some(at),
                expires_at: if valid { None } else { Some(at) },
                max_uses: counts.0,
                used_count: counts.1,
                allowed_users: ids.1.map(Uuid::from_u128).into_iter().collect(),
                subject: serde_json::json!({"n": note, "x": [1, 2.5, null]}),
                metadata: if metadata_is_object { serde_json::json!({"note": note}) } else { serde_json::json!(note) },
                created_at: at,
                created_by: by.clone(),
                updated_at: at,
                updated_by: by,
                revoked_at: revoked_by.as_ref().map(|_| at),
                revoked_by,
            };
            let v = Verification {
                code: if valid { Code::Valid } else { Code::Expired },
                credential: Some(std::sync::Arc::new(credential)),
            };
            let mut ours = vec![];
            answer_json::verify(&v, &mut ours).unwrap();
            proptest::prop_assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&VerifyResponse::from(&v)).unwrap()
            );
        }
    }
}
