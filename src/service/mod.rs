//! The use cases. All rules live here: validity windows, use limits, whitelists, scopes,
//! ownership and tenancy. Each write is one store transaction that also appends its event.

pub mod collective;
pub mod jwt;
pub mod limiter;
pub mod password;
pub mod personal;
pub mod share;
pub mod temporary;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::core::credential::{Code, Credential, Kind, VerifyContext, verdict};
use crate::core::event::{Event, NewEvent, aggregate, kind as ev};
use crate::core::secret::{self, Purpose, SecretHasher, ct_eq};
use crate::error::{Error, Result};
use crate::model::{ApiKey, LoginToken, Organization, TokenKind, User};
use crate::store::{Bootstrap, ConsumeOutcome, CredentialFilter, SharedStore};
use chrono::{DateTime, Duration, Utc};
use jwt::JwtVerifier;
use limiter::FailureLimiter;
use personal::scope;
use serde_json::json;
use uuid::Uuid;

/// How a request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    Ticket,
    Bearer,
    ApiKey,
    Session,
    PersonalKey,
}

/// The authenticated caller. Every operation is confined to `org_id`.
#[derive(Debug, Clone)]
pub struct Principal {
    pub org_id: Uuid,
    pub user_id: Option<Uuid>,
    /// Administers its organization (org admins and organization API keys).
    pub is_admin: bool,
    /// Administers every organization (admins of the bootstrap organization).
    pub is_system_admin: bool,
    /// For the audit log: `user:<uuid>` or `api_key:<uuid>`.
    pub actor: String,
    pub method: AuthMethod,
    /// `Some` when authenticated by a personal access key: only these scopes are granted.
    pub scopes: Option<Vec<String>>,
}

impl Principal {
    /// May this caller act within `scope`? Unscoped credentials (passwords, tickets, JWTs,
    /// API keys, sessions) may; a personal access key only within its scopes, where a
    /// `X.ReadWrite` scope implies `X.Read`.
    pub fn require(&self, scope: &str) -> Result<()> {
        match &self.scopes {
            None => Ok(()),
            Some(granted) if granted.iter().any(|g| personal::scope_implies(g, scope)) => Ok(()),
            Some(_) => Err(Error::Forbidden(format!(
                "the personal access key lacks the scope {scope}"
            ))),
        }
    }

    /// Refuse credentials that are limited by scopes (they must not mint unlimited ones).
    pub fn require_unscoped(&self, what: &str) -> Result<()> {
        match self.scopes {
            None => Ok(()),
            Some(_) => Err(Error::Forbidden(format!(
                "{what} cannot be obtained with a personal access key"
            ))),
        }
    }

    fn require_admin(&self) -> Result<()> {
        if self.is_admin {
            Ok(())
        } else {
            Err(Error::Forbidden("administrator rights required".into()))
        }
    }

    /// May this caller see and manage this credential? Admins see their organization's keys,
    /// users their own.
    fn may_manage(&self, c: &Credential) -> bool {
        c.org_id == self.org_id && (self.is_admin || (self.user_id.is_some() && c.owner_id == self.user_id))
    }
}

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

/// A request to issue a credential, already parsed by a surface.
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
    pub subject: serde_json::Value,
    pub metadata: serde_json::Value,
}

/// The outcome of a verify or use.
#[derive(Debug, Clone)]
pub struct Verification {
    pub code: Code,
    /// The credential, only when the caller may know it exists.
    pub credential: Option<Credential>,
}

pub const MAX_NAME_LEN: usize = 200;
pub const MAX_SCOPES: usize = 100;
pub const MAX_SCOPE_LEN: usize = 128;
pub const MAX_ALLOWED_USERS: usize = 1000;
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
pub const MAX_USES: i64 = 1_000_000_000;
pub const MAX_PAGE: u32 = 500;

#[derive(Debug)]
pub struct Service {
    pub store: SharedStore,
    pub hasher: SecretHasher,
    pub clock: SharedClock,
    jwt: Option<JwtVerifier>,
    ticket_ttl: Duration,
    session_ttl: Duration,
    user_failures: FailureLimiter,
    source_failures: FailureLimiter,
    pin_lock_failures: FailureLimiter,
    pin_source_failures: FailureLimiter,
}

