//! Time is a parameter: code asks the clock it was given, so tests move time instead of sleeping.

use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that runs with real time plus an offset that tests can move.
/// Only installed when `KEYGATE_UNSAFE_TEST_CLOCK=1`.
#[derive(Debug, Default)]
pub struct ManualClock {
    offset_micros: AtomicI64,
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        let micros = by.num_microseconds().unwrap_or(i64::MAX);
        let cur = self.offset_micros.load(Ordering::SeqCst);
        self.offset_micros.store(cur.saturating_add(micros), Ordering::SeqCst);
    }

    pub fn set(&self, at: DateTime<Utc>) {
        let off = at.signed_duration_since(Utc::now()).num_microseconds().unwrap_or(0);
        self.offset_micros.store(off, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        let off = Duration::microseconds(self.offset_micros.load(Ordering::SeqCst));
        Utc::now().checked_add_signed(off).unwrap_or_else(Utc::now)
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// Microseconds since the epoch: the storage form of every timestamp.
pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(m: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(m).unwrap_or(DateTime::<Utc>::MIN_UTC)
}
