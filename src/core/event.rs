//! Versioned domain events: the audit log and the feed. No secret is ever put in one.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// Who acted, as events, `created_by` and the audit log name them: `user:<uuid>` or
/// `api_key:<uuid>` (`kind` is `user` or `api_key`). Written without `fmt`, which every
/// authenticated request paid for.
pub fn actor(kind: &str, id: Uuid) -> String {
    let mut buf = Uuid::encode_buffer();
    let id = id.hyphenated().encode_lower(&mut buf);
    let mut out = String::with_capacity(kind.len() + 1 + id.len());
    out.push_str(kind);
    out.push(':');
    out.push_str(id);
    out
}

/// An event about to be appended; the store assigns its version and sequence number.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub org_id: Uuid,
    pub aggregate_type: &'static str,
    pub aggregate_id: Uuid,
    pub event_type: &'static str,
    pub data: serde_json::Value,
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// A stored event.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Event {
    /// Position in the feed; use it as the `after` cursor.
    pub seq: i64,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    /// 1 for the first event of an aggregate, then +1 for each event.
    pub version: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: serde_json::Value,
    pub actor: String,
    pub at: DateTime<Utc>,
}

pub mod aggregate {
    pub const ORGANIZATION: &str = "organization";
    pub const USER: &str = "user";
    pub const API_KEY: &str = "api_key";
    pub const KEY: &str = "key";
    pub const LOCK: &str = "lock";
}

pub mod kind {
    pub const ORGANIZATION_CREATED: &str = "OrganizationCreated";
    pub const USER_CREATED: &str = "UserCreated";
    pub const USER_PASSWORD_CHANGED: &str = "UserPasswordChanged";
    pub const USER_DISABLED: &str = "UserDisabled";
    pub const USER_ENABLED: &str = "UserEnabled";
    pub const USER_UNLOCKED: &str = "UserUnlocked";
    pub const TICKET_ISSUED: &str = "TicketIssued";
    pub const SESSION_STARTED: &str = "SessionStarted";
    pub const SESSION_ENDED: &str = "SessionEnded";
    pub const API_KEY_CREATED: &str = "ApiKeyCreated";
    pub const API_KEY_REVOKED: &str = "ApiKeyRevoked";
    pub const KEY_CREATED: &str = "KeyCreated";
    pub const KEY_UPDATED: &str = "KeyUpdated";
    pub const KEY_USED: &str = "KeyUsed";
    pub const KEY_REVOKED: &str = "KeyRevoked";
    pub const LOCK_CREATED: &str = "LockCreated";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_reads_as_its_format() {
        let id = Uuid::new_v4();
        assert_eq!(actor("api_key", id), format!("api_key:{id}"));
        assert_eq!(actor("user", Uuid::nil()), "user:00000000-0000-0000-0000-000000000000");
    }
}
