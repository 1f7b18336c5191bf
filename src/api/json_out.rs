//! JSON written by hand for the hot answers (the verify and use answer, the Tedee list): the
//! same bytes as `serde_json` writes from the derived `Serialize` of the same values (the tests
//! hold them equal), without its byte-by-byte escape scan of every member name, id and
//! timestamp and without `fmt` for timestamps. A string that needs escaping, a `Value` and a
//! year chrono writes with a sign still go through `serde_json` or chrono.

use crate::error::Error;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;
use wire_time::Fraction;

/// Where an answer is written.
pub type Out = Vec<u8>;

/// A 200 answer already written: what `Json(value)` sends for the same bytes
/// (`Content-Type: application/json`).
pub fn ok(body: Out) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

/// A 200 answer written by `write` into a buffer of `capacity` bytes up front; a failure to
/// write it (`what` names the answer) is an internal error.
pub fn answer(
    capacity: usize,
    what: &str,
    write: impl FnOnce(&mut Out) -> serde_json::Result<()>,
) -> Result<Response, Error> {
    let mut buf = Vec::with_capacity(capacity);
    write(&mut buf).map_err(|e| Error::internal(format!("writing {what}: {e}")))?;
    Ok(ok(buf))
}

/// A string: as it is when nothing in it needs escaping (checked without branching per byte),
/// else through `serde_json`.
pub fn string(s: &str, out: &mut Out) -> serde_json::Result<()> {
    let escapes = s
        .bytes()
        .fold(false, |e, b| e | (b < 0x20) | (b == b'"') | (b == b'\\'));
    if escapes {
        return serde_json::to_writer(&mut *out, s);
    }
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    Ok(())
}

pub fn uuid(id: Uuid, out: &mut Out) -> serde_json::Result<()> {
    let mut buf = Uuid::encode_buffer();
    out.push(b'"');
    out.extend_from_slice(id.hyphenated().encode_lower(&mut buf).as_bytes());
    out.push(b'"');
    Ok(())
}

pub fn int(n: i64, out: &mut Out) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *out, &n)
}

