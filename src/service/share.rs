//! Locks and their share keys (SmartphoneKey "temp keys"). A share key is a credential of kind
//! `share` whose id is the client's tempKeyUuid; its events (TempKeyCreated, TempKeyUpdated,
//! TempKeyDeleted, TempKeyUsed) are its source of truth, and its credentials row is the
//! projection, written in the same transaction as each event.
//!
//! Authorization: an organization API key manages the organization's locks (B2B); a user
//! manages the locks they own (B2C). Another organization's lock does not exist for the caller.

use super::keys::Verification;
use super::validate::{MAX_USES, validate_name};
use super::{Principal, Service};
use crate::core::credential::{Code, Credential, Kind, VerifyContext, verdict};
use crate::core::event::{NewEvent, aggregate, kind as ev};
use crate::core::secret::{self, Purpose};
use crate::core::share::{self, PUBLIC, Schedule, USER_WHITELIST};
use crate::error::{Error, Result};
use crate::model::Lock;
use crate::store::ConsumeOutcome;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// Scope for managing share keys with a personal access key (Tedee's access links).
pub const SCOPE_SHARE_READ: &str = "AccessLink.Read";
pub const SCOPE_SHARE_WRITE: &str = "AccessLink.ReadWrite";
pub const SCOPE_LOCK_READ: &str = "Device.Read";
pub const SCOPE_LOCK_WRITE: &str = "Device.ReadWrite";
pub const SCOPE_OPERATE: &str = "Lock.Operate";

pub const MAX_DESCRIPTION: usize = 2000;
pub const MAX_DOORS: usize = 100;

/// A new share key, validated by the surface.
#[derive(Debug, Clone)]
pub struct ShareKeyInput {
    pub uuid: Uuid,
    pub access_mode: String,
    pub allowed_user_ids: Vec<Uuid>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub max_uses: Option<i64>,
    pub description: Option<String>,
    pub schedule: Option<Schedule>,
}

/// Changes to a share key; `None` leaves a field as it is (`max_uses: Some(None)` lifts the limit).
#[derive(Debug, Clone, Default)]
pub struct ShareKeyChanges {
    pub access_mode: Option<String>,
    pub allowed_user_ids: Option<Vec<Uuid>>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    pub max_uses: Option<Option<i64>>,
    /// `Some(None)` removes the schedule.
    pub schedule: Option<Option<Schedule>>,
    /// A keygate extension (SmartphoneKey's update takes no description): `Some(None)` clears it.
    pub description: Option<Option<String>>,
}

/// How a door is being opened (for the LockOpenRequested event): `via` is `temp-key` (the
/// guest page) or `pin` (an entrance panel).
#[derive(Debug, Clone, Copy)]
pub struct OpenVia {
    pub via: &'static str,
    pub door_id: Option<i64>,
}

/// What a write answers: the aggregate, its version after the write, and the event the write
/// appended (`None` when it changed nothing, and `version` is the current one).
#[derive(Debug, Clone)]
pub struct WriteResult {
    pub aggregate_id: Uuid,
    pub version: i64,
    pub event: Option<WrittenEvent>,
}

/// An appended event: its type and its data as stored (every fact; surfaces render their own
/// projection of it).
#[derive(Debug, Clone)]
pub struct WrittenEvent {
    pub event_type: &'static str,
    pub data: Value,
}

impl WriteResult {
    pub(crate) fn appended(aggregate_id: Uuid, version: i64, event_type: &'static str, data: Value) -> WriteResult {
        WriteResult {
            aggregate_id,
            version,
            event: Some(WrittenEvent { event_type, data }),
        }
    }
}

/// How a share key stands now: a matter of time and uses, not of who asks, so the key is
/// presented as a user it admits.
pub fn status(c: &Credential, now: DateTime<Utc>) -> &'static str {
    let ctx = VerifyContext {
        org_id: c.org_id,
        scope: None,
        user: c.allowed_users.first().copied(),
    };
    match verdict(Some(c), &ctx, now) {
        Code::NotYetValid => "not-yet-valid",
        Code::Expired => "expired",
        Code::UsageExceeded => "used-up",
        Code::Revoked => "deleted",
        _ => "valid",
    }
}

pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A time as share-key events hold it (milliseconds), so the row and the events agree.
pub(crate) fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(3)
}

