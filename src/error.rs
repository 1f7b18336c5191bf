//! The one error type of the service. Every surface maps it to its own wire shape.

use std::fmt;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The request is malformed or breaks a rule; `field` names the offending input.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// No or bad credentials.
    #[error("authentication required")]
    Unauthenticated,
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// No such thing (or not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("too many failed attempts; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Too much work waiting (password hashing); nothing was done.
    #[error("too busy; retry after {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// The database cannot be reached.
    /// The detail is for the log and the operator (start-up, CLI); it is never sent to a client.
    #[error("the database is unavailable; try again shortly")]
    Unavailable(String),
    /// Anything else; the message is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.to_string(),
        }
    }

    pub fn internal(e: impl fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }

    /// The HTTP status every surface starts from.
    pub fn status(&self) -> u16 {
        match self {
            Error::Invalid { .. } => 400,
            Error::Unauthenticated => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::PayloadTooLarge => 413,
            Error::UnsupportedMediaType(_) => 415,
            Error::RateLimited { .. } => 429,
            Error::Busy { .. } | Error::Unavailable(_) => 503,
            Error::Internal(_) => 500,
        }
    }

    /// A short machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "invalid_request",
            Error::Unauthenticated => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::PayloadTooLarge => "payload_too_large",
            Error::UnsupportedMediaType(_) => "unsupported_media_type",
            Error::RateLimited { .. } => "rate_limited",
            Error::Busy { .. } => "busy",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }
}

/// Is this database error a lost or unreachable database (as opposed to a bad statement)?
/// Connection refused or reset, TLS failures, pool timeouts, and PostgreSQL's connection-exception
/// (`08...`), refused-login (`28...`), no-such-database (`3D000`), shutdown (`57P01`-`57P03`)
/// and too-many-connections (`53300`) states.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08")
                || c.starts_with("28")
                || matches!(c.as_ref(), "3D000" | "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// The SQLite store's direct calls (its hot reads, its group-commit writer, its change probe)
/// map errors as sqlx's are mapped: a unique or primary key violation is a conflict, anything
/// else internal. SQLite's messages name constraints and columns, never values.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                Error::Conflict("already exists".into())
            }
            _ => Error::Internal(e.to_string()),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            // The detail is logged and shown at start-up, never sent to clients.
            return Error::Unavailable(format!("database unavailable: {e}"));
        }
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict("already exists".into()),
            // PostgreSQL refuses NUL characters in text (SQLite stores them): bad input, not a 500.
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("22021" | "22P05")) => {
                Error::invalid("input", "text must not contain NUL or unencodable characters")
            }
            _ => Error::Internal(e.to_string()),
        }
    }
}
