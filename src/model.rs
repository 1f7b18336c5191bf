//! Identity and tenancy records.

use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    /// The bootstrap organization: its admins administer every organization.
    pub is_system: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub org_id: Uuid,
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Numeric person id for the SuperOffice surface.
    pub person_id: Option<i64>,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
    /// A disabled user's every credential is refused.
    pub disabled: bool,
    /// Failed logins up to this moment no longer count (an administrator's unlock).
    pub unlocked_at: Option<DateTime<Utc>>,
}

/// An organization API key (`X-API-Key`). Only its digest is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A ticket (`7T:...`) or a cookie session, stored by digest.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginToken {
    pub hash: Vec<u8>,
    pub user_id: Uuid,
    pub org_id: Uuid,
    /// For sessions: digest of the XSRF token bound to the session.
    pub xsrf_hash: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A lock (SmartphoneKey surface). Share keys are bound to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lock {
    /// Numeric id used on the wire (`/locks/{id}`); assigned by the store.
    pub id: i64,
    pub uuid: Uuid,
    pub org_id: Uuid,
    pub name: String,
    /// The B2C owner: the user who may manage its share keys.
    pub owner_id: Option<Uuid>,
    /// Doors of the lock: `[{"id": n, "name": "..."}]`.
    pub doors: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    Ticket,
    Session,
}
