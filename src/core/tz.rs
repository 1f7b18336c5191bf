//! Time zones by name: an IANA name, or a SuperOffice location code such as `NO`. Used by the
//! `time_zone` setting and by the SuperOffice surfaces' `SO-TimeZone`.

use chrono_tz::Tz;
use std::str::FromStr;

/// A time zone from an IANA name or a SuperOffice location code (`NO`, `SE`, ...).
pub fn parse_time_zone(code: &str) -> Option<Tz> {
    let code = code.trim();
    let iana = match code.to_ascii_uppercase().as_str() {
        "NO" => "Europe/Oslo",
        "SE" => "Europe/Stockholm",
        "DK" => "Europe/Copenhagen",
        "FI" => "Europe/Helsinki",
        "NL" => "Europe/Amsterdam",
        "DE" => "Europe/Berlin",
        "UK" | "GB" => "Europe/London",
        "UTC" | "GMT" | "Z" => "UTC",
        _ => code,
    };
    Tz::from_str(iana).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes() {
        assert_eq!(parse_time_zone("NO"), Some(chrono_tz::Europe::Oslo));
        assert_eq!(parse_time_zone(" no "), Some(chrono_tz::Europe::Oslo));
        assert_eq!(parse_time_zone("America/New_York"), Some(chrono_tz::America::New_York));
        assert_eq!(parse_time_zone("Mars/Olympus"), None);
    }
}
