//! Counts failed attempts (logins, PIN entries) per key (a source address, a username, a lock)
//! in a sliding window on the injected clock. Once a key has `max` failures inside the window
//! it is refused until the oldest failure leaves the window. An attempt counts as a failure from
//! the moment it starts, atomically with the check, so a burst of concurrent attempts cannot all
//! slip in under the limit; a successful attempt is then forgiven, so a legitimate user who types
//! the right secret is never slowed down.

use chrono::{DateTime, Duration, Utc};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Keys tracked at most; beyond it the stalest entries are dropped.
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub struct FailureLimiter {
    max: u32,
    window: Duration,
    inner: Mutex<HashMap<String, VecDeque<DateTime<Utc>>>>,
}

impl FailureLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window,
            inner: Mutex::new(HashMap::new()),
        }
    }

    /// Start an attempt for `key` at `now`: `Some(retry_after_secs)` (and nothing counted) when
    /// the key is blocked, else `None` with the attempt counted as a failure until
    /// [`Self::forgive`] takes it back.
    pub fn attempt(&self, key: &str, now: DateTime<Utc>) -> Option<u64> {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(wait) = map.get(key).and_then(|q| self.wait(q, now)) {
            return Some(wait);
        }
        self.make_room(&mut map, key, now);
        let q = map.entry(key.to_string()).or_default();
        while q.front().is_some_and(|t| *t + self.window <= now) {
            q.pop_front();
        }
        q.push_back(now);
        None
    }

    /// Is `key` blocked at `now`? `Some(retry_after_secs)` if so; counts nothing.
    pub fn blocked(&self, key: &str, now: DateTime<Utc>) -> Option<u64> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).and_then(|q| self.wait(q, now))
    }

    /// Seconds until the failures `q` (oldest first) stop blocking at `now`, if they block.
    fn wait(&self, q: &VecDeque<DateTime<Utc>>, now: DateTime<Utc>) -> Option<u64> {
        let first_live = q.iter().position(|t| *t + self.window > now)?;
        if q.len() - first_live < self.max as usize {
            return None;
        }
        Some((q[first_live] + self.window - now).num_seconds().max(0) as u64 + 1)
    }

    /// Before `key` gets an entry: keep the number of keys under [`MAX_KEYS`], dropping stale
    /// keys first and, when every key is live, an arbitrary one rather than grow without bound.
    fn make_room(&self, map: &mut HashMap<String, VecDeque<DateTime<Utc>>>, key: &str, now: DateTime<Utc>) {
        if map.contains_key(key) || map.len() < MAX_KEYS {
            return;
        }
        let window = self.window;
        map.retain(|_, q| q.back().is_some_and(|t| *t + window > now));
        if map.len() >= MAX_KEYS {
            if let Some(k) = map.keys().next().cloned() {
                map.remove(&k);
            }
        }
    }

    /// Count one failure of `key` at `now`, whatever the count (an attempt that shared another's
    /// failed run).
    pub fn fail(&self, key: &str, now: DateTime<Utc>) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        self.make_room(&mut map, key, now);
        let q = map.entry(key.to_string()).or_default();
        q.push_back(now);
        // A key never needs more entries than it takes to block it.
        while q.len() > self.max as usize * 2 {
            q.pop_front();
        }
    }

    /// Take back one attempt started at `at` (it succeeded, or never got to be judged).
    pub fn forgive(&self, key: &str, at: DateTime<Utc>) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = map.get_mut(key) {
            if let Some(i) = q.iter().rposition(|t| *t == at) {
                q.remove(i);
            }
            if q.is_empty() {
                map.remove(key);
            }
        }
    }

    /// Forget the failures of `key` at or before `t` (an administrator's unlock at `t`).
    pub fn forget_until(&self, key: &str, t: DateTime<Utc>) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = map.get_mut(key) {
            q.retain(|at| *at > t);
            if q.is_empty() {
                map.remove(key);
            }
        }
    }

    /// Forget every failure of `key`.
    pub fn clear(&self, key: &str) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_count_before_they_finish_and_successes_are_forgiven() {
        let l = FailureLimiter::new(2, Duration::seconds(60));
        let t0 = Utc::now();
        assert_eq!(l.attempt("k", t0), None);
        assert_eq!(l.attempt("k", t0), None);
        // Two attempts in flight: a third is refused before either finishes.
        assert!(l.attempt("k", t0).is_some());
        l.forgive("k", t0);
        assert_eq!(l.attempt("k", t0), None);
        assert!(l.attempt("k", t0 + Duration::seconds(59)).is_some());
        assert_eq!(l.attempt("k", t0 + Duration::seconds(60)), None);
    }

    #[test]
    fn blocks_after_max_failures_and_recovers_when_the_window_passes() {
        let l = FailureLimiter::new(3, Duration::seconds(60));
        let t0 = Utc::now();
        for i in 0..3 {
            assert!(l.attempt("u", t0).is_none(), "attempt {i}");
        }
        let wait = l.attempt("u", t0).unwrap();
        assert!((60..=61).contains(&wait));
        assert!(l.attempt("other", t0).is_none());
        assert!(l.attempt("u", t0 + Duration::seconds(59)).is_some());
        assert!(l.attempt("u", t0 + Duration::seconds(60)).is_none());
    }

    #[test]
    fn blocked_counts_nothing_and_shared_failures_count() {
        let l = FailureLimiter::new(2, Duration::seconds(60));
        let t0 = Utc::now();
        assert_eq!(l.blocked("k", t0), None);
        l.fail("k", t0);
        assert_eq!(l.blocked("k", t0), None);
        assert_eq!(l.blocked("k", t0), None, "asking counts nothing");
        l.fail("k", t0 + Duration::seconds(10));
        assert_eq!(l.blocked("k", t0 + Duration::seconds(10)), Some(51));
        assert!(l.attempt("k", t0 + Duration::seconds(10)).is_some());
        // The first failure leaves the window: one live failure, not blocked.
        assert_eq!(l.blocked("k", t0 + Duration::seconds(60)), None);
        l.forget_until("k", t0 + Duration::seconds(10));
        assert_eq!(l.attempt("k", t0 + Duration::seconds(11)), None);
    }

    #[test]
    fn clear_forgets_failures() {
        let l = FailureLimiter::new(1, Duration::seconds(60));
        let t0 = Utc::now();
        assert!(l.attempt("u", t0).is_none());
        assert!(l.attempt("u", t0).is_some());
        l.clear("u");
        assert!(l.attempt("u", t0).is_none());
    }

    #[test]
    fn memory_stays_bounded_under_many_keys() {
        let l = FailureLimiter::new(1, Duration::seconds(60));
        let t0 = Utc::now();
        for i in 0..MAX_KEYS + 10 {
            l.attempt(&format!("k{i}"), t0);
        }
        assert!(l.tracked() <= MAX_KEYS);
        // Stale entries go first once the window has passed.
        l.attempt("late", t0 + Duration::seconds(61));
        assert_eq!(l.tracked(), 1);
    }
}