pub fn opt<T>(
    v: Option<T>,
    out: &mut Out,
    write: impl FnOnce(T, &mut Out) -> serde_json::Result<()>,
) -> serde_json::Result<()> {
    match v {
        Some(v) => write(v, out),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// A timestamp as chrono's serde writes it, as a JSON string.
pub fn time(t: &DateTime<Utc>, out: &mut Out) -> serde_json::Result<()> {
    timestamp(t, Fraction::Auto, out)
}

pub fn list<T>(
    items: impl Iterator<Item = T>,
    out: &mut Out,
    write: impl Fn(T, &mut Out) -> serde_json::Result<()>,
) -> serde_json::Result<()> {
    out.push(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(item, out)?;
    }
    out.push(b']');
    Ok(())
}

pub fn opt_time(t: Option<&DateTime<Utc>>, out: &mut Out) -> serde_json::Result<()> {
    opt(t, out, time)
}

/// A timestamp as `to_rfc3339_opts(SecondsFormat::Millis, true)` writes it (always three
/// digits of fraction, truncated), as a JSON string.
pub fn time_millis(t: &DateTime<Utc>, out: &mut Out) -> serde_json::Result<()> {
    timestamp(t, Fraction::Millis, out)
}

/// A timestamp in quotes, from [`wire_time`]; a year it does not write goes through chrono.
fn timestamp(t: &DateTime<Utc>, fraction: Fraction, out: &mut Out) -> serde_json::Result<()> {
    let mut buf = [0u8; wire_time::MAX];
    match wire_time::write_as(t, fraction, &mut buf) {
        Some(n) => {
            out.push(b'"');
            out.extend_from_slice(&buf[..n]);
            out.push(b'"');
            Ok(())
        }
        None => match fraction {
            Fraction::Auto => serde_json::to_writer(&mut *out, t),
            Fraction::Millis => string(&t.to_rfc3339_opts(SecondsFormat::Millis, true), out),
        },
    }
}

/// Timestamps as chrono writes them (RFC 3339 in UTC with `Z`, a leap second as `:60`): its
/// serde form (the fraction in 0, 3, 6 or 9 digits) or `to_rfc3339_opts(Millis, true)`, byte
/// for byte, but written straight into a stack buffer instead of through `fmt` (it was 2.3% of a
/// verify). Years outside 0..=9999 take chrono's own path.
pub mod wire_time {
    use chrono::{DateTime, Datelike, Timelike, Utc};
    use serde::{Serialize, Serializer};

    /// The longest form: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
    pub const MAX: usize = 30;

    fn two(out: &mut [u8], at: usize, v: u32) {
        out[at] = b'0' + (v / 10 % 10) as u8;
        out[at + 1] = b'0' + (v % 10) as u8;
    }

    /// How many digits of the second's fraction are written.
    #[derive(Clone, Copy)]
    pub enum Fraction {
        /// As chrono's serde: none for a whole second, else 3, 6 or 9, the fewest that hold it.
        Auto,
        /// Always 3, truncated (`SecondsFormat::Millis`).
        Millis,
    }

    /// The text's length in `out`, or `None` for a year chrono writes with a sign.
    pub fn write_as(t: &DateTime<Utc>, fraction: Fraction, out: &mut [u8; MAX]) -> Option<usize> {
        let year = t.year();
        if !(0..=9999).contains(&year) {
            return None;
        }
        let year = year as u32;
        two(out, 0, year / 100);
        two(out, 2, year % 100);
        out[4] = b'-';
        two(out, 5, t.month());
        out[7] = b'-';
        two(out, 8, t.day());
        out[10] = b'T';
        let (mut sec, mut nano) = (t.second(), t.nanosecond());
        if nano >= 1_000_000_000 {
            sec += 1;
            nano -= 1_000_000_000;
        }
        two(out, 11, t.hour());
        out[13] = b':';
        two(out, 14, t.minute());
        out[16] = b':';
        two(out, 17, sec);
        let (digits, mut frac) = if let Fraction::Millis = fraction {
            (3, nano / 1_000_000)
        } else if nano == 0 {
            (0, 0)
        } else if nano % 1_000_000 == 0 {
            (3, nano / 1_000_000)
        } else if nano % 1_000 == 0 {
            (6, nano / 1_000)
        } else {
            (9, nano)
        };
        let mut n = 19;
        if digits > 0 {
            out[n] = b'.';
            for i in (0..digits).rev() {
                out[n + 1 + i] = b'0' + (frac % 10) as u8;
                frac /= 10;
            }
            n += 1 + digits;
        }
        out[n] = b'Z';
        Some(n + 1)
    }

    pub fn one<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; MAX];
        match write_as(t, Fraction::Auto, &mut buf).and_then(|n| std::str::from_utf8(&buf[..n]).ok()) {
            Some(text) => s.serialize_str(text),
            None => t.serialize(s),
        }
    }

    pub fn opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => one(t, s),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};
    use serde::Serialize;

    /// Every ASCII character, and some beyond, alone and inside text: a string is written as
    /// serde_json writes it.
    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let chars = (0u8..=0x7f).map(char::from).chain(['é', '✓', '\u{2028}', '😀']);
        for c in chars {
            for text in [c.to_string(), format!("a{c}b"), format!("{c}{c}")] {
                let mut ours = vec![];
                string(&text, &mut ours).unwrap();
                assert_eq!(ours, serde_json::to_vec(&text).unwrap(), "{text:?}");
            }
        }
    }

    /// The answers' timestamps are byte for byte what chrono writes (its serde form, and
    /// `to_rfc3339_opts` with milliseconds): every fraction width, a leap second, the year
    /// range's ends and the signed years beyond them.
    #[test]
    fn wire_time_matches_chrono() {
        #[derive(Serialize)]
        struct One(#[serde(serialize_with = "wire_time::one")] DateTime<Utc>);
        #[derive(Serialize)]
        struct Opt(#[serde(serialize_with = "wire_time::opt")] Option<DateTime<Utc>>);
        let mut times = vec![];
        for (y, mo, d) in [
            (0, 1, 1),
            (1, 2, 3),
            (999, 12, 31),
            (1970, 1, 1),
            (2026, 12, 2),
            (9999, 12, 31),
        ] {
            for (h, mi, s) in [(0, 0, 0), (9, 5, 7), (23, 59, 59)] {
                for nano in [
                    0,
                    1,
                    9,
                    10,
                    999,
                    1_000,
                    1_001,
                    120_000,
                    999_999,
                    1_000_000,
                    7_000_000,
                    10_000_000,
                    123_456_789,
                    500_000_000,
                    999_000_000,
                    999_999_000,
                    999_999_999,
                ] {
                    let date = NaiveDate::from_ymd_opt(y, mo, d).unwrap();
                    times.push(Utc.from_utc_datetime(&date.and_hms_nano_opt(h, mi, s, nano).unwrap()));
                }
            }
        }
        // A leap second (nanoseconds past 10^9 at :59).
        let date = NaiveDate::from_ymd_opt(2016, 12, 31).unwrap();
        for nano in [1_000_000_000, 1_500_000_000, 1_999_999_999, 1_000_000_001] {
            times.push(Utc.from_utc_datetime(&date.and_hms_nano_opt(23, 59, 59, nano).unwrap()));
        }
        // Years chrono signs.
        for y in [-1, -9999, 10000, 262_142] {
            times.push(Utc.from_utc_datetime(&NaiveDate::from_ymd_opt(y, 6, 1).unwrap().and_hms_opt(1, 2, 3).unwrap()));
        }
        times.push(DateTime::<Utc>::MIN_UTC);
        times.push(DateTime::<Utc>::MAX_UTC);
        for t in times {
            let chrono = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::to_string(&One(t)).unwrap(), chrono);
            assert_eq!(serde_json::to_string(&Opt(Some(t))).unwrap(), chrono);
            let mut millis = vec![];
            time_millis(&t, &mut millis).unwrap();
            let theirs = serde_json::to_string(&t.to_rfc3339_opts(SecondsFormat::Millis, true)).unwrap();
            assert_eq!(String::from_utf8(millis).unwrap(), theirs);
        }
        assert_eq!(serde_json::to_string(&Opt(None)).unwrap(), "null");
    }
}
