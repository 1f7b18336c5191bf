//! Time zones by name: an IANA name, or a SuperOffice time zone location (its id, such as
//! `261`, or its code, such as `NO`). Used by the `time_zone` setting and by the SuperOffice
//! surfaces' `SO-TimeZone` header and SOAP `TimeZone` header.

use chrono_tz::Tz;
use std::str::FromStr;

/// SuperOffice's time zone locations (its `TZLocation` table, `GET /api/v1/timezone`) that
/// its public documentation lists, as (id, code, IANA zone). The ids and codes are those of
/// the SO-TimeZone page (docs.superoffice.com, "SOTimezone": 1 UTC, 36 AU-ACT, 50 BD,
/// 114 CA-QC, 140 DK, 156 FR, 261 NO, 425 US-CA, 433 US-HI, 460 US-NY); the IANA zone is
/// the one that keeps the same offsets and daylight-saving rules.
pub const SUPEROFFICE_LOCATIONS: &[(u32, &str, &str)] = &[
    (1, "UTC", "UTC"),
    (36, "AU-ACT", "Australia/Sydney"),
    (50, "BD", "Asia/Dhaka"),
    (114, "CA-QC", "America/Toronto"),
    (140, "DK", "Europe/Copenhagen"),
    (156, "FR", "Europe/Paris"),
    (261, "NO", "Europe/Oslo"),
    (425, "US-CA", "America/Los_Angeles"),
    (433, "US-HI", "Pacific/Honolulu"),
    (460, "US-NY", "America/New_York"),
];

/// Location codes keygate accepted before the table above, whose ids the documentation does
/// not list (single-zone countries by their country code, as SuperOffice names them).
const MORE_CODES: &[(&str, &str)] = &[
    ("SE", "Europe/Stockholm"),
    ("FI", "Europe/Helsinki"),
    ("NL", "Europe/Amsterdam"),
    ("DE", "Europe/Berlin"),
    ("GB", "Europe/London"),
    ("UK", "Europe/London"),
    ("GMT", "UTC"),
    ("Z", "UTC"),
];

/// A time zone from a SuperOffice location id (`261`) or code (`NO`, `US-NY`; any case), or
/// an IANA name (`Europe/Oslo`).
pub fn parse_time_zone(code: &str) -> Option<Tz> {
    let code = code.trim();
    if !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()) {
        let id: u32 = code.parse().ok()?;
        let (_, _, iana) = SUPEROFFICE_LOCATIONS.iter().find(|(i, _, _)| *i == id)?;
        return Tz::from_str(iana).ok();
    }
    let iana = SUPEROFFICE_LOCATIONS
        .iter()
        .find(|(_, c, _)| c.eq_ignore_ascii_case(code))
        .map(|(_, _, iana)| *iana)
        .or_else(|| {
            MORE_CODES
                .iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(code))
                .map(|(_, iana)| *iana)
        })
        .unwrap_or(code);
    Tz::from_str(iana).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_codes_and_ids() {
        assert_eq!(parse_time_zone("NO"), Some(chrono_tz::Europe::Oslo));
        assert_eq!(parse_time_zone(" no "), Some(chrono_tz::Europe::Oslo));
        assert_eq!(parse_time_zone("261"), Some(chrono_tz::Europe::Oslo));
        assert_eq!(parse_time_zone("460"), Some(chrono_tz::America::New_York));
        assert_eq!(parse_time_zone("us-ny"), Some(chrono_tz::America::New_York));
        assert_eq!(parse_time_zone("1"), Some(chrono_tz::UTC));
        assert_eq!(parse_time_zone("America/New_York"), Some(chrono_tz::America::New_York));
        assert_eq!(parse_time_zone("Mars/Olympus"), None);
        assert_eq!(parse_time_zone("262"), None, "an id the documentation does not list");
        assert_eq!(parse_time_zone("99999999999999999999"), None);
        assert_eq!(parse_time_zone(""), None);
    }

    #[test]
    fn every_documented_location_resolves() {
        for (id, code, iana) in SUPEROFFICE_LOCATIONS {
            let tz = Tz::from_str(iana).unwrap();
            assert_eq!(parse_time_zone(&id.to_string()), Some(tz), "{id}");
            assert_eq!(parse_time_zone(code), Some(tz), "{code}");
        }
    }
}