fn secs(n: u64) -> Duration {
    Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX / 1_000_000).min(100 * 365 * 86400))
}

/// The bootstrap credentials, printed once on first start.
#[derive(Debug, Clone)]
pub struct BootstrapInfo {
    pub org_name: String,
    pub username: String,
    pub password: String,
}

impl Service {
    pub fn new(
        store: SharedStore,
        hasher: SecretHasher,
        clock: SharedClock,
        settings: &Settings,
    ) -> Result<Self, String> {
        let window = secs(settings.login_failure_window_secs.max(1));
        let pin_window = secs(settings.pin_failure_window_secs.max(1));
        Ok(Self {
            store,
            hasher,
            clock,
            jwt: JwtVerifier::from_settings(settings)?,
            ticket_ttl: secs(settings.ticket_ttl_secs),
            session_ttl: secs(settings.session_ttl_secs),
            user_failures: FailureLimiter::new(settings.login_max_failures_per_user, window),
            source_failures: FailureLimiter::new(settings.login_max_failures_per_source, window),
            pin_lock_failures: FailureLimiter::new(settings.pin_max_failures_per_lock, pin_window),
            pin_source_failures: FailureLimiter::new(settings.pin_max_failures_per_source, pin_window),
        })
    }

    /// The injected clock's time, at the microsecond precision the store keeps.
    pub fn now(&self) -> DateTime<Utc> {
        let t = self.clock.now();
        DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
    }

    fn event(
        &self,
        org_id: Uuid,
        agg: &'static str,
        id: Uuid,
        kind: &'static str,
        data: serde_json::Value,
        actor: &str,
    ) -> NewEvent {
        NewEvent {
            org_id,
            aggregate_type: agg,
            aggregate_id: id,
            event_type: kind,
            data,
            actor: actor.to_string(),
            at: self.now(),
        }
    }

    // ------------------------------------------------------------------ bootstrap

