//! Collective keys (SmartphoneKey's `/temp-keys`): one share key over several doors, each on a
//! lock of the caller's, opened through the guest link (`key`), a PIN at the lock's entrance
//! panel (`code`), or both. The PIN is shown once and stored only as an HMAC bound to the
//! organization, so it is also the key's lookup hash: unique among the organization's keys.
//!
//! A collective key is a credential of kind `share` whose subject is
//! `{"collective": true, "doors": [{id, lockId, lockUuid, label, accessMethod}]}`; a door's `id`
//! is its place in the list counting from 1 (keys made before doors had ids use that place too).
//! Its events are the temp-key events (TempKeyCreated with the doors, TempKeyDeleted,
//! TempKeyUsed). A key with no `code` or `both` door has no PIN: its lookup hash is then the
//! digest of a random value nobody sees, like a per-lock share key's.

use super::share::{OpenVia, SCOPE_SHARE_READ, SCOPE_SHARE_WRITE, WriteResult, actor_id, iso, to_millis};
use super::{Principal, Service};
use crate::core::credential::{Credential, Kind};
use crate::core::secret::{self, Purpose, random_from_alphabet};
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
    /// Optional, as in SmartphoneKey.
    pub label: Option<String>,
    pub access_method: String,
}

/// Which door of a share key a guest opens through the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoorChoice {
    /// The first door that opens through the link (`POST /temp-keys/{uuid}/open`).
    First,
    /// The door with this id within the key (`POST /temp-keys/{uuid}/doors/{doorId}/open`).
    Id(i64),
    /// The link door on this lock (keygate's `lockId` body on `/open`).
    Lock(i64),
}

#[derive(Debug, Clone)]
pub struct CollectiveInput {
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub description: Option<String>,
    pub doors: Vec<DoorInput>,
}

/// A created collective key: the write, and the PIN (shown once; `None` when no door takes one).
#[derive(Debug)]
pub struct CreatedCollective {
    pub write: WriteResult,
    pub pin: Option<String>,
}

/// The answer to a delete: the write, or `None` when the key was already revoked.
#[derive(Debug)]
pub struct DeletedCollective {
    pub aggregate_id: Uuid,
    pub write: Option<WriteResult>,
}

pub use crate::core::share::is_collective;

/// Does this door admit `method` (`key` or `code`)?
pub fn admits(d: &Value, method: &str) -> bool {
    let m = d.get("accessMethod").and_then(Value::as_str).unwrap_or("");
    m == method || m == "both"
}

/// A collective key's doors with their ids.
pub fn doors(c: &Credential) -> Vec<(i64, &Value)> {
    c.subject
        .get("doors")
        .and_then(Value::as_array)
        .map(|ds| ds.iter().enumerate().map(|(i, d)| (door_id(d, i), d)).collect())
        .unwrap_or_default()
}

/// A door's id: its `id`, or its place in the list counting from 1.
pub fn door_id(d: &Value, index: usize) -> i64 {
    d.get("id").and_then(Value::as_i64).unwrap_or(index as i64 + 1)
}

/// The doors of a collective key that admit `method` (`key` or `code`).
pub fn doors_for<'a>(c: &'a Credential, method: &str) -> Vec<&'a Value> {
    doors(c)
        .into_iter()
        .filter(|(_, d)| admits(d, method))
        .map(|(_, d)| d)
        .collect()
}

pub(crate) fn door_lock(d: &Value) -> Option<i64> {
    d.get("lockId").and_then(Value::as_i64)
}

impl Service {
    pub(crate) fn pin_digest(&self, org_id: Uuid, pin: &str) -> Vec<u8> {
        self.hasher.digest(Purpose::Pin, &format!("{org_id}:{pin}")).to_vec()
    }

