//! SmartphoneKey share keys ("temp keys") are event-sourced: this fold rebuilds a key's state
//! from its events alone. The projection the service queries (a credentials row) must always
//! equal what this fold gives.

use super::credential::Credential;
use super::event::Event;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

pub const TEMP_KEY_CREATED: &str = "TempKeyCreated";
pub const TEMP_KEY_UPDATED: &str = "TempKeyUpdated";
pub const TEMP_KEY_DELETED: &str = "TempKeyDeleted";
pub const TEMP_KEY_USED: &str = "TempKeyUsed";
pub const AGGREGATE: &str = "temp_key";

pub const PUBLIC: &str = "public";
pub const USER_WHITELIST: &str = "user-whitelist";

/// A share key's state.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareState {
    pub uuid: Uuid,
    pub lock_id: i64,
    pub lock_uuid: Uuid,
    pub access_mode: String,
    pub allowed_user_ids: Vec<Uuid>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub max_uses: Option<i64>,
    pub used_count: i64,
    pub description: Option<String>,
    pub deleted: bool,
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

fn uuids(v: &Value) -> Option<Vec<Uuid>> {
    v.as_array()?
        .iter()
        .map(|u| u.as_str().and_then(|s| Uuid::parse_str(s).ok()))
        .collect()
}

/// Apply `changes` (the members of a create or an update) to a state.
fn apply(s: &mut ShareState, d: &Value) {
    if let Some(m) = d.get("accessMode").and_then(Value::as_str) {
        s.access_mode = m.to_string();
    }
    if let Some(u) = d.get("allowedUserIds").and_then(uuids) {
        s.allowed_user_ids = u;
    }
    if let Some(t) = d.get("validFrom").and_then(time) {
        s.valid_from = t;
    }
    if let Some(t) = d.get("validUntil").and_then(time) {
        s.valid_until = t;
    }
    if let Some(m) = d.get("maxUses") {
        s.max_uses = m.as_i64();
    }
    if let Some(desc) = d.get("description") {
        s.description = desc.as_str().map(str::to_string);
    }
}

/// Rebuild a share key from its events (oldest first). `None` if they do not start with a creation.
pub fn fold(events: &[Event]) -> Option<ShareState> {
    let mut it = events.iter();
    let first = it.next()?;
    if first.event_type != TEMP_KEY_CREATED {
        return None;
    }
    let d = &first.data;
    let mut s = ShareState {
        uuid: d
            .get("tempKeyUuid")
            .and_then(Value::as_str)
            .and_then(|u| Uuid::parse_str(u).ok())?,
        lock_id: d.get("lockId").and_then(Value::as_i64)?,
        lock_uuid: d
            .get("lockUuid")
            .and_then(Value::as_str)
            .and_then(|u| Uuid::parse_str(u).ok())?,
        access_mode: String::new(),
        allowed_user_ids: vec![],
        valid_from: time(d.get("validFrom")?)?,
        valid_until: time(d.get("validUntil")?)?,
        max_uses: None,
        used_count: 0,
        description: None,
        deleted: false,
    };
    apply(&mut s, d);
    for e in it {
        match e.event_type.as_str() {
            TEMP_KEY_UPDATED => {
                if let Some(c) = e.data.get("changes") {
                    apply(&mut s, c);
                }
            }
            TEMP_KEY_USED => {
                s.used_count = e
                    .data
                    .get("usedCount")
                    .and_then(Value::as_i64)
                    .unwrap_or(s.used_count + 1);
            }
            TEMP_KEY_DELETED => s.deleted = true,
            _ => {}
        }
    }
    Some(s)
}

impl ShareState {
    /// The state a projection row holds.
    pub fn from_credential(c: &Credential) -> Option<ShareState> {
        let sub = &c.subject;
        Some(ShareState {
            uuid: c.id,
            lock_id: sub.get("lock_id").and_then(Value::as_i64)?,
            lock_uuid: sub
                .get("lock_uuid")
                .and_then(Value::as_str)
                .and_then(|u| Uuid::parse_str(u).ok())?,
            access_mode: sub.get("access_mode").and_then(Value::as_str)?.to_string(),
            allowed_user_ids: sub.get("allowed_user_ids").and_then(uuids).unwrap_or_default(),
            valid_from: c.not_before?,
            valid_until: c.expires_at?,
            max_uses: c.max_uses,
            used_count: c.used_count,
            description: c
                .metadata
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            deleted: c.revoked_at.is_some(),
        })
    }
}