    /// On first start (no system organization yet): organization `default` and user `admin` with a
    /// random password. Returns the credentials to print once, or `None` if not empty.
    pub async fn bootstrap(&self) -> Result<Option<BootstrapInfo>> {
        if self.store.list_orgs().await?.iter().any(|o| o.is_system) {
            return Ok(None);
        }
        let now = self.now();
        let password = secret::random_from_alphabet(b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789", 24);
        let org = Organization {
            id: Uuid::now_v7(),
            name: "default".into(),
            is_system: true,
            created_at: now,
        };
        let user = User {
            id: Uuid::now_v7(),
            org_id: org.id,
            username: "admin".into(),
            password_hash: password::hash(password.clone()).await?,
            person_id: None,
            is_admin: true,
            created_at: now,
        };
        let events = vec![
            self.event(
                org.id,
                aggregate::ORGANIZATION,
                org.id,
                ev::ORGANIZATION_CREATED,
                json!({"name": org.name, "is_system": true}),
                "system",
            ),
            self.event(
                org.id,
                aggregate::USER,
                user.id,
                ev::USER_CREATED,
                json!({"username": user.username, "is_admin": true, "person_id": null}),
                "system",
            ),
        ];
        let created = self
            .store
            .bootstrap(&Bootstrap {
                org: org.clone(),
                user: user.clone(),
                events,
            })
            .await?;
        Ok(created.then_some(BootstrapInfo {
            org_name: org.name,
            username: user.username,
            password,
        }))
    }

    // ------------------------------------------------------------------ identity

    pub async fn create_org(&self, by: Option<&Principal>, name: &str) -> Result<(Organization, String)> {
        if let Some(p) = by {
            p.require(scope::ORG_WRITE)?;
            if !p.is_system_admin {
                return Err(Error::Forbidden(
                    "only administrators of the system organization may create organizations".into(),
                ));
            }
        }
        validate_org_name(name)?;
        if self.store.get_org_by_name(name).await?.is_some() {
            return Err(Error::Conflict(format!(
                "an organization named {name:?} already exists"
            )));
        }
        let now = self.now();
        let org = Organization {
            id: Uuid::now_v7(),
            name: name.to_string(),
            is_system: false,
            created_at: now,
        };
        let (key, secret) = self.new_api_key(org.id, "default")?;
        let actor = by.map(|p| p.actor.clone()).unwrap_or_else(|| "cli".into());
        let events = [
            self.event(
                org.id,
                aggregate::ORGANIZATION,
                org.id,
                ev::ORGANIZATION_CREATED,
                json!({"name": org.name, "is_system": false}),
                &actor,
            ),
            self.event(
                org.id,
                aggregate::API_KEY,
                key.id,
                ev::API_KEY_CREATED,
                json!({"name": key.name, "prefix": key.prefix}),
                &actor,
            ),
        ];
        self.store.create_org(&org, &key, &events).await?;
        Ok((org, secret))
    }

    pub async fn list_orgs(&self, by: &Principal) -> Result<Vec<Organization>> {
        by.require(scope::ORG_READ)?;
        let all = self.store.list_orgs().await?;
        Ok(if by.is_system_admin {
            all
        } else {
            all.into_iter().filter(|o| o.id == by.org_id).collect()
        })
    }

    pub async fn get_org(&self, by: &Principal, id: Uuid) -> Result<Organization> {
        by.require(scope::ORG_READ)?;
        if !by.is_system_admin && by.org_id != id {
            return Err(Error::NotFound("organization"));
        }
        self.store.get_org(id).await?.ok_or(Error::NotFound("organization"))
    }

    pub async fn org_by_name(&self, name: &str) -> Result<Organization> {
        self.store
            .get_org_by_name(name)
            .await?
            .ok_or(Error::NotFound("organization"))
    }

    /// Create a user. `by` is `None` for the CLI (which has the database itself).
    pub async fn create_user(
        &self,
        by: Option<&Principal>,
        org_id: Uuid,
        username: &str,
        password: String,
        is_admin: bool,
        person_id: Option<i64>,
    ) -> Result<User> {
        if let Some(p) = by {
            p.require(scope::ORG_WRITE)?;
            p.require_admin()?;
            if p.org_id != org_id && !p.is_system_admin {
                return Err(Error::NotFound("organization"));
            }
            if p.user_id.is_none() && p.org_id != org_id {
                return Err(Error::NotFound("organization"));
            }
        }
        validate_username(username)?;
        password::check_policy(&password)?;
        if let Some(pid) = person_id {
            if !(1..=i64::from(i32::MAX)).contains(&pid) {
                return Err(Error::invalid("person_id", "must be between 1 and 2147483647"));
            }
        }
        if self.store.get_org(org_id).await?.is_none() {
            return Err(Error::NotFound("organization"));
        }
        if self.store.get_user_by_username(username).await?.is_some() {
            return Err(Error::Conflict(format!("a user named {username:?} already exists")));
        }
        let user = User {
            id: Uuid::now_v7(),
            org_id,
            username: username.to_string(),
            password_hash: password::hash(password).await?,
            person_id,
            is_admin,
            created_at: self.now(),
        };
        let actor = by.map(|p| p.actor.clone()).unwrap_or_else(|| "cli".into());
        let e = self.event(
            org_id,
            aggregate::USER,
            user.id,
            ev::USER_CREATED,
            json!({"username": user.username, "is_admin": is_admin, "person_id": person_id}),
            &actor,
        );
        self.store.create_user(&user, &e).await?;
        Ok(user)
    }

    pub async fn list_users(&self, by: &Principal) -> Result<Vec<User>> {
        by.require(scope::ORG_READ)?;
        by.require_admin()?;
        self.store.list_users(by.org_id).await
    }

    pub async fn get_user(&self, by: &Principal, id: Uuid) -> Result<User> {
        by.require(if by.user_id == Some(id) {
            scope::ACCOUNT_READ
        } else {
            scope::ORG_READ
        })?;
        let u = self
            .store
            .get_user(id)
            .await?
            .filter(|u| u.org_id == by.org_id)
            .ok_or(Error::NotFound("user"))?;
        if !by.is_admin && by.user_id != Some(u.id) {
            return Err(Error::NotFound("user"));
        }
        Ok(u)
    }

    fn new_api_key(&self, org_id: Uuid, name: &str) -> Result<(ApiKey, String)> {
        let k = secret::new_native_key("kgo_");
        let key = ApiKey {
            id: Uuid::now_v7(),
            org_id,
            name: name.to_string(),
            prefix: k.prefix.clone(),
            hash: self.hasher.digest(Purpose::ApiKey, &k.full).to_vec(),
            created_at: self.now(),
            revoked_at: None,
        };
        Ok((key, k.full))
    }

    pub async fn create_api_key(&self, by: &Principal, name: &str) -> Result<(ApiKey, String)> {
        by.require(scope::ORG_WRITE)?;
        by.require_admin()?;
        validate_name("name", name)?;
        let (key, secret) = self.new_api_key(by.org_id, name)?;
        let e = self.event(
            by.org_id,
            aggregate::API_KEY,
            key.id,
            ev::API_KEY_CREATED,
            json!({"name": key.name, "prefix": key.prefix}),
            &by.actor,
        );
        self.store.create_api_key(&key, &e).await?;
        Ok((key, secret))
    }

    pub async fn list_api_keys(&self, by: &Principal) -> Result<Vec<ApiKey>> {
        by.require(scope::ORG_READ)?;
        by.require_admin()?;
        self.store.list_api_keys(by.org_id).await
    }

    pub async fn revoke_api_key(&self, by: &Principal, id: Uuid) -> Result<ApiKey> {
        by.require(scope::ORG_WRITE)?;
        by.require_admin()?;
        let now = self.now();
        let e = self.event(
            by.org_id,
            aggregate::API_KEY,
            id,
            ev::API_KEY_REVOKED,
            json!({}),
            &by.actor,
        );
        self.store
            .revoke_api_key(by.org_id, id, now, &e)
            .await?
            .ok_or(Error::NotFound("API key"))
    }

    // ------------------------------------------------------------------ authentication

    async fn principal_for_user(&self, user: &User, method: AuthMethod) -> Result<Principal> {
        let org = self.store.get_org(user.org_id).await?.ok_or(Error::Unauthenticated)?;
        Ok(Principal {
            org_id: user.org_id,
            user_id: Some(user.id),
            is_admin: user.is_admin,
            is_system_admin: user.is_admin && org.is_system,
            actor: format!("user:{}", user.id),
            method,
            scopes: None,
        })
    }

    /// Username and password, rate limited per source and per user on failures.
    pub async fn login(&self, username: &str, password: &str, source: &str) -> Result<User> {
        let user_key = format!("user:{username}");
        let source_key = format!("source:{source}");
        let limits = [
            (&self.user_failures, user_key.as_str()),
            (&self.source_failures, source_key.as_str()),
        ];
        let attempt = async {
            let user = if username.len() <= 256 {
                self.store.get_user_by_username(username).await?
            } else {
                None
            };
            let ok = password::verify(password.to_string(), user.as_ref().map(|u| u.password_hash.clone())).await?;
            Ok(user.filter(|_| ok))
        };
        match self.guarded(limits, attempt).await? {
            Some(u) => {
                self.user_failures.clear(&user_key);
                Ok(u)
            }
            None => {
                tracing::info!(source, "failed login");
                Err(Error::Unauthenticated)
            }
        }
    }

    /// Run `attempt` under failure limiters. Each attempt counts as a failure up front, atomically
    /// with the check, so a burst of concurrent attempts cannot slip past a limit; it is taken
    /// back unless `attempt` ends in a refusal (`Ok(None)`). A blocked key answers `RateLimited`
    /// before `attempt` runs.
    pub(crate) async fn guarded<T>(
        &self,
        limits: [(&FailureLimiter, &str); 2],
        attempt: impl std::future::Future<Output = Result<Option<T>>>,
    ) -> Result<Option<T>> {
        let now = self.now();
        for (i, (limiter, key)) in limits.iter().enumerate() {
            if let Some(retry_after_secs) = limiter.attempt(key, now) {
                for (l, k) in &limits[..i] {
                    l.forgive(k, now);
                }
                return Err(Error::RateLimited { retry_after_secs });
            }
        }
        let outcome = attempt.await;
        if !matches!(outcome, Ok(None)) {
            for (l, k) in &limits {
                l.forgive(k, now);
            }
        }
        outcome
    }

    pub async fn auth_basic(&self, username: &str, password: &str, source: &str) -> Result<Principal> {
        let user = self.login(username, password, source).await?;
        self.principal_for_user(&user, AuthMethod::Basic).await
    }

    pub async fn auth_ticket(&self, ticket: &str) -> Result<Principal> {
        let hash = self.hasher.digest(Purpose::Ticket, ticket);
        let t = self
            .store
            .find_login_token(TokenKind::Ticket, &hash, self.now())
            .await?
            .ok_or(Error::Unauthenticated)?;
        if !ct_eq(&t.hash, &hash) {
            return Err(Error::Unauthenticated);
        }
        let user = self.store.get_user(t.user_id).await?.ok_or(Error::Unauthenticated)?;
        self.principal_for_user(&user, AuthMethod::Ticket).await
    }

    pub async fn auth_bearer(&self, token: &str) -> Result<Principal> {
        let jwt = self.jwt.as_ref().ok_or(Error::Unauthenticated)?;
        let user_id = jwt.verify(token, self.now()).ok_or(Error::Unauthenticated)?;
        let user = self.store.get_user(user_id).await?.ok_or(Error::Unauthenticated)?;
        self.principal_for_user(&user, AuthMethod::Bearer).await
    }

    pub async fn auth_api_key(&self, key: &str) -> Result<Principal> {
        let hash = self.hasher.digest(Purpose::ApiKey, key);
        let k = self.store.find_api_key(&hash).await?.ok_or(Error::Unauthenticated)?;
        if !ct_eq(&k.hash, &hash) || k.revoked_at.is_some() {
            return Err(Error::Unauthenticated);
        }
        Ok(Principal {
            org_id: k.org_id,
            user_id: None,
            is_admin: true,
            // Organization API keys administer their own organization only.
            is_system_admin: false,
            actor: format!("api_key:{}", k.id),
            method: AuthMethod::ApiKey,
            scopes: None,
        })
    }

    /// A cookie session. For unsafe methods the XSRF token from the header must equal the
    /// XSRF cookie and be the one bound to the session.
    pub async fn auth_session(
        &self,
        session: &str,
        xsrf_cookie: Option<&str>,
        xsrf_header: Option<&str>,
        unsafe_method: bool,
    ) -> Result<Principal> {
        let hash = self.hasher.digest(Purpose::Session, session);
        let t = self
            .store
            .find_login_token(TokenKind::Session, &hash, self.now())
            .await?
            .ok_or(Error::Unauthenticated)?;
        if !ct_eq(&t.hash, &hash) {
            return Err(Error::Unauthenticated);
        }
        if unsafe_method {
            let (Some(c), Some(h)) = (xsrf_cookie, xsrf_header) else {
                return Err(Error::Forbidden(
                    "missing X-XSRF-TOKEN header or XSRF-TOKEN cookie".into(),
                ));
            };
            let bound = t.xsrf_hash.as_deref().unwrap_or_default();
            if !ct_eq(c.as_bytes(), h.as_bytes()) || !ct_eq(&self.hasher.digest(Purpose::Xsrf, h), bound) {
                return Err(Error::Forbidden("X-XSRF-TOKEN does not match the session".into()));
            }
        }
        let user = self.store.get_user(t.user_id).await?.ok_or(Error::Unauthenticated)?;
        self.principal_for_user(&user, AuthMethod::Session).await
    }

    /// Issue a `7T:` ticket for a user.
    pub async fn issue_ticket(&self, user: &User) -> Result<(String, DateTime<Utc>)> {
        let ticket = format!("7T:{}", secret::new_std_padded_secret());
        let now = self.now();
        let t = LoginToken {
            hash: self.hasher.digest(Purpose::Ticket, &ticket).to_vec(),
            user_id: user.id,
            org_id: user.org_id,
            xsrf_hash: None,
            created_at: now,
            expires_at: now + self.ticket_ttl,
        };
        let e = self.event(
            user.org_id,
            aggregate::USER,
            user.id,
            ev::TICKET_ISSUED,
            json!({"expires_at": t.expires_at}),
            &format!("user:{}", user.id),
        );
        self.store.create_login_token(TokenKind::Ticket, &t, &e).await?;
        Ok((ticket, t.expires_at))
    }

    /// Start a cookie session: returns (session secret, XSRF token, expiry).
    pub async fn start_session(&self, user: &User) -> Result<(String, String, DateTime<Utc>)> {
        let session = secret::new_url_secret();
        let xsrf = secret::new_url_secret();
        let now = self.now();
        let t = LoginToken {
            hash: self.hasher.digest(Purpose::Session, &session).to_vec(),
            user_id: user.id,
            org_id: user.org_id,
            xsrf_hash: Some(self.hasher.digest(Purpose::Xsrf, &xsrf).to_vec()),
            created_at: now,
            expires_at: now + self.session_ttl,
        };
        let e = self.event(
            user.org_id,
            aggregate::USER,
            user.id,
            ev::SESSION_STARTED,
            json!({"expires_at": t.expires_at}),
            &format!("user:{}", user.id),
        );
        self.store.create_login_token(TokenKind::Session, &t, &e).await?;
        Ok((session, xsrf, t.expires_at))
    }

    pub async fn end_session(&self, by: &Principal, session: &str) -> Result<()> {
        let hash = self.hasher.digest(Purpose::Session, session);
        let user_id = by.user_id.unwrap_or_default();
        let e = self.event(
            by.org_id,
            aggregate::USER,
            user_id,
            ev::SESSION_ENDED,
            json!({}),
            &by.actor,
        );
        self.store.delete_login_token(TokenKind::Session, &hash, &e).await?;
        Ok(())
    }

    // ------------------------------------------------------------------ keys

    /// Issue a credential through the native API; returns it and its secret (to show once).
    pub async fn create_key(&self, by: &Principal, req: NewKey, shape: SecretShape) -> Result<(Credential, String)> {
        by.require(scope::ORG_WRITE)?;
        if req.expires_at.is_some_and(|exp| exp <= self.now()) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        self.issue(by, req, shape).await
    }

    /// Issue a credential (every surface's rules have been checked by the caller).
    pub(crate) async fn issue(&self, by: &Principal, req: NewKey, shape: SecretShape) -> Result<(Credential, String)> {
        let now = self.now();
        validate_name("name", &req.name)?;
        if req.scopes.len() > MAX_SCOPES {
            return Err(Error::invalid("scopes", format!("at most {MAX_SCOPES} scopes")));
        }
        for (i, s) in req.scopes.iter().enumerate() {
            if s.is_empty() || s.len() > MAX_SCOPE_LEN || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
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
        for (i, u) in req.allowed_users.iter().enumerate() {
            if self
                .store
                .get_user(*u)
                .await?
                .filter(|u| u.org_id == by.org_id)
                .is_none()
            {
                return Err(Error::invalid(
                    format!("allowed_users[{i}]"),
                    "no such user in this organization",
                ));
            }
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
                if self
                    .store
                    .get_user(o)
                    .await?
                    .filter(|u| u.org_id == by.org_id)
                    .is_none()
                {
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

    /// Verify a presented secret, optionally consuming one use when it is valid.
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
            .filter(|c| ct_eq(&c.hash, &hash));
        let ctx = VerifyContext {
            org_id: by.org_id,
            scope,
            user,
        };
        let code = verdict(found.as_ref(), &ctx, self.now());
        let visible = if code == Code::NotFound { None } else { found };
        let result = match (code, visible) {
            (Code::Valid, Some(c)) if consume => self.consume(by, c, &ctx).await?,
            (code, credential) => Verification { code, credential },
        };
        metrics::counter!("keygate_verifications_total", "code" => result.code.as_str()).increment(1);
        Ok(result)
    }

    async fn consume(&self, by: &Principal, c: Credential, ctx: &VerifyContext) -> Result<Verification> {
        let now = self.now();
        let data = json!({"user": ctx.user, "scope": ctx.scope});
        let e = self.event(by.org_id, aggregate::KEY, c.id, ev::KEY_USED, data, &by.actor);
        match self.store.consume_use(c.org_id, c.id, now, &e, &[]).await? {
            ConsumeOutcome::Used(c, _) => Ok(Verification {
                code: Code::Valid,
                credential: Some(c),
            }),
            ConsumeOutcome::Refused(c) => {
                // Lost a race (or the state changed): report why it is not usable now.
                let code = match verdict(c.as_ref(), ctx, now) {
                    Code::Valid => Code::UsageExceeded,
                    other => other,
                };
                Ok(Verification { code, credential: c })
            }
        }
    }

    /// Consume one use of a key the caller manages, by id.
    pub async fn use_key(
        &self,
        by: &Principal,
        id: Uuid,
        scope: Option<String>,
        user: Option<Uuid>,
    ) -> Result<Verification> {
        by.require(scope::ORG_WRITE)?;
        let c = self.get_key(by, id).await?;
        let ctx = VerifyContext {
            org_id: by.org_id,
            scope,
            user,
        };
        let result = match verdict(Some(&c), &ctx, self.now()) {
            Code::Valid => self.consume(by, c, &ctx).await?,
            code => Verification {
                code,
                credential: Some(c),
            },
        };
        metrics::counter!("keygate_verifications_total", "code" => result.code.as_str()).increment(1);
        Ok(result)
    }

    pub async fn get_key(&self, by: &Principal, id: Uuid) -> Result<Credential> {
        by.require(scope::ORG_READ)?;
        self.store
            .get_credential(by.org_id, id)
            .await?
            .filter(|c| by.may_manage(c))
            .ok_or(Error::NotFound("key"))
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

    pub async fn revoke_key(&self, by: &Principal, id: Uuid) -> Result<Credential> {
        by.require(scope::ORG_WRITE)?;
        self.get_key(by, id).await?;
        let now = self.now();
        let e = self.event(by.org_id, aggregate::KEY, id, ev::KEY_REVOKED, json!({}), &by.actor);
        self.store
            .revoke_credential(by.org_id, id, now, &by.actor, &e)
            .await?
            .map(|(c, _)| c)
            .ok_or(Error::NotFound("key"))
    }

    // ------------------------------------------------------------------ events

    pub async fn list_events(&self, by: &Principal, after: i64, limit: u32) -> Result<Vec<Event>> {
        by.require(scope::ORG_READ)?;
        by.require_admin()?;
        self.store
            .list_events(by.org_id, after.max(0), limit.clamp(1, MAX_PAGE))
            .await
    }
}

/// Event data for a new key: its policy, never its secret or digest.
fn key_created_data(c: &Credential) -> serde_json::Value {
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

/// Dates keygate accepts: 1970-01-01 to 9999-12-31 (the range every peer system can hold).
pub fn check_time(field: &str, t: Option<DateTime<Utc>>) -> Result<()> {
    use chrono::Datelike;
    match t {
        Some(t) if !(1970..=9999).contains(&t.year()) => {
            Err(Error::invalid(field, "must be between 1970-01-01 and 9999-12-31"))
        }
        _ => Ok(()),
    }
}

pub fn validate_name(field: &str, name: &str) -> Result<()> {
    let n = name.chars().count();
    if name.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if n > MAX_NAME_LEN {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn validate_username(u: &str) -> Result<()> {
    if u.is_empty() || u.len() > 64 || !u.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c)) {
        return Err(Error::invalid(
            "username",
            "must be 1 to 64 characters of letters, digits, '.', '_', '@' or '-'",
        ));
    }
    Ok(())
}

fn validate_org_name(n: &str) -> Result<()> {
    if n.is_empty()
        || n.len() > 100
        || !n.chars().all(|c| c.is_ascii_alphanumeric() || "._- ".contains(c))
        || n.trim() != n
    {
        return Err(Error::invalid(
            "name",
            "must be 1 to 100 characters of letters, digits, space, '.', '_' or '-'",
        ));
    }
    Ok(())
}
