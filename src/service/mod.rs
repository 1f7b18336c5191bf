//! The use cases. All rules live here, one function per use case that every surface calls:
//! validity windows, use limits, whitelists, scopes, schedules, ownership and tenancy. Each
//! write is one store transaction that also appends its event. Where each rule lives:
//!
//! | file | use cases |
//! |---|---|
//! | `principal.rs` | who is calling; what a caller may grant (scopes, lifetime) |
//! | `auth.rs` | passwords, tickets, JWTs, organization API keys, sessions |
//! | `orgs.rs`, `users.rs` | organizations and their API keys; users |
//! | `keys.rs` | `/v1/keys` for every kind: native keys' rule, and the dispatch to each kind's |
//! | `personal.rs` | personal access keys (Tedee): create, change, delete, authenticate |
//! | `temporary.rs` | SuperOffice temporary keys |
//! | `share.rs` | locks and their share keys (SmartphoneKey temp keys) |
//! | `collective.rs` | collective keys over several doors |
//! | `foreign.rs` | the ForeignSystem mapping store: applications, devices, foreign keys |
//! | `guest.rs` | the public side: guest links and PIN entry, before any organization is known |
//! | `events.rs` | the audit feed |
//! | `repair.rs` | start-up repair: revoke keys that break their kind's rule |
//!
//! The store is private to the service: no surface reaches it around these rules.

mod auth;
pub mod collective;
mod events;
pub mod foreign;
mod guest;
pub mod jwt;
mod keys;
pub mod limiter;
mod logins;
mod orgs;
pub mod password;
pub mod personal;
mod principal;
mod repair;
pub mod share;
pub mod temporary;
pub mod users;
mod validate;

pub use keys::{NewKey, SecretShape, Verification};
pub use principal::{AuthMethod, Principal};
pub use repair::RepairReport;
pub use validate::{
    MAX_ALLOWED_USERS, MAX_METADATA_BYTES, MAX_NAME_LEN, MAX_PAGE, MAX_SCOPE_LEN, MAX_SCOPES, MAX_USES, check_time,
    validate_name,
};

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::core::event::{NewEvent, aggregate, kind as ev};
use crate::core::secret::{self, SecretHasher};
use crate::error::Result;
use crate::model::{Organization, User};
use crate::store::{Bootstrap, SharedStore};
use chrono::{DateTime, Duration, Utc};
use jwt::JwtVerifier;
use limiter::FailureLimiter;
use serde_json::json;
use uuid::Uuid;

#[derive(Debug)]
pub struct Service {
    store: SharedStore,
    hasher: SecretHasher,
    clock: SharedClock,
    jwt: Option<JwtVerifier>,
    ticket_ttl: Duration,
    session_ttl: Duration,
    logins: logins::Logins,
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
        let pin_window = secs(settings.pin_failure_window_secs.max(1));
        Ok(Self {
            store,
            hasher,
            clock,
            jwt: JwtVerifier::from_settings(settings)?,
            ticket_ttl: secs(settings.ticket_ttl_secs),
            session_ttl: secs(settings.session_ttl_secs),
            logins: logins::Logins::new(settings),
            pin_lock_failures: FailureLimiter::new(settings.pin_max_failures_per_lock, pin_window),
            pin_source_failures: FailureLimiter::new(settings.pin_max_failures_per_source, pin_window),
        })
    }

    /// The injected clock's time, at the microsecond precision the store keeps.
    pub fn now(&self) -> DateTime<Utc> {
        crate::clock::truncate_to_micros(self.clock.now())
    }

    /// Is the database reachable? (`/healthz`)
    pub async fn ping(&self) -> Result<()> {
        self.store.ping().await
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
            disabled: false,
            unlocked_at: None,
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
}
