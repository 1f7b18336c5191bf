//! Time is a parameter: code asks the clock it was given, so tests move time instead of sleeping.

use chrono::{DateTime, Duration, Timelike, Utc};
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

/// `t` at the microsecond precision the store keeps (the instant `to_micros(t)` names), without
/// converting to a count and back (each a calendar computation; `Service::now` runs on every
/// request, several times).
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let ns = t.nanosecond();
    if ns >= 1_000_000_000 {
        // A leap second's representation: normalized as the count would be.
        return DateTime::from_timestamp_micros(to_micros(t)).unwrap_or(t);
    }
    t.with_nanosecond(ns - ns % 1_000).unwrap_or(t)
}

pub fn from_micros(m: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(m).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn truncating_keeps_the_instant_the_stored_micros_name(
            secs in DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
            ns in 0u32..1_000_000_000,
        ) {
            let t = DateTime::from_timestamp(secs, ns).unwrap_or(DateTime::<Utc>::MIN_UTC);
            let want = DateTime::from_timestamp_micros(to_micros(t)).unwrap_or(t);
            prop_assert_eq!(truncate_to_micros(t), want);
            prop_assert_eq!(to_micros(truncate_to_micros(t)), to_micros(t));
        }
    }

    #[test]
    fn a_leap_second_is_normalized_as_the_count_is() {
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_999))
            .map(|n| n.and_utc())
            .expect("a leap second");
        assert_eq!(
            truncate_to_micros(leap),
            DateTime::from_timestamp_micros(to_micros(leap)).expect("in range")
        );
    }
}
