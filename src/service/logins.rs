//! Password logins under load. Three failure limits, all keyed by a digest of the username (so
//! their memory has a fixed bound whatever the usernames): per (user, client address), per
//! client address, and per user from anywhere (the ceiling a distributed guesser meets). An
//! attempt counts as a failure from the moment its argon2id run starts, so a burst of guesses
//! gets no more tries than the same guesses one after another. A correct password is never
//! refused because of other attempts in flight: concurrent identical attempts share one run
//! (single flight), and a verified password is remembered for a minute under a keyed hash of
//! (user id, stored password hash, password), so a changed password misses at once and a wrong
//! one always pays a full argon2id run. The limits are asked before the cache: a remembered
//! password never gets past a 429.

use super::limiter::FailureLimiter;
use super::{Service, password, secs};
use crate::config::Settings;
use crate::core::secret::{Digest, Purpose};
use crate::error::{Error, Result};
use crate::model::User;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::OnceCell;

/// How long a verified password is remembered.
const CACHE_TTL_SECS: i64 = 60;
/// Verified passwords remembered at most.
const CACHE_MAX: usize = 10_000;

type Outcome = Result<Option<User>>;

#[derive(Debug)]
pub(crate) struct Logins {
    per_user_source: FailureLimiter,
    per_source: FailureLimiter,
    per_user: FailureLimiter,
    flights: Mutex<HashMap<Digest, Arc<OnceCell<Outcome>>>>,
    verified: Mutex<HashMap<Digest, DateTime<Utc>>>,
}

impl Logins {
    pub(crate) fn new(s: &Settings) -> Self {
        let window = secs(s.login_failure_window_secs.max(1));
        Logins {
            per_user_source: FailureLimiter::new(s.login_max_failures_per_user_and_source, window),
            per_source: FailureLimiter::new(s.login_max_failures_per_source, window),
            per_user: FailureLimiter::new(
                s.login_max_failures_per_user,
                secs(s.login_user_failure_window_secs.max(1)),
            ),
            flights: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
        }
    }

    fn remembered(&self, key: &Digest, now: DateTime<Utc>) -> bool {
        let m = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        m.get(key).is_some_and(|until| *until > now)
    }

    fn remember(&self, key: Digest, now: DateTime<Utc>) {
        let mut m = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if m.len() >= CACHE_MAX {
            m.retain(|_, until| *until > now);
            if m.len() >= CACHE_MAX {
                m.clear();
            }
        }
        m.insert(key, now + Duration::seconds(CACHE_TTL_SECS));
    }
}

/// The running attempt's place in the flight table, given up when the run ends or is dropped
/// (a client that hangs up mid-run must not leave its entry behind).
struct Flight<'a> {
    flights: &'a Mutex<HashMap<Digest, Arc<OnceCell<Outcome>>>>,
    key: Digest,
    cell: Arc<OnceCell<Outcome>>,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if flights.get(&self.key).is_some_and(|c| Arc::ptr_eq(c, &self.cell)) {
            flights.remove(&self.key);
        }
    }
}

fn hex(d: &Digest) -> String {
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

impl Service {
    fn login_digest(&self, parts: &[&str]) -> Digest {
        self.hasher.digest(Purpose::Login, &parts.join("\0"))
    }

    /// Username and password, within the failure limits.
    pub async fn login(&self, username: &str, password: &str, source: &str) -> Result<User> {
        let now = self.now();
        let user_key = hex(&self.login_digest(&["user", username]));
        let user_source_key = format!("{user_key}@{source}");
        let l = &self.logins;
        let limits = [
            (&l.per_user_source, user_source_key.as_str()),
            (&l.per_source, source),
            (&l.per_user, user_key.as_str()),
        ];
        // Pre-tenancy: a Basic login names no organization.
        let user = if username.len() <= 256 {
            self.store.find_user_by_username(username).await?
        } else {
            None
        };
        // An administrator's unlock (kept in the database, so the CLI's and every node's count)
        // wipes the user's failures up to that moment.
        if let Some(t) = user.as_ref().and_then(|u| u.unlocked_at) {
            l.per_user.forget_until(&user_key, t);
            l.per_user_source.forget_until(&user_source_key, t);
        }
        for (limiter, key) in &limits {
            if let Some(retry_after_secs) = limiter.blocked(key, now) {
                return Err(Error::RateLimited { retry_after_secs });
            }
        }
        if user.as_ref().is_some_and(|u| u.disabled) {
            tracing::info!(source, "login of a disabled user");
            return Err(Error::Unauthenticated);
        }
        let cache_key = user
            .as_ref()
            .map(|u| self.login_digest(&["verified", &u.id.to_string(), &u.password_hash, password]));
        if let (Some(u), Some(k)) = (&user, &cache_key) {
            if l.remembered(k, now) {
                return Ok(u.clone());
            }
        }
        let flight_key = self.login_digest(&["flight", username, password]);
        let cell = {
            let mut flights = l.flights.lock().unwrap_or_else(PoisonError::into_inner);
            flights.entry(flight_key).or_default().clone()
        };
        let ran = AtomicBool::new(false);
        let outcome = cell
            .get_or_init(|| async {
                ran.store(true, Ordering::Relaxed);
                let _flight = Flight {
                    flights: &l.flights,
                    key: flight_key,
                    cell: cell.clone(),
                };
                let phc = user.as_ref().map(|u| u.password_hash.clone());
                let attempt = async {
                    let ok = password::pool()?.verify(password, phc, source).await?;
                    Ok(user.clone().filter(|_| ok))
                };
                let outcome = self.guarded(&limits, attempt).await;
                if let (Ok(Some(_)), Some(k)) = (&outcome, cache_key) {
                    l.remember(k, self.now());
                }
                outcome
            })
            .await
            .clone();
        if !ran.load(Ordering::Relaxed) && matches!(outcome, Ok(None)) {
            // This attempt shared a run that failed: it counts as a failure of its own.
            for (limiter, key) in &limits {
                limiter.fail(key, now);
            }
        }
        match outcome? {
            Some(u) => {
                l.per_user_source.clear(&user_source_key);
                Ok(u)
            }
            None => {
                tracing::info!(source, "failed login");
                Err(Error::Unauthenticated)
            }
        }
    }
}
