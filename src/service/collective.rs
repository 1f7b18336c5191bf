//! Collective keys (SmartphoneKey's `/temp-keys`): one share key over several doors, each on a
//! lock of the caller's, opened through the guest link (`key`), a PIN at the lock's entrance
//! panel (`code`), or both. The PIN is shown once and stored only as an HMAC bound to the
//! organization, so it is also the key's lookup hash: unique among the organization's keys.
//!
//! A collective key is a credential of kind `share` whose subject is
//! `{"collective": true, "doors": [{lockId, lockUuid, label, accessMethod}]}`; its events are
//! the temp-key events (TempKeyCreated with the doors, TempKeyDeleted, TempKeyUsed).

use super::share::{OpenVia, SCOPE_SHARE_READ, SCOPE_SHARE_WRITE, WriteResult, actor_id, iso};
use super::{Principal, Service};
use crate::core::credential::{Credential, Kind};
use crate::core::secret::{Purpose, random_from_alphabet};
use crate::core::share;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// Digits in a generated PIN.
pub const PIN_DIGITS: usize = 8;
/// Doors on one collective key at most.
pub const MAX_COLLECTIVE_DOORS: usize = 50;
pub const MAX_LABEL: usize = 120;
pub const ACCESS_METHODS: [&str; 3] = ["key", "code", "both"];

/// One door of a new collective key, validated by the surface.
#[derive(Debug, Clone)]
pub struct DoorInput {
    pub lock_id: i64,
    pub label: String,
    pub access_method: String,
}

#[derive(Debug, Clone)]
pub struct CollectiveInput {
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub description: Option<String>,
    pub doors: Vec<DoorInput>,
}

/// A created collective key: the write, and the PIN (shown once).
#[derive(Debug)]
pub struct CreatedCollective {
    pub write: WriteResult,
    pub pin: String,
}

/// The answer to a delete: the write, or `None` when the key was already revoked.
#[derive(Debug)]
pub struct DeletedCollective {
    pub aggregate_id: Uuid,
    pub write: Option<WriteResult>,
}

pub use crate::core::share::is_collective;

