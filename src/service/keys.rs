//! Keys of every kind through the native API (`/v1/keys`): create, verify, use, read, list and
//! revoke. Native keys (kind `api`) have their rule here. For every other kind, the native
//! route calls that kind's own function with the same caller (`personal.rs`, `temporary.rs`,
//! `share.rs`, `collective.rs`), so a request gets the same answer on either route and no rule
//! is written twice.

use super::personal::{PersonalKeyRequest, scope};
use super::share::ShareKeyInput;
use super::temporary::{Domain, TemporaryKeyRequest};
use super::validate::{
    MAX_ALLOWED_USERS, MAX_METADATA_BYTES, MAX_PAGE, MAX_SCOPE_LEN, MAX_SCOPES, MAX_USES, check_time, validate_name,
};
use super::{Principal, Service};
use crate::core::credential::{Code, Credential, Kind, VerifyContext, verdict};
use crate::core::event::{aggregate, kind as ev};
use crate::core::secret::{self, Purpose, ct_eq};
use crate::core::share::{PUBLIC, Schedule, USER_WHITELIST, is_collective};
use crate::error::{Error, Result};
use crate::store::{ConsumeOutcome, CredentialFilter};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use uuid::Uuid;

/// The shape of a new key's secret.
#[derive(Debug, Clone, Copy)]
pub enum SecretShape {
    /// `kg_xxxxxxxx.<base64url>`: native API keys.
    Native,
    /// `<base64url>` only: SuperOffice temporary keys.
    UrlSafe,
    /// `abcdef.<base64>`: Tedee personal access keys.
    Personal,
}

/// A request to issue a key through `POST /v1/keys`, already parsed by the surface.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub kind: Option<Kind>,
    pub name: String,
    pub owner_id: Option<Uuid>,
    pub scopes: Vec<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i64>,
    pub allowed_users: Vec<Uuid>,
    pub subject: Value,
    pub metadata: Value,
}

/// Count a verdict in `keygate_verifications_total{code}`. The handles are made once per code
/// (on first use, after the server installed its metrics recorder), so that a verify does not
/// build the label set and look the series up again.
fn count_verification(code: Code) {
    static COUNTERS: [OnceLock<metrics::Counter>; 9] = [const { OnceLock::new() }; 9];
    let make = || metrics::counter!("keygate_verifications_total", "code" => code.as_str());
    match COUNTERS.get(code as usize) {
        Some(c) => c.get_or_init(make).increment(1),
        None => make().increment(1),
    }
}

/// The outcome of a verify or use.
#[derive(Debug, Clone)]
pub struct Verification {
    pub code: Code,
    /// The credential, only when the caller may know it exists (shared with the credential
    /// cache when it came from there: the answer is written from it, never copied).
    pub credential: Option<Arc<Credential>>,
}

/// Refuse a field that a kind does not take, so that nothing sent is silently dropped.
fn not_for(kind: Kind, field: &str, present: bool) -> Result<()> {
    if present {
        return Err(Error::invalid(
            field,
            format!("is not taken by a key of kind {}", kind.as_str()),
        ));
    }
    Ok(())
}

/// A kind whose keys belong to whoever creates them: an `owner` other than the caller is refused.
fn caller_owns(by: &Principal, owner: Option<Uuid>, why: &str) -> Result<()> {
    if owner.is_some_and(|o| Some(o) != by.user_id) {
        return Err(Error::Forbidden(why.into()));
    }
    Ok(())
}

/// The only members a JSON object may have, for the `subject` and `metadata` of a kind.
fn object_with(field: &str, v: &Value, allowed: &[&str]) -> Result<serde_json::Map<String, Value>> {
    match v {
        Value::Null => Ok(serde_json::Map::new()),
        Value::Object(m) => {
            if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(Error::invalid(
                    format!("{field}.{k}"),
                    format!("is not taken here; expected only {}", allowed.join(", ")),
                ));
            }
            Ok(m.clone())
        }
        _ => Err(Error::invalid(field, "must be a JSON object")),
    }
}

fn int_member(m: &serde_json::Map<String, Value>, field: &str, name: &str, required: bool) -> Result<Option<i64>> {
    match m.get(name) {
        None | Some(Value::Null) if required => Err(Error::invalid(format!("{field}.{name}"), "is required")),
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| Error::invalid(format!("{field}.{name}"), "must be an integer")),
    }
}

