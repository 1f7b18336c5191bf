//! Authentication: passwords (with the failure limiter), tickets, JWTs, organization API keys
//! and cookie sessions, each turned into a [`Principal`]. Personal access keys authenticate in
//! `personal.rs`, next to their rules. The lookups here are the pre-tenancy ones the store
//! lists (by digest, by username, by a JWT's subject); what follows uses the organization of
//! what they found.

use super::limiter::FailureLimiter;
use super::{AuthMethod, Principal, Service};
use crate::core::event::{actor, aggregate, kind as ev};
use crate::core::secret::{self, Purpose, ct_eq};
use crate::error::{Error, Result};
use crate::model::{LoginToken, TokenKind, User};
use chrono::{DateTime, Utc};
use serde_json::json;

impl Service {
    /// The caller a user's credential makes; a disabled user's every credential is refused here.
    pub(crate) async fn principal_for_user(&self, user: &User, method: AuthMethod) -> Result<Principal> {
        if user.disabled {
            return Err(Error::Unauthenticated);
        }
        let org = self.store.get_org(user.org_id).await?.ok_or(Error::Unauthenticated)?;
        Ok(Principal {
            org_id: user.org_id,
            user_id: Some(user.id),
            is_admin: user.is_admin,
            is_system_admin: user.is_admin && org.is_system,
            actor: actor("user", user.id),
            name: user.username.clone(),
            person_id: user.person_id,
            method,
            scopes: None,
            valid_until: None,
        })
    }

    /// Run `attempt` under failure limiters. Each attempt counts as a failure up front, atomically
    /// with the check, so a burst of concurrent attempts cannot slip past a limit; it is taken
    /// back unless `attempt` ends in a refusal (`Ok(None)`). A blocked key answers `RateLimited`
    /// before `attempt` runs.
    pub(crate) async fn guarded<T>(
        &self,
        limits: &[(&FailureLimiter, &str)],
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
            for (l, k) in limits {
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
        let user = self
            .store
            .get_user(t.org_id, t.user_id)
            .await?
            .ok_or(Error::Unauthenticated)?;
        self.principal_for_user(&user, AuthMethod::Ticket).await
    }

    pub async fn auth_bearer(&self, token: &str) -> Result<Principal> {
        let jwt = self.jwt.as_ref().ok_or(Error::Unauthenticated)?;
        let user_id = jwt.verify(token, self.now()).ok_or(Error::Unauthenticated)?;
        let user = self.store.find_user(user_id).await?.ok_or(Error::Unauthenticated)?;
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
            actor: actor("api_key", k.id),
            name: k.name.clone(),
            person_id: None,
            method: AuthMethod::ApiKey,
            scopes: None,
            valid_until: None,
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
        let user = self
            .store
            .get_user(t.org_id, t.user_id)
            .await?
            .ok_or(Error::Unauthenticated)?;
        self.principal_for_user(&user, AuthMethod::Session).await
    }

    /// `POST /v1/tickets`: a ticket for the signed-in user. Never for an API key, and never for
    /// a personal access key (its scopes would be lost).
    pub async fn create_ticket(&self, by: &Principal) -> Result<(String, DateTime<Utc>)> {
        by.require_unscoped("a ticket")?;
        let uid = by
            .user_id
            .ok_or_else(|| Error::Forbidden("tickets are issued to users, not API keys".into()))?;
        let user = self
            .store
            .get_user(by.org_id, uid)
            .await?
            .ok_or(Error::Unauthenticated)?;
        self.issue_ticket(&user).await
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
            &actor("user", user.id),
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
            &actor("user", user.id),
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
}
