//! Counts failed logins per key (a source address or a username) in a sliding window on the
//! injected clock. Once a key has `max` failures inside the window it is refused until the
//! oldest failure leaves the window. Only failures count, so a legitimate user who types the
//! right password is never slowed down.

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

    /// `Some(retry_after_secs)` when the key is blocked at `now`.
    pub fn blocked(&self, key: &str, now: DateTime<Utc>) -> Option<u64> {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let q = map.get_mut(key)?;
        while q.front().is_some_and(|t| *t + self.window <= now) {
            q.pop_front();
        }
        if q.len() < self.max as usize {
            if q.is_empty() {
                map.remove(key);
            }
            return None;
        }
        let oldest = *q.front()?;
        let wait = (oldest + self.window - now).num_seconds().max(0) as u64 + 1;
        Some(wait)
    }

    pub fn record_failure(&self, key: &str, now: DateTime<Utc>) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| *t + window > now));
            if map.len() >= MAX_KEYS {
                // Still full of live entries: drop an arbitrary one rather than grow without bound.
                if let Some(k) = map.keys().next().cloned() {
                    map.remove(&k);
                }
            }
        }
        let q = map.entry(key.to_string()).or_default();
        q.push_back(now);
        while q.len() > self.max as usize {
            q.pop_front();
        }
    }

    /// Count an attempt as a failure before it is tried, atomically with the check, so that a
    /// burst of concurrent attempts cannot all slip in under the limit. `Some(retry_after_secs)`
    /// (and nothing counted) when the key is blocked; after a success, [`Self::forgive`] the
    /// attempt.
    pub fn attempt(&self, key: &str, now: DateTime<Utc>) -> Option<u64> {
        if let Some(wait) = self.blocked(key, now) {
            return Some(wait);
        }
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let q = map.entry(key.to_string()).or_default();
        if q.len() >= self.max as usize {
            let oldest = q.front().copied().unwrap_or(now);
            return Some((oldest + self.window - now).num_seconds().max(0) as u64 + 1);
        }
        q.push_back(now);
        None
    }

    /// Take back one attempt counted at `at` (it succeeded).
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

    pub fn clear(&self, key: &str) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key);
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
            assert!(l.blocked("u", t0).is_none(), "attempt {i}");
            l.record_failure("u", t0);
        }
        let wait = l.blocked("u", t0).unwrap();
        assert!((60..=61).contains(&wait));
        assert!(l.blocked("other", t0).is_none());
        assert!(l.blocked("u", t0 + Duration::seconds(59)).is_some());
        assert!(l.blocked("u", t0 + Duration::seconds(60)).is_none());
    }

    #[test]
    fn clear_forgets_failures() {
        let l = FailureLimiter::new(1, Duration::seconds(60));
        let t0 = Utc::now();
        l.record_failure("u", t0);
        assert!(l.blocked("u", t0).is_some());
        l.clear("u");
        assert!(l.blocked("u", t0).is_none());
    }
}
