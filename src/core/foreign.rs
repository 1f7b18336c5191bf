//! The ForeignSystem mapping store's records and rules: per organization, applications hold
//! devices, devices hold keys (a key name, an opaque value, a table name and a record id).
//!
//! Identity:
//! - an application by its name (unique in the organization);
//! - a device by its application, its name and its identifier, where a blank or absent
//!   identifier is the empty one. The by-name methods address the device with that name and
//!   the empty identifier; the by-identifier methods the device with that name and identifier;
//! - a key by its device, key name, table name and record id (SaveForeignKey's upsert address).

use crate::core::event::NewEvent;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Names (applications, devices, identifiers, key names, table names): at most this many
/// characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Values: at most this many Unicode scalar values.
pub const MAX_VALUE_CHARS: usize = 4000;

/// Who wrote a row, as the carriers show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Author {
    /// A user's name, or an organization API key's name.
    pub name: String,
    /// The user (None for an organization API key).
    pub user_id: Option<Uuid>,
    pub person_id: Option<i64>,
}

/// One write's author, audit actor and time.
#[derive(Debug, Clone)]
pub struct Stamp {
    pub org_id: Uuid,
    pub author: Author,
    /// The audit log's actor (`user:<uuid>`, `api_key:<uuid>`).
    pub actor: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForeignApp {
    /// The wire id (int32).
    pub id: i32,
    pub uuid: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub created_by: Author,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Author,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForeignDevice {
    pub id: i32,
    pub uuid: Uuid,
    pub org_id: Uuid,
    pub app_id: i32,
    pub name: String,
    /// '' when the device has none.
    pub identifier: String,
    /// AssociateFullName: who created it.
    pub owner_name: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKey {
    pub id: i64,
    pub uuid: Uuid,
    pub org_id: Uuid,
    pub device_id: i32,
    pub key_name: String,
    pub value: String,
    pub table_name: String,
    pub record_id: i32,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

/// A device's address: application name, device name, identifier ('' for none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePath {
    pub app: String,
    pub device: String,
    pub identifier: String,
}

/// Which keys of a device: `None` matches any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    pub key_name: Option<String>,
    pub table_name: Option<String>,
    pub record_id: Option<i32>,
}

/// A key to add or save.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyWrite {
    pub key_name: String,
    pub value: String,
    pub table_name: String,
    pub record_id: i32,
}

/// AddForeignKey refuses an existing address; SaveForeignKey updates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    Add,
    Save,
}

/// A device to save: by its id, or by its address in the application (created when missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceTarget {
    Id(i32),
    Path { name: String, identifier: String },
}

/// The digest lookups by value use (then the value itself is compared).
pub fn value_digest(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

/// Characters neither wire can carry: U+0000 (PostgreSQL text refuses it) and the control
/// characters XML 1.0 forbids (U+0001-U+0008, U+000B, U+000C, U+000E-U+001F), and U+FFFE/U+FFFF.
pub fn forbidden_char(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
}

/// Check a text field: at most `max` Unicode scalar values, none that a wire cannot carry.
pub fn check_text(field: &str, s: &str, max: usize) -> Result<()> {
    if s.chars().count() > max {
        return Err(Error::invalid(field, format!("must be at most {max} characters")));
    }
    if let Some(c) = s.chars().find(|c| forbidden_char(*c)) {
        return Err(Error::invalid(
            field,
            format!(
                "must not contain U+{:04X} (U+0000 and the control characters XML 1.0 forbids cannot be stored)",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// A name that must not be blank.
pub fn check_name(field: &str, s: &str) -> Result<()> {
    if s.trim().is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    check_text(field, s, MAX_NAME_CHARS)
}

pub mod aggregate {
    pub const APP: &str = "foreign_app";
    pub const DEVICE: &str = "foreign_device";
    pub const KEY: &str = "foreign_key";
}

pub mod kind {
    pub const APP_CREATED: &str = "ForeignAppCreated";
    pub const APP_UPDATED: &str = "ForeignAppUpdated";
    pub const APP_DELETED: &str = "ForeignAppDeleted";
    pub const DEVICE_CREATED: &str = "ForeignDeviceCreated";
    pub const DEVICE_UPDATED: &str = "ForeignDeviceUpdated";
    pub const DEVICE_DELETED: &str = "ForeignDeviceDeleted";
    pub const KEY_CREATED: &str = "ForeignKeyCreated";
    pub const KEY_UPDATED: &str = "ForeignKeyUpdated";
    pub const KEY_DELETED: &str = "ForeignKeyDeleted";
}

/// The event of a write. Values are never put in events (they are the integration's data,
/// and a feed reader needs only the address); names and ids are.
pub fn event(
    s: &Stamp,
    aggregate_type: &'static str,
    aggregate_id: Uuid,
    event_type: &'static str,
    data: serde_json::Value,
) -> NewEvent {
    NewEvent {
        org_id: s.org_id,
        aggregate_type,
        aggregate_id,
        event_type,
        data,
        actor: s.actor.clone(),
        at: s.at,
    }
}

pub fn app_event(s: &Stamp, app: &ForeignApp, event_type: &'static str, extra: serde_json::Value) -> NewEvent {
    let mut data = serde_json::json!({"foreignAppId": app.id, "name": app.name});
    merge(&mut data, extra);
    event(s, aggregate::APP, app.uuid, event_type, data)
}

pub fn device_event(
    s: &Stamp,
    app: &ForeignApp,
    d: &ForeignDevice,
    event_type: &'static str,
    extra: serde_json::Value,
) -> NewEvent {
    let mut data = serde_json::json!({
        "foreignDeviceId": d.id, "foreignAppId": app.id, "application": app.name,
        "name": d.name, "deviceIdentifier": d.identifier,
    });
    merge(&mut data, extra);
    event(s, aggregate::DEVICE, d.uuid, event_type, data)
}

pub fn key_event(s: &Stamp, app: &ForeignApp, d: &ForeignDevice, k: &ForeignKey, event_type: &'static str) -> NewEvent {
    let data = serde_json::json!({
        "application": app.name, "device": d.name, "deviceIdentifier": d.identifier,
        "foreignDeviceId": d.id, "key": k.key_name, "tableName": k.table_name, "recordId": k.record_id,
    });
    event(s, aggregate::KEY, k.uuid, event_type, data)
}

fn merge(into: &mut serde_json::Value, extra: serde_json::Value) {
    if let (serde_json::Value::Object(a), serde_json::Value::Object(b)) = (into, extra) {
        a.extend(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert!(check_text("v", &"é".repeat(4000), MAX_VALUE_CHARS).is_ok());
        assert!(check_text("v", &"🦀".repeat(4000), MAX_VALUE_CHARS).is_ok());
        assert!(check_text("v", &"x".repeat(4001), MAX_VALUE_CHARS).is_err());
        assert!(check_text("v", "tab\tnewline\ncr\r", 100).is_ok());
        for bad in ["\u{0}", "a\u{1}", "\u{b}", "\u{1f}", "\u{ffff}"] {
            assert!(check_text("v", bad, 100).is_err(), "{bad:?}");
        }
        assert!(check_name("n", "  ").is_err());
        assert!(check_name("n", "ERP").is_ok());
        assert_eq!(value_digest("a").len(), 32);
    }
}