/// The doors of a collective key that admit `method` (`key` or `code`).
pub fn doors_for<'a>(c: &'a Credential, method: &str) -> Vec<&'a Value> {
    c.subject
        .get("doors")
        .and_then(Value::as_array)
        .map(|ds| {
            ds.iter()
                .filter(|d| {
                    let m = d.get("accessMethod").and_then(Value::as_str).unwrap_or("");
                    m == method || m == "both"
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn door_lock(d: &Value) -> Option<i64> {
    d.get("lockId").and_then(Value::as_i64)
}

impl Service {
    pub(crate) fn pin_digest(&self, org_id: Uuid, pin: &str) -> Vec<u8> {
        self.hasher.digest(Purpose::Pin, &format!("{org_id}:{pin}")).to_vec()
    }

    pub async fn create_collective_key(&self, by: &Principal, k: CollectiveInput) -> Result<CreatedCollective> {
        by.require(SCOPE_SHARE_WRITE)?;
        if k.valid_until <= self.now() {
            return Err(Error::invalid("validUntil", "must be in the future"));
        }
        by.may_grant_lifetime("validUntil", Some(k.valid_until))?;
        let mut doors = vec![];
        for (i, d) in k.doors.iter().enumerate() {
            let lock = self.lock_for(by, d.lock_id).await?;
            if doors.iter().any(|x: &Value| door_lock(x) == Some(lock.id)) {
                return Err(Error::invalid(format!("doors[{i}].lockId"), "lists a lock twice"));
            }
            doors.push(json!({
                "lockId": lock.id, "lockUuid": lock.uuid, "label": d.label, "accessMethod": d.access_method,
            }));
        }
        let uuid = Uuid::new_v4();
        let now = self.now();
        let mut data = serde_json::Map::new();
        data.insert("tempKeyUuid".into(), uuid.to_string().into());
        data.insert("collective".into(), true.into());
        data.insert("accessMode".into(), share::PUBLIC.into());
        data.insert("doors".into(), Value::Array(doors.clone()));
        data.insert("validFrom".into(), iso(k.valid_from).into());
        data.insert("validUntil".into(), iso(k.valid_until).into());
        data.insert("description".into(), json!(k.description));
        data.insert("createdBy".into(), actor_id(by).into());
        data.insert("timestamp".into(), iso(now).into());
        let e = self.event(
            by.org_id,
            share::AGGREGATE,
            uuid,
            share::TEMP_KEY_CREATED,
            Value::Object(data),
            &by.actor,
        );
        // The PIN is the lookup hash, unique per organization: draw again on a collision.
        for _ in 0..8 {
            let pin = random_from_alphabet(b"0123456789", PIN_DIGITS);
            let cred = Credential {
                id: uuid,
                org_id: by.org_id,
                kind: Kind::Share,
                owner_id: by.user_id,
                name: "collective key".into(),
                prefix: uuid.to_string().chars().take(8).collect(),
                hash: self.pin_digest(by.org_id, &pin),
                scopes: vec![],
                not_before: Some(k.valid_from),
                expires_at: Some(k.valid_until),
                max_uses: None,
                used_count: 0,
                allowed_users: vec![],
                subject: json!({"collective": true, "access_mode": share::PUBLIC, "doors": doors}),
                metadata: json!({"description": k.description}),
                created_at: now,
                created_by: by.actor.clone(),
                updated_at: now,
                updated_by: by.actor.clone(),
                revoked_at: None,
                revoked_by: None,
            };
            match self.store.insert_credential(&cred, &e).await {
                Ok(version) => {
                    return Ok(CreatedCollective {
                        write: WriteResult {
                            aggregate_id: uuid,
                            version,
                            event_type: share::TEMP_KEY_CREATED,
                            data: e.data,
                        },
                        pin,
                    });
                }
                Err(Error::Conflict(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(Error::internal("could not draw an unused PIN"))
    }

    /// A collective key of the caller's organization that the caller may manage: organization
    /// API keys and administrators manage all of them, users those they created.
    async fn collective_for(&self, by: &Principal, uuid: Uuid) -> Result<Credential> {
        let c = self
            .store
            .get_credential(by.org_id, uuid)
            .await?
            .filter(|c| c.kind == Kind::Share && is_collective(c))
            .ok_or(Error::NotFound("temp key"))?;
        if by.is_admin || (by.user_id.is_some() && c.owner_id == by.user_id) {
            Ok(c)
        } else {
            Err(Error::Forbidden("you did not create this temp key".into()))
        }
    }

    /// The caller's live collective keys, oldest first.
    pub async fn list_collective_keys(&self, by: &Principal) -> Result<Vec<Credential>> {
        by.require(SCOPE_SHARE_READ)?;
        let owner = if by.is_admin {
            None
        } else {
            Some(by.user_id.ok_or(Error::NotFound("temp key"))?)
        };
        self.share_keys_where(by.org_id, owner, |c| c.revoked_at.is_none() && is_collective(c))
            .await
    }

    pub async fn delete_collective_key(&self, by: &Principal, uuid: Uuid) -> Result<DeletedCollective> {
        by.require(SCOPE_SHARE_WRITE)?;
        self.collective_for(by, uuid).await?;
        let mut data = serde_json::Map::new();
        data.insert("tempKeyUuid".into(), uuid.to_string().into());
        data.insert("deletedBy".into(), actor_id(by).into());
        data.insert("timestamp".into(), iso(self.now()).into());
        let e = self.event(
            by.org_id,
            share::AGGREGATE,
            uuid,
            share::TEMP_KEY_DELETED,
            Value::Object(data),
            &by.actor,
        );
        match self
            .store
            .revoke_credential(by.org_id, uuid, self.now(), &by.actor, &e)
            .await?
        {
            Some((_, Some(version))) => Ok(DeletedCollective {
                aggregate_id: uuid,
                write: Some(WriteResult {
                    aggregate_id: uuid,
                    version,
                    event_type: share::TEMP_KEY_DELETED,
                    data: e.data,
                }),
            }),
            Some((_, None)) => Ok(DeletedCollective {
                aggregate_id: uuid,
                write: None,
            }),
            None => Err(Error::NotFound("temp key")),
        }
    }

    /// Open one door of a collective key through its guest link (`lock_id` picks the door; it
    /// may be left out when the key has one door for links).
    pub async fn open_collective(&self, c: Credential, lock_id: Option<i64>, actor: &str) -> Result<WriteResult> {
        let doors = doors_for(&c, "key");
        let door = match lock_id {
            Some(id) => doors.iter().find(|d| door_lock(d) == Some(id)),
            None if doors.len() == 1 => doors.first(),
            None => return Err(Error::invalid("lockId", "name the door to open: this key has several")),
        };
        let lock_id = door
            .and_then(|d| door_lock(d))
            .ok_or_else(|| Error::invalid("lockId", "this key does not open that door through its link"))?;
        let lock = self
            .store
            .get_lock(c.org_id, lock_id)
            .await?
            .ok_or(Error::NotFound("lock"))?;
        let via = OpenVia {
            via: "temp-key",
            door_id: None,
        };
        self.consume_share(c.org_id, actor, &lock, c, None, Some(via)).await
    }
}
