//! The public side of share keys, reached before any organization is known: the guest link
//! (`GET /temp-keys/{uuid}`, `POST /temp-keys/{uuid}/open`) and an entrance panel's PIN
//! (`POST /locks/{id}/open-with-pin`). These are two of the pre-tenancy lookups the store
//! lists (`find_credential`, `find_lock`); every lookup after them uses the organization of
//! what they found, so a key opens only its own organization's locks.

use super::collective::{DoorChoice, door_lock, doors_for, is_collective};
use super::share::{OpenVia, WriteResult};
use super::{Principal, Service};
use crate::core::credential::{Credential, Kind};
use crate::error::{Error, Result};
use crate::model::Lock;
use serde_json::Value;
use uuid::Uuid;

impl Service {
    /// A share key behind a public link (the guest page): live or not, of kind share, with its
    /// lock (`None` for a collective key, whose doors are in its subject). Whitelisted keys need
    /// an authenticated visitor on the whitelist.
    pub async fn guest_share(&self, uuid: Uuid, visitor: Option<&Principal>) -> Result<(Credential, Option<Lock>)> {
        // Pre-tenancy: the guest link names the key, not its organization.
        let c = self
            .store
            .find_credential(uuid)
            .await?
            .filter(|c| c.kind == Kind::Share)
            .ok_or(Error::NotFound("temp key"))?;
        if is_collective(&c) {
            return Ok((c, None));
        }
        let lock_id = c
            .subject
            .get("lock_id")
            .and_then(Value::as_i64)
            .ok_or(Error::NotFound("temp key"))?;
        // The lock of the key's own organization: a key never reaches another tenant's lock.
        let lock = self
            .store
            .get_lock(c.org_id, lock_id)
            .await?
            .ok_or(Error::NotFound("temp key"))?;
        if !c.allowed_users.is_empty() {
            let who = visitor
                .filter(|v| v.org_id == c.org_id)
                .and_then(|v| v.user_id)
                .ok_or(Error::Unauthenticated)?;
            if !c.allowed_users.contains(&who) {
                return Err(Error::Forbidden("you are not on this temp key's whitelist".into()));
            }
        }
        Ok((c, Some(lock)))
    }

    /// A visitor opens a door with a share key: one use, TempKeyUsed, and LockOpenRequested,
    /// all in one transaction. `door` picks the door: a per-lock key has one, its lock, with
    /// door id 1; a collective key's doors are its list.
    pub async fn open_share(&self, uuid: Uuid, visitor: Option<&Principal>, door: DoorChoice) -> Result<WriteResult> {
        let (c, lock) = self.guest_share(uuid, visitor).await?;
        let user = visitor.and_then(|v| v.user_id);
        let actor = visitor.map(|v| v.actor.clone()).unwrap_or_else(|| "guest".into());
        match lock {
            Some(lock) => {
                if matches!(door, DoorChoice::Id(id) if id != 1) {
                    return Err(Error::NotFound("door"));
                }
                let via = OpenVia {
                    via: "temp-key",
                    door_id: None,
                };
                self.consume_share(c.org_id, &actor, &lock, c, user, Some(via)).await
            }
            None => self.open_collective(c, door, &actor).await,
        }
    }

    /// Open a lock's door with a PIN at its entrance panel. Every refusal is the same
    /// `Unauthenticated` (whether the lock exists, the PIN is wrong, or the key is expired,
    /// deleted, outside its schedule or not for this door), and counts against the lock and the
    /// source; too many inside the window answer `RateLimited` before anything is looked up.
    pub async fn open_with_pin(
        &self,
        lock_id: i64,
        pin: &str,
        door_id: Option<i64>,
        source: &str,
    ) -> Result<(Lock, WriteResult)> {
        let lock_key = format!("lock:{lock_id}");
        let source_key = format!("source:{source}");
        let limits = [
            (&self.pin_source_failures, source_key.as_str()),
            (&self.pin_lock_failures, lock_key.as_str()),
        ];
        match self.guarded(&limits, self.try_pin(lock_id, pin, door_id)).await? {
            Some(done) => Ok(done),
            None => {
                tracing::info!(lock_id, source, "PIN refused");
                Err(Error::Unauthenticated)
            }
        }
    }

    /// `Ok(None)` is a refusal; `Err` is a fault (such as the database being away).
    async fn try_pin(&self, lock_id: i64, pin: &str, door_id: Option<i64>) -> Result<Option<(Lock, WriteResult)>> {
        // Pre-tenancy: an entrance panel names its lock, not its organization.
        let Some(lock) = self.store.find_lock(lock_id).await? else {
            return Ok(None);
        };
        if let Some(d) = door_id {
            let known = lock
                .doors
                .as_array()
                .is_some_and(|ds| ds.iter().any(|x| x.get("id").and_then(Value::as_i64) == Some(d)));
            if !known {
                return Ok(None);
            }
        }
        let hash = self.pin_digest(lock.org_id, pin);
        let Some(c) = self.store.find_credential_by_hash(&hash).await? else {
            return Ok(None);
        };
        let for_this_lock = doors_for(&c, "code").iter().any(|d| door_lock(d) == Some(lock.id));
        if c.kind != Kind::Share || c.org_id != lock.org_id || !is_collective(&c) || !for_this_lock {
            return Ok(None);
        }
        let via = OpenVia { via: "pin", door_id };
        match self
            .consume_share(
                c.org_id,
                "pin",
                &lock,
                std::sync::Arc::unwrap_or_clone(c),
                None,
                Some(via),
            )
            .await
        {
            Ok(w) => Ok(Some((lock, w))),
            Err(Error::Invalid { .. } | Error::Forbidden(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