impl Service {
    /// `POST /v1/keys`: issue a key of any kind; returns it and its secret (to show once;
    /// `None` for share keys, which have no secret).
    pub async fn create_key(&self, by: &Principal, req: NewKey) -> Result<(Credential, Option<String>)> {
        match req.kind.unwrap_or(Kind::Api) {
            Kind::Api => {
                let (c, s) = self.create_native_key(by, req).await?;
                Ok((c, Some(s)))
            }
            Kind::Personal => {
                let (c, s) = self.create_personal_key_native(by, req).await?;
                Ok((c, Some(s)))
            }
            Kind::Temporary => {
                let (c, s) = self.create_temporary_key_native(by, req).await?;
                Ok((c, Some(s)))
            }
            Kind::Share => Ok((self.create_share_key_native(by, req).await?, None)),
        }
    }

    /// A native key: the organization may issue them (`Organization.ReadWrite`); administrators
    /// may name another owner of the organization. A personal access key cannot put on it a
    /// catalogue scope it lacks, nor let it outlive itself.
    async fn create_native_key(&self, by: &Principal, req: NewKey) -> Result<(Credential, String)> {
        by.require(scope::ORG_WRITE)?;
        if req.expires_at.is_some_and(|exp| exp <= self.now()) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        by.may_grant_scopes("scopes", &req.scopes)?;
        by.may_grant_lifetime("expires_at", req.expires_at)?;
        let new = NewKey {
            kind: Some(Kind::Api),
            ..req
        };
        self.issue(by, new, SecretShape::Native).await
    }

    /// A personal key through the native route: the Tedee route's rule, for the caller itself
    /// only (a personal key acts as its owner, so nobody makes one for somebody else).
    async fn create_personal_key_native(&self, by: &Principal, req: NewKey) -> Result<(Credential, String)> {
        caller_owns(by, req.owner_id, "personal access keys are created only by their owner")?;
        let k = Kind::Personal;
        not_for(k, "not_before", req.not_before.is_some())?;
        not_for(k, "max_uses", req.max_uses.is_some())?;
        not_for(k, "allowed_users", !req.allowed_users.is_empty())?;
        not_for(k, "subject", !req.subject.is_null())?;
        not_for(k, "metadata", !req.metadata.is_null())?;
        let valid_to = req
            .expires_at
            .ok_or_else(|| Error::invalid("expires_at", "is required: a personal access key lives at most 5 years"))?;
        let r = PersonalKeyRequest {
            name: req.name,
            valid_to,
            scopes: req.scopes,
        };
        self.create_personal_key(by, r).await
    }

