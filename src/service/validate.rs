//! Input rules shared by several use cases: names, dates and the limits of a key's policy.

use crate::error::{Error, Result};
use chrono::{DateTime, Utc};

pub const MAX_NAME_LEN: usize = 200;
pub const MAX_SCOPES: usize = 100;
pub const MAX_SCOPE_LEN: usize = 128;
pub const MAX_ALLOWED_USERS: usize = 1000;
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
pub const MAX_USES: i64 = 1_000_000_000;
pub const MAX_PAGE: u32 = 500;

/// Dates keygate accepts: 1970-01-01 to 9999-12-31 (the range every peer system can hold).
pub fn check_time(field: &str, t: Option<DateTime<Utc>>) -> Result<()> {
    use chrono::Datelike;
    match t {
        Some(t) if !(1970..=9999).contains(&t.year()) => {
            Err(Error::invalid(field, "must be between 1970-01-01 and 9999-12-31"))
        }
        _ => Ok(()),
    }
}

pub fn validate_name(field: &str, name: &str) -> Result<()> {
    let n = name.chars().count();
    if name.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if n > MAX_NAME_LEN {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

pub(crate) fn validate_username(u: &str) -> Result<()> {
    if u.is_empty() || u.len() > 64 || !u.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c)) {
        return Err(Error::invalid(
            "username",
            "must be 1 to 64 characters of letters, digits, '.', '_', '@' or '-'",
        ));
    }
    Ok(())
}

pub(crate) fn validate_org_name(n: &str) -> Result<()> {
    if n.is_empty()
        || n.len() > 100
        || !n.chars().all(|c| c.is_ascii_alphanumeric() || "._- ".contains(c))
        || n.trim() != n
    {
        return Err(Error::invalid(
            "name",
            "must be 1 to 100 characters of letters, digits, space, '.', '_' or '-'",
        ));
    }
    Ok(())
}