pub(crate) fn actor_id(p: &Principal) -> String {
    p.user_id.map(|u| u.to_string()).unwrap_or_else(|| p.actor.clone())
}

impl Service {
    // ------------------------------------------------------------------ locks

    /// Create a lock. `by` is `None` for the CLI.
    pub async fn create_lock(
        &self,
        by: Option<&Principal>,
        org_id: Uuid,
        name: &str,
        owner_id: Option<Uuid>,
        doors: Value,
    ) -> Result<Lock> {
        if let Some(p) = by {
            p.require(SCOPE_LOCK_WRITE)?;
            if !p.is_admin || p.org_id != org_id {
                return Err(Error::Forbidden(
                    "only organization administrators may create locks".into(),
                ));
            }
        }
        validate_name("name", name)?;
        let doors = match doors {
            Value::Null => json!([]),
            Value::Array(a) if a.len() <= MAX_DOORS => {
                for (i, d) in a.iter().enumerate() {
                    let ok = d.get("id").and_then(Value::as_i64).is_some()
                        && d.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| !n.trim().is_empty() && n.chars().count() <= 120);
                    if !ok {
                        return Err(Error::invalid(
                            format!("doors[{i}]"),
                            "must be {\"id\": number, \"name\": text}",
                        ));
                    }
                }
                Value::Array(a)
            }
            _ => {
                return Err(Error::invalid(
                    "doors",
                    format!("must be an array of at most {MAX_DOORS} doors"),
                ));
            }
        };
        if let Some(o) = owner_id {
            if self.store.get_user(org_id, o).await?.is_none() {
                return Err(Error::invalid("owner", "no such user in this organization"));
            }
        }
        let lock = Lock {
            id: 0,
            uuid: Uuid::new_v4(),
            org_id,
            name: name.to_string(),
            owner_id,
            doors,
            created_at: self.now(),
        };
        let actor = by.map(|p| p.actor.clone()).unwrap_or_else(|| "cli".into());
        let e = self.event(
            org_id,
            aggregate::LOCK,
            lock.uuid,
            ev::LOCK_CREATED,
            json!({"name": lock.name, "owner_id": owner_id, "doors": lock.doors}),
            &actor,
        );
        self.store.create_lock(&lock, &e).await
    }

    /// The locks the caller manages.
    pub async fn list_locks(&self, by: &Principal) -> Result<Vec<Lock>> {
        by.require(SCOPE_LOCK_READ)?;
        let all = self.store.list_locks(by.org_id).await?;
        Ok(if by.is_admin {
            all
        } else {
            all.into_iter()
                .filter(|l| l.owner_id.is_some() && l.owner_id == by.user_id)
                .collect()
        })
    }

    /// A lock of the caller's organization (404 otherwise), which the caller may manage (403
    /// otherwise): organization API keys and administrators manage every lock of the
    /// organization, users the locks they own.
    pub async fn lock_for(&self, by: &Principal, id: i64) -> Result<Lock> {
        let lock = self
            .store
            .get_lock(by.org_id, id)
            .await?
            .ok_or(Error::NotFound("lock"))?;
        let owns = by.user_id.is_some() && lock.owner_id == by.user_id;
        let b2b = by.user_id.is_none() && by.is_admin;
        if owns || b2b {
            Ok(lock)
        } else {
            Err(Error::Forbidden("you do not own this lock".into()))
        }
    }

    pub async fn get_lock(&self, by: &Principal, id: i64) -> Result<Lock> {
        by.require(SCOPE_LOCK_READ)?;
        let lock = self
            .store
            .get_lock(by.org_id, id)
            .await?
            .ok_or(Error::NotFound("lock"))?;
        if by.is_admin || (by.user_id.is_some() && lock.owner_id == by.user_id) {
            Ok(lock)
        } else {
            Err(Error::Forbidden("you do not own this lock".into()))
        }
    }

    // ------------------------------------------------------------------ share keys

    fn share_base(lock: &Lock, uuid: Uuid) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("tempKeyUuid".into(), uuid.to_string().into());
        m.insert("lockId".into(), lock.id.into());
        m.insert("lockUuid".into(), lock.uuid.to_string().into());
        m
    }

    fn share_event(
        &self,
        by: &Principal,
        uuid: Uuid,
        kind: &'static str,
        data: serde_json::Map<String, Value>,
    ) -> NewEvent {
        self.event(by.org_id, share::AGGREGATE, uuid, kind, Value::Object(data), &by.actor)
    }

    /// A live share key of this lock.
    async fn share_key(&self, by: &Principal, lock: &Lock, uuid: Uuid) -> Result<Credential> {
        self.store
            .get_credential(by.org_id, uuid)
            .await?
            .filter(|c| {
                c.kind == Kind::Share
                    && c.revoked_at.is_none()
                    && c.subject.get("lock_id").and_then(Value::as_i64) == Some(lock.id)
            })
            .ok_or(Error::NotFound("temp key"))
    }

    async fn check_whitelist(&self, by: &Principal, mode: &str, users: &[Uuid]) -> Result<()> {
        if mode == USER_WHITELIST && users.is_empty() {
            return Err(Error::invalid(
                "allowedUserIds",
                "must list at least one user for accessMode user-whitelist",
            ));
        }
        self.check_members(by.org_id, "allowedUserIds", users).await
    }

    pub async fn create_share_key(&self, by: &Principal, lock_id: i64, mut k: ShareKeyInput) -> Result<WriteResult> {
        by.require(SCOPE_SHARE_WRITE)?;
        k.valid_from = to_millis(k.valid_from);
        k.valid_until = to_millis(k.valid_until);
        let lock = self.lock_for(by, lock_id).await?;
        if k.access_mode != PUBLIC && k.access_mode != USER_WHITELIST {
            return Err(Error::invalid("accessMode", "must be public or user-whitelist"));
        }
        if k.valid_until <= self.now() {
            return Err(Error::invalid("validUntil", "must be in the future"));
        }
        if k.valid_from >= k.valid_until {
            return Err(Error::invalid("validUntil", "must be after validFrom"));
        }
        if k.max_uses.is_some_and(|m| !(1..=MAX_USES).contains(&m)) {
            return Err(Error::invalid("maxUses", "must be a positive integer or null"));
        }
        if k.description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
        {
            return Err(Error::invalid(
                "description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        by.may_grant_lifetime("validUntil", Some(k.valid_until))?;
        self.check_whitelist(by, &k.access_mode, &k.allowed_user_ids).await?;
        if self.store.get_credential(by.org_id, k.uuid).await?.is_some() {
            return Err(Error::Conflict(format!(
                "a temp key with tempKeyUuid {} already exists",
                k.uuid
            )));
        }
        let mut data = Self::share_base(&lock, k.uuid);
        data.insert("accessMode".into(), k.access_mode.clone().into());
        data.insert("allowedUserIds".into(), json!(k.allowed_user_ids));
        data.insert("validFrom".into(), iso(k.valid_from).into());
        data.insert("validUntil".into(), iso(k.valid_until).into());
        data.insert("maxUses".into(), json!(k.max_uses));
        data.insert("description".into(), json!(k.description));
        let schedule = k.schedule.as_ref().map(Schedule::to_json).unwrap_or(Value::Null);
        if !schedule.is_null() {
            // An extension: absent from the documented event unless a schedule was given.
            data.insert("schedule".into(), schedule.clone());
        }
        data.insert("createdBy".into(), actor_id(by).into());
        data.insert("timestamp".into(), iso(self.now()).into());
        let now = self.now();
        let cred = Credential {
            id: k.uuid,
            org_id: by.org_id,
            kind: Kind::Share,
            owner_id: by.user_id,
            name: format!("temp key for {}", lock.name),
            prefix: k.uuid.to_string().chars().take(8).collect(),
            // A share key has no secret: its digest is of a random value nobody ever sees, so
            // nothing presented to verify can match it.
            hash: self
                .hasher
                .digest(Purpose::Credential, &secret::new_url_secret())
                .to_vec(),
            scopes: vec![],
            not_before: Some(k.valid_from),
            expires_at: Some(k.valid_until),
            max_uses: k.max_uses,
            used_count: 0,
            allowed_users: if k.access_mode == USER_WHITELIST {
                k.allowed_user_ids.clone()
            } else {
                vec![]
            },
            subject: json!({
                "lock_id": lock.id, "lock_uuid": lock.uuid, "access_mode": k.access_mode,
                "allowed_user_ids": k.allowed_user_ids, "schedule": schedule,
            }),
            metadata: json!({"description": k.description}),
            created_at: now,
            created_by: by.actor.clone(),
            updated_at: now,
            updated_by: by.actor.clone(),
            revoked_at: None,
            revoked_by: None,
        };
        let e = self.share_event(by, k.uuid, share::TEMP_KEY_CREATED, data);
        let version = self.store.insert_credential(&cred, &e).await?;
        Ok(WriteResult::appended(k.uuid, version, share::TEMP_KEY_CREATED, e.data))
    }

    /// Update a share key. Only what differs from the key's state is a change; an update that
    /// changes nothing appends nothing and answers the current version without an event.
    pub async fn update_share_key(
        &self,
        by: &Principal,
        lock_id: i64,
        uuid: Uuid,
        ch: ShareKeyChanges,
    ) -> Result<WriteResult> {
        by.require(SCOPE_SHARE_WRITE)?;
        let lock = self.lock_for(by, lock_id).await?;
        let mut c = self.share_key(by, &lock, uuid).await?;
        let mut state = share::ShareState::from_credential(&c).ok_or_else(|| Error::internal("malformed share key"))?;
        let mut changes = serde_json::Map::new();
        if let Some(m) = ch.access_mode.filter(|m| *m != state.access_mode) {
            changes.insert("accessMode".into(), m.clone().into());
            state.access_mode = m;
        }
        if let Some(u) = ch.allowed_user_ids.filter(|u| *u != state.allowed_user_ids) {
            changes.insert("allowedUserIds".into(), json!(u));
            state.allowed_user_ids = u;
        }
        if let Some(t) = ch
            .valid_from
            .map(to_millis)
            .filter(|t| *t != to_millis(state.valid_from))
        {
            changes.insert("validFrom".into(), iso(t).into());
            state.valid_from = t;
        }
        if let Some(t) = ch
            .valid_until
            .map(to_millis)
            .filter(|t| *t != to_millis(state.valid_until))
        {
            changes.insert("validUntil".into(), iso(t).into());
            state.valid_until = t;
        }
        if let Some(m) = ch.max_uses.filter(|m| *m != state.max_uses) {
            changes.insert("maxUses".into(), json!(m));
            state.max_uses = m;
        }
        if let Some(sch) = ch.schedule {
            let v = sch.as_ref().map(Schedule::to_json).unwrap_or(Value::Null);
            if v != state.schedule {
                changes.insert("schedule".into(), v.clone());
                state.schedule = v;
            }
        }
        if let Some(d) = ch.description.filter(|d| *d != state.description) {
            if d.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
                return Err(Error::invalid(
                    "description",
                    format!("must be at most {MAX_DESCRIPTION} characters"),
                ));
            }
            changes.insert("description".into(), json!(d));
            state.description = d;
        }
        if changes.is_empty() {
            let version = self
                .store
                .events_of(by.org_id, uuid)
                .await?
                .last()
                .map(|e| e.version)
                .ok_or_else(|| Error::internal("a share key without events"))?;
            return Ok(WriteResult {
                aggregate_id: uuid,
                version,
                event: None,
            });
        }
        if state.valid_from >= state.valid_until {
            return Err(Error::invalid("validUntil", "must be after validFrom"));
        }
        self.check_whitelist(by, &state.access_mode, &state.allowed_user_ids)
            .await?;
        c.not_before = Some(state.valid_from);
        c.expires_at = Some(state.valid_until);
        c.max_uses = state.max_uses;
        c.allowed_users = if state.access_mode == USER_WHITELIST {
            state.allowed_user_ids.clone()
        } else {
            vec![]
        };
        c.subject = json!({
            "lock_id": lock.id, "lock_uuid": lock.uuid, "access_mode": state.access_mode,
            "allowed_user_ids": state.allowed_user_ids, "schedule": state.schedule,
        });
        match &mut c.metadata {
            Value::Object(m) => {
                m.insert("description".into(), json!(state.description));
            }
            other => *other = json!({"description": state.description}),
        }
        c.updated_at = self.now();
        c.updated_by = by.actor.clone();
        let mut data = Self::share_base(&lock, uuid);
        data.insert("changes".into(), Value::Object(changes));
        data.insert("updatedBy".into(), actor_id(by).into());
        data.insert("timestamp".into(), iso(self.now()).into());
        let e = self.share_event(by, uuid, share::TEMP_KEY_UPDATED, data);
        let version = self
            .store
            .update_credential(&c, &e)
            .await?
            .ok_or(Error::NotFound("temp key"))?;
        Ok(WriteResult::appended(uuid, version, share::TEMP_KEY_UPDATED, e.data))
    }

    pub async fn delete_share_key(&self, by: &Principal, lock_id: i64, uuid: Uuid) -> Result<WriteResult> {
        by.require(SCOPE_SHARE_WRITE)?;
        let lock = self.lock_for(by, lock_id).await?;
        self.share_key(by, &lock, uuid).await?;
        let mut data = Self::share_base(&lock, uuid);
        data.insert("deletedBy".into(), actor_id(by).into());
        data.insert("timestamp".into(), iso(self.now()).into());
        let e = self.share_event(by, uuid, share::TEMP_KEY_DELETED, data);
        match self
            .store
            .revoke_credential(by.org_id, uuid, self.now(), &by.actor, &e)
            .await?
        {
            Some((_, Some(version))) => Ok(WriteResult::appended(uuid, version, share::TEMP_KEY_DELETED, e.data)),
            _ => Err(Error::NotFound("temp key")),
        }
    }

    /// The lock's live share keys, oldest first.
    pub async fn list_share_keys(&self, by: &Principal, lock_id: i64) -> Result<(Lock, Vec<Credential>)> {
        by.require(SCOPE_SHARE_READ)?;
        let lock = self.lock_for(by, lock_id).await?;
        let out = self
            .share_keys_where(by.org_id, None, |c| {
                c.revoked_at.is_none() && c.subject.get("lock_id").and_then(Value::as_i64) == Some(lock.id)
            })
            .await?;
        Ok((lock, out))
    }

    /// The organization's share keys (of `owner`, if given) that `keep` admits, oldest first.
    pub(crate) async fn share_keys_where(
        &self,
        org_id: Uuid,
        owner: Option<Uuid>,
        keep: impl Fn(&Credential) -> bool,
    ) -> Result<Vec<Credential>> {
        let mut out = self.credentials_where(org_id, Kind::Share, owner, keep).await?;
        out.sort_by_key(|c| c.created_at);
        Ok(out)
    }

    /// Record one use of a share key (for `user`, if given). Exact under concurrency.
    pub async fn use_share_key(
        &self,
        by: &Principal,
        lock_id: i64,
        uuid: Uuid,
        user: Option<Uuid>,
    ) -> Result<WriteResult> {
        by.require(SCOPE_OPERATE)?;
        let lock = self.lock_for(by, lock_id).await?;
        let c = self.share_key(by, &lock, uuid).await?;
        self.consume_share(by.org_id, &by.actor, &lock, c, user, None).await
    }

    /// The shared open/use path: refuse with the reason, or spend one use and append TempKeyUsed.
    pub(crate) async fn consume_share(
        &self,
        org_id: Uuid,
        actor: &str,
        lock: &Lock,
        c: Credential,
        user: Option<Uuid>,
        open: Option<OpenVia>,
    ) -> Result<WriteResult> {
        match self.try_consume_share(org_id, actor, lock, c, user, open).await? {
            Ok((w, _)) => Ok(w),
            Err(Code::Forbidden) => Err(Error::Forbidden("the user is not on this temp key's whitelist".into())),
            Err(Code::Revoked | Code::NotFound) => Err(Error::invalid("tempKeyUuid", "the temp key has been deleted")),
            Err(Code::NotYetValid) => Err(Error::invalid("tempKeyUuid", "the temp key is not valid yet")),
            Err(Code::Expired) => Err(Error::invalid("tempKeyUuid", "the temp key has expired")),
            Err(Code::OutsideSchedule) => Err(Error::invalid(
                "tempKeyUuid",
                "the temp key is outside its schedule now",
            )),
            Err(_) => Err(Error::invalid("tempKeyUuid", "the temp key is used up")),
        }
    }

    /// Spend one use of a share key: `Ok(Ok((write, key after)))`, or `Ok(Err(why not))`.
    async fn try_consume_share(
        &self,
        org_id: Uuid,
        actor: &str,
        lock: &Lock,
        c: Credential,
        user: Option<Uuid>,
        open: Option<OpenVia>,
    ) -> Result<std::result::Result<(WriteResult, Credential), Code>> {
        let ctx = VerifyContext {
            org_id,
            scope: None,
            user,
        };
        let code = verdict(Some(&c), &ctx, self.now());
        if code != Code::Valid {
            return Ok(Err(code));
        }
        if let Some(sch) = c.subject.get("schedule").filter(|v| !v.is_null()) {
            let sch = Schedule::parse(sch).map_err(|_| Error::internal("malformed stored schedule"))?;
            if !sch.allows(self.now()) {
                return Ok(Err(Code::OutsideSchedule));
            }
        }
        let mut data = Self::share_base(lock, c.id);
        if let Some(u) = user {
            data.insert("userId".into(), u.to_string().into());
        }
        if let Some(d) = open.and_then(|o| o.door_id) {
            data.insert("doorId".into(), d.into());
        }
        data.insert("usedCount".into(), Value::Null);
        data.insert("timestamp".into(), iso(self.now()).into());
        let e = self.event(
            org_id,
            share::AGGREGATE,
            c.id,
            share::TEMP_KEY_USED,
            Value::Object(data),
            actor,
        );
        let mut extra = vec![];
        if let Some(o) = open {
            let data = json!({
                "lockId": lock.id, "lockUuid": lock.uuid, "tempKeyUuid": c.id, "userId": user,
                "doorId": o.door_id, "via": o.via, "timestamp": iso(self.now()),
            });
            extra.push(self.event(
                org_id,
                aggregate::LOCK,
                lock.uuid,
                share::LOCK_OPEN_REQUESTED,
                data,
                actor,
            ));
        }
        match self.store.consume_use(org_id, c.id, self.now(), &e, &extra).await? {
            ConsumeOutcome::Used(after, version) => {
                let mut data = e.data;
                if let Value::Object(m) = &mut data {
                    m.insert("usedCount".into(), after.used_count.into());
                }
                let w = WriteResult::appended(c.id, version, share::TEMP_KEY_USED, data);
                Ok(Ok((w, after)))
            }
            ConsumeOutcome::Refused(now) => {
                let code = match verdict(now.as_ref(), &ctx, self.now()) {
                    Code::Valid => Code::UsageExceeded,
                    other => other,
                };
                Ok(Err(code))
            }
        }
    }

    /// The lock a (non-collective) share key is for, if the caller may manage it.
    async fn lock_of(&self, by: &Principal, c: &Credential) -> Result<Lock> {
        let lock_id = c
            .subject
            .get("lock_id")
            .and_then(Value::as_i64)
            .ok_or(Error::NotFound("temp key"))?;
        self.lock_for(by, lock_id).await
    }

    /// `POST /v1/keys/{id}/use` of a share key: the share key's own use (as `use-temp-key`),
    /// answered as a verification.
    pub(crate) async fn use_share_credential(
        &self,
        by: &Principal,
        c: Credential,
        user: Option<Uuid>,
    ) -> Result<Verification> {
        by.require(SCOPE_OPERATE)?;
        let lock = self.lock_of(by, &c).await?;
        let before = c.clone();
        Ok(
            match self
                .try_consume_share(by.org_id, &by.actor, &lock, c, user, None)
                .await?
            {
                Ok((_, after)) => Verification {
                    code: Code::Valid,
                    credential: Some(std::sync::Arc::new(after)),
                },
                Err(code) => Verification {
                    code,
                    credential: Some(std::sync::Arc::new(before)),
                },
            },
        )
    }

    /// `DELETE /v1/keys/{id}` of a share key: its own delete (TempKeyDeleted); a key already
    /// deleted is left as it is.
    pub(crate) async fn delete_share_credential(&self, by: &Principal, c: &Credential) -> Result<()> {
        by.require(SCOPE_SHARE_WRITE)?;
        let lock = self.lock_of(by, c).await?;
        if c.revoked_at.is_none() {
            self.delete_share_key(by, lock.id, c.id).await?;
        }
        Ok(())
    }
}