    /// A SuperOffice temporary key through the native route: `subject` is `{domain, target_id,
    /// person_id}`, `metadata` may hold `payload`, and `expires_at` is required.
    async fn create_temporary_key_native(&self, by: &Principal, req: NewKey) -> Result<(Credential, String)> {
        let k = Kind::Temporary;
        caller_owns(
            by,
            req.owner_id,
            "a temporary key belongs to the caller that creates it",
        )?;
        not_for(k, "scopes", !req.scopes.is_empty())?;
        not_for(k, "not_before", req.not_before.is_some())?;
        not_for(k, "max_uses", req.max_uses.is_some())?;
        not_for(k, "allowed_users", !req.allowed_users.is_empty())?;
        let subject = object_with("subject", &req.subject, &["domain", "target_id", "person_id"])?;
        let domain = match subject.get("domain") {
            Some(Value::String(s)) => Domain::parse(s),
            Some(Value::Number(n)) => Domain::parse(&n.to_string()),
            _ => None,
        }
        .ok_or_else(|| Error::invalid("subject.domain", "must be a TemporaryKeyDomain name or number"))?;
        let int32 = |name: &str| -> Result<i32> {
            let v = int_member(&subject, "subject", name, false)?.unwrap_or(0);
            i32::try_from(v).map_err(|_| Error::invalid(format!("subject.{name}"), "must be a 32-bit integer"))
        };
        let metadata = object_with("metadata", &req.metadata, &["payload"])?;
        let payload = match metadata.get("payload") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(Error::invalid("metadata.payload", "must be a string")),
        };
        let expires = req
            .expires_at
            .ok_or_else(|| Error::invalid("expires_at", "is required for a temporary key"))?;
        let r = TemporaryKeyRequest {
            domain,
            target_id: int32("target_id")?,
            person_id: int32("person_id")?,
            expires,
            payload,
            application: None,
            name: Some(req.name),
        };
        self.create_temporary_key(by, r).await
    }

    /// A share key through the native route: `subject` is `{lock_id, schedule?}`; `not_before`
    /// and `expires_at` are its window, `max_uses` its limit, `allowed_users` its whitelist
    /// (public when empty), and `metadata` may hold `description`. Collective keys are made
    /// with `POST /temp-keys`.
    async fn create_share_key_native(&self, by: &Principal, req: NewKey) -> Result<Credential> {
        let k = Kind::Share;
        caller_owns(by, req.owner_id, "a share key belongs to the caller that creates it")?;
        not_for(k, "scopes", !req.scopes.is_empty())?;
        let subject = object_with("subject", &req.subject, &["lock_id", "schedule"])?;
        let lock_id = int_member(&subject, "subject", "lock_id", true)?.unwrap_or_default();
        let schedule = match subject.get("schedule") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Schedule::parse(v).map_err(|(f, m)| Error::invalid(format!("subject.{f}"), m))?),
        };
        let metadata = object_with("metadata", &req.metadata, &["description"])?;
        let description = match metadata.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(Error::invalid("metadata.description", "must be a string")),
        };
        let valid_until = req
            .expires_at
            .ok_or_else(|| Error::invalid("expires_at", "is required for a share key"))?;
        let input = ShareKeyInput {
            uuid: Uuid::new_v4(),
            access_mode: if req.allowed_users.is_empty() {
                PUBLIC.into()
            } else {
                USER_WHITELIST.into()
            },
            allowed_user_ids: req.allowed_users,
            valid_from: req.not_before.unwrap_or_else(|| self.now()),
            valid_until,
            max_uses: req.max_uses,
            description,
            schedule,
        };
        let w = self.create_share_key(by, lock_id, input).await?;
        self.store
            .get_credential(by.org_id, w.aggregate_id)
            .await?
            .ok_or_else(|| Error::internal("a created share key vanished"))
    }

    /// Write a credential whose kind-specific rule the caller (a function of this service) has
    /// already checked: the checks every kind shares, then the row and its KeyCreated event.
    pub(crate) async fn issue(&self, by: &Principal, req: NewKey, shape: SecretShape) -> Result<(Credential, String)> {
        let now = self.now();
        validate_name("name", &req.name)?;
        if req.scopes.len() > MAX_SCOPES {
            return Err(Error::invalid("scopes", format!("at most {MAX_SCOPES} scopes")));
        }
        for (i, s) in req.scopes.iter().enumerate() {
            if s.is_empty()
                || s.chars().count() > MAX_SCOPE_LEN
                || s.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(Error::invalid(
                    format!("scopes[{i}]"),
                    format!("must be 1 to {MAX_SCOPE_LEN} characters without spaces"),
                ));
            }
        }
        check_time("not_before", req.not_before)?;
        check_time("expires_at", req.expires_at)?;
        if let Some(exp) = req.expires_at {
            if req.not_before.is_some_and(|nb| nb >= exp) {
                return Err(Error::invalid("not_before", "must be before expires_at"));
            }
        }
        if let Some(m) = req.max_uses {
            if !(1..=MAX_USES).contains(&m) {
                return Err(Error::invalid("max_uses", format!("must be between 1 and {MAX_USES}")));
            }
        }
        if req.allowed_users.len() > MAX_ALLOWED_USERS {
            return Err(Error::invalid(
                "allowed_users",
                format!("at most {MAX_ALLOWED_USERS} users"),
            ));
        }
        self.check_members(by.org_id, "allowed_users", &req.allowed_users)
            .await?;
        if !(req.subject.is_null() || req.subject.is_object()) {
            return Err(Error::invalid("subject", "must be a JSON object"));
        }
        if !(req.metadata.is_null() || req.metadata.is_object()) {
            return Err(Error::invalid("metadata", "must be a JSON object"));
        }
        if serde_json::to_vec(&req.metadata).map(|v| v.len()).unwrap_or(usize::MAX) > MAX_METADATA_BYTES {
            return Err(Error::invalid(
                "metadata",
                format!("must be at most {MAX_METADATA_BYTES} bytes"),
            ));
        }
        let owner_id = match req.owner_id {
            Some(o) if Some(o) != by.user_id => {
                if !by.is_admin {
                    return Err(Error::Forbidden(
                        "only administrators may issue keys for another owner".into(),
                    ));
                }
                if self.store.get_user(by.org_id, o).await?.is_none() {
                    return Err(Error::invalid("owner", "no such user in this organization"));
                }
                Some(o)
            }
            Some(o) => Some(o),
            None => by.user_id,
        };
        let (secret, prefix) = match shape {
            SecretShape::Native => {
                let k = secret::new_native_key("kg_");
                (k.full, k.prefix)
            }
            SecretShape::Personal => {
                let k = secret::new_personal_key();
                (k.full, k.prefix)
            }
            SecretShape::UrlSafe => {
                let s = secret::new_url_secret();
                let p = s.chars().take(6).collect();
                (s, p)
            }
        };
        let cred = Credential {
            id: Uuid::now_v7(),
            org_id: by.org_id,
            kind: req.kind.unwrap_or(Kind::Api),
            owner_id,
            name: req.name,
            prefix,
            hash: self.hasher.digest(Purpose::Credential, &secret).to_vec(),
            scopes: req.scopes,
            not_before: req.not_before,
            expires_at: req.expires_at,
            max_uses: req.max_uses,
            used_count: 0,
            allowed_users: req.allowed_users,
            subject: req.subject,
            metadata: if req.metadata.is_null() {
                json!({})
            } else {
                req.metadata
            },
            created_at: now,
            created_by: by.actor.clone(),
            updated_at: now,
            updated_by: by.actor.clone(),
            revoked_at: None,
            revoked_by: None,
        };
        let e = self.event(
            by.org_id,
            aggregate::KEY,
            cred.id,
            ev::KEY_CREATED,
            key_created_data(&cred),
            &by.actor,
        );
        self.store.insert_credential(&cred, &e).await?;
        Ok((cred, secret))
    }

    /// Verify a presented secret, optionally consuming one use when it is valid. Only the kinds
    /// that have a secret verify here; a share key answers NOT_FOUND like an unknown key.
    pub async fn verify_key(
        &self,
        by: &Principal,
        secret: &str,
        scope: Option<String>,
        user: Option<Uuid>,
        consume: bool,
    ) -> Result<Verification> {
        by.require(if consume { scope::ORG_WRITE } else { scope::ORG_READ })?;
        let hash = self.hasher.digest(Purpose::Credential, secret);
        let found = self
            .store
            .find_credential_by_hash(&hash)
            .await?
            .filter(|c| ct_eq(&c.hash, &hash) && c.kind.has_secret());
        let ctx = VerifyContext {
            org_id: by.org_id,
            scope,
            user,
        };
        let code = verdict(found.as_deref(), &ctx, self.now());
        let visible = if code == Code::NotFound { None } else { found };
        let result = match (code, visible) {
            (Code::Valid, Some(c)) if consume => self.consume(by, &c, &ctx).await?,
            (code, credential) => Verification { code, credential },
        };
        count_verification(result.code);
        Ok(result)
    }

    async fn consume(&self, by: &Principal, c: &Credential, ctx: &VerifyContext) -> Result<Verification> {
        let now = self.now();
        let data = json!({"user": ctx.user, "scope": ctx.scope});
        let e = self.event(by.org_id, aggregate::KEY, c.id, ev::KEY_USED, data, &by.actor);
        match self.store.consume_use(c.org_id, c.id, now, &e, &[]).await? {
            ConsumeOutcome::Used(c, _) => Ok(Verification {
                code: Code::Valid,
                credential: Some(Arc::new(c)),
            }),
            ConsumeOutcome::Refused(c) => {
                // Lost a race (or the state changed): report why it is not usable now.
                let code = match verdict(c.as_ref(), ctx, now) {
                    Code::Valid => Code::UsageExceeded,
                    other => other,
                };
                Ok(Verification {
                    code,
                    credential: c.map(Arc::new),
                })
            }
        }
    }

    /// `POST /v1/keys/{id}/use`: consume one use. A share key goes through the share key's own
    /// use (its lock's rights, window, schedule, whitelist, and the TempKeyUsed event).
    pub async fn use_key(
        &self,
        by: &Principal,
        id: Uuid,
        scope: Option<String>,
        user: Option<Uuid>,
    ) -> Result<Verification> {
        let found = self.store.get_credential(by.org_id, id).await?;
        let result = match found {
            Some(c) if c.kind == Kind::Share => {
                if is_collective(&c) {
                    by.require(super::share::SCOPE_OPERATE)?;
                    return Err(Error::invalid(
                        "id",
                        "a collective key opens one of its doors: POST /temp-keys/{uuid}/open",
                    ));
                }
                self.use_share_credential(by, c, user).await?
            }
            found => {
                by.require(scope::ORG_WRITE)?;
                let c = Self::manageable(by, found)?;
                let ctx = VerifyContext {
                    org_id: by.org_id,
                    scope,
                    user,
                };
                match verdict(Some(&c), &ctx, self.now()) {
                    Code::Valid => self.consume(by, &c, &ctx).await?,
                    code => Verification {
                        code,
                        credential: Some(Arc::new(c)),
                    },
                }
            }
        };
        count_verification(result.code);
        Ok(result)
    }

    /// Every credential of the organization of `kind` (and of `owner`, if given) that `keep`
    /// admits, in id order, read page by page.
    pub(crate) async fn credentials_where(
        &self,
        org_id: Uuid,
        kind: Kind,
        owner: Option<Uuid>,
        keep: impl Fn(&Credential) -> bool,
    ) -> Result<Vec<Credential>> {
        let mut out = vec![];
        let mut after = None;
        loop {
            let f = CredentialFilter {
                kind: Some(kind),
                owner_id: owner,
                after,
                limit: MAX_PAGE,
            };
            let page = self.store.list_credentials(org_id, &f).await?;
            let full = page.len() as u32 == MAX_PAGE;
            after = page.last().map(|c| c.id);
            out.extend(page.into_iter().filter(|c| keep(c)));
            if !full {
                return Ok(out);
            }
        }
    }

    /// One key of any kind: administrators see the organization's, users their own. A revoked key
    /// is gone from here (`DELETE /v1/keys/{id}` revoked it, so reading it answers 404 as after any
    /// DELETE); the list, verify and the events still show it.
    pub async fn get_key(&self, by: &Principal, id: Uuid) -> Result<Credential> {
        let found = self.store.get_credential(by.org_id, id).await?;
        Self::manageable(by, found.filter(|c| c.revoked_at.is_none()))
    }

    /// A credential already read from the caller's organization, if the caller may see it.
    fn manageable(by: &Principal, found: Option<Credential>) -> Result<Credential> {
        by.require(scope::ORG_READ)?;
        found.filter(|c| by.may_manage(c)).ok_or(Error::NotFound("key"))
    }

    pub async fn list_keys(&self, by: &Principal, mut f: CredentialFilter) -> Result<Vec<Credential>> {
        by.require(scope::ORG_READ)?;
        if !by.is_admin {
            match (f.owner_id, by.user_id) {
                (Some(o), Some(me)) if o != me => return Ok(vec![]),
                _ => f.owner_id = by.user_id,
            }
        }
        f.limit = f.limit.clamp(1, MAX_PAGE);
        self.store.list_credentials(by.org_id, &f).await
    }

    /// `keygate key revoke` (the CLI): revoke a key of the organization `org_id` as the operator,
    /// by the same rule as `DELETE /v1/keys/{id}`.
    pub async fn operator_revoke_key(&self, org_id: Uuid, id: Uuid) -> Result<Credential> {
        self.revoke_key(&Principal::operator(org_id), id).await
    }

    /// `DELETE /v1/keys/{id}`: revoke a key; revoking twice is harmless. A share key is deleted
    /// through its own rule, with the same events as SmartphoneKey's routes.
    pub async fn revoke_key(&self, by: &Principal, id: Uuid) -> Result<Credential> {
        let found = self.store.get_credential(by.org_id, id).await?;
        match found {
            Some(c) if c.kind == Kind::Share => {
                if is_collective(&c) {
                    self.delete_collective_key(by, id).await?;
                } else {
                    self.delete_share_credential(by, &c).await?;
                }
                self.store
                    .get_credential(by.org_id, id)
                    .await?
                    .ok_or(Error::NotFound("key"))
            }
            found => {
                by.require(scope::ORG_WRITE)?;
                Self::manageable(by, found)?;
                let now = self.now();
                let e = self.event(by.org_id, aggregate::KEY, id, ev::KEY_REVOKED, json!({}), &by.actor);
                self.store
                    .revoke_credential(by.org_id, id, now, &by.actor, &e)
                    .await?
                    .map(|(c, _)| c)
                    .ok_or(Error::NotFound("key"))
            }
        }
    }
}

/// Event data for a new key: its policy, never its secret or digest.
fn key_created_data(c: &Credential) -> Value {
    json!({
        "kind": c.kind.as_str(),
        "name": c.name,
        "owner_id": c.owner_id,
        "prefix": c.prefix,
        "scopes": c.scopes,
        "not_before": c.not_before,
        "expires_at": c.expires_at,
        "max_uses": c.max_uses,
        "allowed_users": c.allowed_users,
        "subject": c.subject,
        "application": c.metadata.get("application"),
    })
}