    pub async fn create_collective_key(&self, by: &Principal, mut k: CollectiveInput) -> Result<CreatedCollective> {
        by.require(SCOPE_SHARE_WRITE)?;
        k.valid_from = to_millis(k.valid_from);
        k.valid_until = to_millis(k.valid_until);
        if k.valid_from >= k.valid_until {
            return Err(Error::invalid("validUntil", "must be after validFrom"));
        }
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
                "id": i + 1, "lockId": lock.id, "lockUuid": lock.uuid, "label": d.label,
                "accessMethod": d.access_method,
            }));
        }
        let takes_pin = doors.iter().any(|d| admits(d, "code"));
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
            let (pin, hash) = if takes_pin {
                let pin = random_from_alphabet(b"0123456789", PIN_DIGITS);
                let hash = self.pin_digest(by.org_id, &pin);
                (Some(pin), hash)
            } else {
                let unseen = secret::new_url_secret();
                (None, self.hasher.digest(Purpose::Credential, &unseen).to_vec())
            };
            let cred = Credential {
                id: uuid,
                org_id: by.org_id,
                kind: Kind::Share,
                owner_id: by.user_id,
                name: "collective key".into(),
                prefix: uuid.to_string().chars().take(8).collect(),
                hash,
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
                        write: WriteResult::appended(uuid, version, share::TEMP_KEY_CREATED, e.data),
                        pin,
                    });
                }
                Err(Error::Conflict(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(Error::internal("could not draw an unused PIN"))
    }

    /// A collective key of the caller's organization that the caller may manage: as in
    /// SmartphoneKey, the caller must be authorized for every lock the key touches (the check of
    /// its creation), so another organization's key is not found and a key over a lock the caller
    /// may not manage is forbidden.
    async fn collective_for(&self, by: &Principal, uuid: Uuid) -> Result<Credential> {
        let c = self
            .store
            .get_credential(by.org_id, uuid)
            .await?
            .filter(|c| c.kind == Kind::Share && is_collective(c))
            .ok_or(Error::NotFound("temp key"))?;
        for (_, d) in doors(&c) {
            let lock_id = door_lock(d).ok_or_else(|| Error::internal("a door without a lock"))?;
            self.lock_for(by, lock_id).await.map_err(|e| match e {
                Error::NotFound(_) => Error::Forbidden("you may not manage one of this key's locks".into()),
                other => other,
            })?;
        }
        Ok(c)
    }

    /// Live collective keys, oldest first: with `lock`, every one with a door on that lock (the
    /// caller must be authorized for the lock); without, those the caller created.
    pub async fn list_collective_keys(&self, by: &Principal, lock: Option<i64>) -> Result<Vec<Credential>> {
        by.require(SCOPE_SHARE_READ)?;
        match lock {
            Some(id) => {
                let lock = self.lock_for(by, id).await?;
                self.share_keys_where(by.org_id, None, |c| {
                    c.revoked_at.is_none()
                        && is_collective(c)
                        && doors(c).iter().any(|(_, d)| door_lock(d) == Some(lock.id))
                })
                .await
            }
            None => {
                self.share_keys_where(by.org_id, None, |c| {
                    c.revoked_at.is_none() && is_collective(c) && c.created_by == by.actor
                })
                .await
            }
        }
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
                write: Some(WriteResult::appended(uuid, version, share::TEMP_KEY_DELETED, e.data)),
            }),
            Some((_, None)) => Ok(DeletedCollective {
                aggregate_id: uuid,
                write: None,
            }),
            None => Err(Error::NotFound("temp key")),
        }
    }

    /// Open one door of a collective key through its guest link. A door id that the key does
    /// not have is not found; a door that takes the PIN only is refused.
    pub async fn open_collective(&self, c: Credential, choice: DoorChoice, actor: &str) -> Result<WriteResult> {
        let all = doors(&c);
        let link_doors = || all.iter().filter(|(_, d)| admits(d, "key"));
        let door = match choice {
            DoorChoice::First => link_doors()
                .next()
                .ok_or_else(|| Error::invalid("doorId", "this key opens no door through its link: use the PIN"))?,
            DoorChoice::Lock(id) => link_doors()
                .find(|(_, d)| door_lock(d) == Some(id))
                .ok_or_else(|| Error::invalid("lockId", "this key does not open that door through its link"))?,
            DoorChoice::Id(id) => {
                let door = all
                    .iter()
                    .find(|(door, _)| *door == id)
                    .ok_or(Error::NotFound("door"))?;
                if !admits(door.1, "key") {
                    return Err(Error::invalid(
                        "doorId",
                        "this door opens with the PIN at its entrance panel only",
                    ));
                }
                door
            }
        };
        let lock_id = door_lock(door.1).ok_or_else(|| Error::internal("a door without a lock"))?;
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
