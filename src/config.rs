//! Settings: built-in defaults, overlaid by an optional TOML file (`--config` or
//! `KEYGATE_CONFIG`), overlaid by `KEYGATE_*` environment variables, overlaid by flags.

use crate::core::net::Cidr;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Address to listen on.
    pub listen: String,
    /// `sqlite://PATH` (embedded default) or `postgres://USER:PASSWORD@HOST:PORT/DB` (several nodes).
    pub database_url: String,
    /// PostgreSQL: most connections one node opens.
    pub database_max_connections: u32,
    /// PostgreSQL: seconds a request waits for a connection before it answers 503.
    pub database_acquire_timeout_secs: u64,
    /// The server secret keying every stored digest. When unset, it is read from
    /// `secret_file`, which is generated on first start.
    pub secret: Option<String>,
    /// Where the generated server secret lives; default: beside the SQLite file.
    pub secret_file: Option<PathBuf>,
    /// HS256 secret for Bearer JWTs.
    pub jwt_secret: Option<String>,
    /// PEM public key (RSA, EC P-256 or Ed25519) for RS256/ES256/EdDSA Bearer JWTs.
    pub jwt_public_key_file: Option<PathBuf>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    /// Lifetime of `7T:` tickets, in seconds.
    pub ticket_ttl_secs: u64,
    /// Lifetime of cookie sessions, in seconds.
    pub session_ttl_secs: u64,
    /// Set the `Secure` attribute on session cookies (turn on behind HTTPS).
    pub cookie_secure: bool,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Requests taking longer are answered 408.
    pub request_timeout_secs: u64,
    /// `text` or `json`.
    pub log_format: String,
    /// A tracing filter such as `info` or `keygate=debug`.
    pub log_level: String,
    /// Failed logins allowed per (user, client address) within the window before 429.
    pub login_max_failures_per_user_and_source: u32,
    /// Failed logins allowed per client address within the window before 429.
    pub login_max_failures_per_source: u32,
    pub login_failure_window_secs: u64,
    /// Failed logins allowed per user, from anywhere, within `login_user_failure_window_secs`:
    /// the ceiling a distributed guesser meets. At it, even the right password gets 429.
    pub login_max_failures_per_user: u32,
    pub login_user_failure_window_secs: u64,
    /// Failed PIN entries allowed per lock within the window before 429.
    pub pin_max_failures_per_lock: u32,
    /// Failed PIN entries allowed per source address within the window before 429.
    pub pin_max_failures_per_source: u32,
    pub pin_failure_window_secs: u64,
    /// The address guests reach this server at (e.g. `https://keys.example.com`), for the links
    /// of collective keys; unset, the request's Host is used.
    pub public_url: Option<String>,
    /// The server's local time zone (IANA name): SuperOffice dates without an offset are read in it.
    pub time_zone: String,
    /// Unsafe, for tests only: install a movable clock and the `/_test/clock` route.
    pub unsafe_test_clock: bool,
    /// For `bench/run.sh` only: serve `POST /_bench/bare` (outside keygate's middleware) and
    /// `POST /_bench/middleware` (inside it), a bare JSON handler that measures the HTTP ceiling.
    pub bench_routes: bool,
    /// SQLite: commit concurrent credential writes (creates, uses, updates, revokes) and event
    /// appends together, in one transaction and one fsync; each caller is answered after its
    /// group committed. Off: one transaction (one fsync) per write.
    pub sqlite_group_commit: bool,
    /// SQLite: bytes of the database file each connection reads through a memory map instead of
    /// `pread` (SQLite's `PRAGMA mmap_size`); 0 (the default) maps nothing. Faster reads of
    /// databases larger than the credential cache, but every mapped page a connection touched
    /// counts in the process's RSS, once per connection (BENCHMARKS.md, issue 16's tenth part).
    pub sqlite_mmap_size: u64,
    /// Entries kept per credential lookup in memory (keys, API keys, tickets and sessions, users,
    /// organizations), with exact invalidation; 0 turns the cache off. On PostgreSQL only with
    /// `postgres_credential_cache`; otherwise the nodes read the database on every request.
    pub credential_cache_entries: u64,
    /// PostgreSQL: put the credential cache in front of the database too, invalidated by
    /// LISTEN/NOTIFY (another node's change is seen after the propagation delay; the cache is
    /// bypassed while the listener is disconnected). Off by default.
    pub postgres_credential_cache: bool,
    /// Seconds a connection may take to send a request's headers, and may stay idle between
    /// requests; then it is closed.
    pub header_read_timeout_secs: u64,
    /// Open connections at most, in all; a connection past it is closed at once.
    pub max_connections: usize,
    /// Open connections at most from one client address (IPv6: one /64); trusted proxies are
    /// exempt.
    pub max_connections_per_address: usize,
    /// Proxies (CIDRs) whose `Forwarded` / `X-Forwarded-For` name the client; default none.
    #[serde(deserialize_with = "list")]
    pub trusted_proxies: Vec<String>,
    /// When set, `/metrics` needs `Authorization: Bearer <metrics_token>` from every client.
    pub metrics_token: Option<String>,
    /// Without `metrics_token`, the client addresses (CIDRs) `/metrics` answers; default loopback.
    #[serde(deserialize_with = "list")]
    pub metrics_allow: Vec<String>,
}

/// A list setting: a TOML array, or one string of comma-separated items (environment variables).
fn list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

fn cidrs(field: &str, items: &[String]) -> Result<Vec<Cidr>, String> {
    items
        .iter()
        .map(|s| s.parse::<Cidr>().map_err(|e| format!("{field}: {e}")))
        .collect()
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://keygate.db".into(),
            database_max_connections: 10,
            database_acquire_timeout_secs: 3,
            credential_cache_entries: 20_000,
            postgres_credential_cache: false,
            secret: None,
            secret_file: None,
            jwt_secret: None,
            jwt_public_key_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            ticket_ttl_secs: 8 * 3600,
            session_ttl_secs: 8 * 3600,
            cookie_secure: false,
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            log_format: "text".into(),
            log_level: "info".into(),
            login_max_failures_per_user_and_source: 5,
            login_max_failures_per_source: 20,
            login_failure_window_secs: 300,
            login_max_failures_per_user: 100,
            login_user_failure_window_secs: 900,
            pin_max_failures_per_lock: 10,
            pin_max_failures_per_source: 5,
            pin_failure_window_secs: 900,
            public_url: None,
            time_zone: "UTC".into(),
            unsafe_test_clock: false,
            bench_routes: false,
            sqlite_group_commit: true,
            sqlite_mmap_size: 0,
            header_read_timeout_secs: 10,
            max_connections: 4096,
            max_connections_per_address: 256,
            trusted_proxies: vec![],
            metrics_token: None,
            metrics_allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
        }
    }
}

/// Values given as flags; `None` leaves the lower layers in force.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

impl Settings {
    pub fn load(config_file: Option<&Path>, flags: &FlagOverrides) -> Result<Settings, String> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        let file = config_file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("KEYGATE_CONFIG").map(PathBuf::from));
        if let Some(f) = file {
            if !f.exists() {
                return Err(format!("config file {} does not exist", f.display()));
            }
            fig = fig.merge(Toml::file(f));
        }
        fig = fig
            .merge(Env::prefixed("KEYGATE_").ignore(&["config"]))
            .merge(Serialized::defaults(flags));
        let s: Settings = fig.extract().map_err(|e| format!("bad configuration: {e}"))?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), String> {
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err("log_format must be \"text\" or \"json\"".into());
        }
        if self.body_limit_bytes == 0 || self.request_timeout_secs == 0 {
            return Err("body_limit_bytes and request_timeout_secs must be positive".into());
        }
        if crate::core::tz::parse_time_zone(&self.time_zone).is_none() {
            return Err(format!("time_zone {:?} is not a known IANA time zone", self.time_zone));
        }
        if self.database_max_connections == 0 || self.database_acquire_timeout_secs == 0 {
            return Err("database_max_connections and database_acquire_timeout_secs must be positive".into());
        }
        if self.ticket_ttl_secs == 0 || self.session_ttl_secs == 0 {
            return Err("ticket_ttl_secs and session_ttl_secs must be positive".into());
        }
        if self.header_read_timeout_secs == 0 || self.max_connections == 0 || self.max_connections_per_address == 0 {
            return Err(
                "header_read_timeout_secs, max_connections and max_connections_per_address must be positive".into(),
            );
        }
        if self.sqlite_mmap_size > crate::store::sqlite::MAX_MMAP_SIZE {
            return Err(format!(
                "sqlite_mmap_size is at most {} bytes (SQLite's limit)",
                crate::store::sqlite::MAX_MMAP_SIZE
            ));
        }
        if self.postgres_credential_cache && self.credential_cache_entries == 0 {
            return Err("postgres_credential_cache needs credential_cache_entries above 0 (the cache's size)".into());
        }
        if self.metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err("metrics_token must be at least 16 characters".into());
        }
        self.trusted_proxies()?;
        self.metrics_allow()?;
        Ok(())
    }

    /// `trusted_proxies`, parsed.
    pub fn trusted_proxies(&self) -> Result<Vec<Cidr>, String> {
        cidrs("trusted_proxies", &self.trusted_proxies)
    }

    /// `metrics_allow`, parsed.
    pub fn metrics_allow(&self) -> Result<Vec<Cidr>, String> {
        cidrs("metrics_allow", &self.metrics_allow)
    }

    /// The SQLite file path, if the database is SQLite.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self
            .database_url
            .strip_prefix("sqlite://")
            .or_else(|| self.database_url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or(rest);
        (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
    }

    /// Pool settings for the PostgreSQL store.
    pub fn pool_settings(&self) -> crate::store::postgres::PoolSettings {
        crate::store::postgres::PoolSettings {
            max_connections: self.database_max_connections,
            acquire_timeout: std::time::Duration::from_secs(self.database_acquire_timeout_secs),
            sqlite_group_commit: self.sqlite_group_commit,
            sqlite_mmap_size: self.sqlite_mmap_size,
        }
    }

    /// Where the generated server secret is kept.
    pub fn resolved_secret_file(&self) -> PathBuf {
        if let Some(f) = &self.secret_file {
            return f.clone();
        }
        match self.sqlite_path() {
            Some(db) => {
                let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                name.push(".secret");
                db.with_file_name(name)
            }
            None => PathBuf::from("keygate.secret"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_come_as_arrays_or_comma_separated_strings() {
        let with = |k: &str, v: figment::value::Value| -> Result<Settings, String> {
            let s: Settings = Figment::from(Serialized::defaults(Settings::default()))
                .merge((k, v))
                .extract()
                .map_err(|e| e.to_string())?;
            s.validate().map(|_| s)
        };
        let s = with("trusted_proxies", "10.0.0.0/8, 192.168.1.1".into()).unwrap();
        assert_eq!(s.trusted_proxies().unwrap().len(), 2);
        let s = with("metrics_allow", vec!["10.0.0.0/8".to_string()].into()).unwrap();
        assert_eq!(s.metrics_allow, vec!["10.0.0.0/8".to_string()]);
        assert!(with("trusted_proxies", "10.0.0.0/99".into()).is_err());
        assert!(with("metrics_token", "short".into()).is_err());
    }

    #[test]
    fn the_memory_map_size_is_at_most_sqlites_limit() {
        let with = |n: u64| {
            Settings {
                sqlite_mmap_size: n,
                ..Settings::default()
            }
            .validate()
        };
        assert!(with(0).is_ok());
        assert!(with(crate::store::sqlite::MAX_MMAP_SIZE).is_ok());
        let e = with(crate::store::sqlite::MAX_MMAP_SIZE + 1).unwrap_err();
        assert!(e.contains("sqlite_mmap_size"), "{e}");
    }

    #[test]
    fn secret_file_sits_beside_the_database() {
        let s = Settings {
            database_url: "sqlite://data/k.db?mode=rwc".into(),
            ..Settings::default()
        };
        assert_eq!(s.resolved_secret_file(), PathBuf::from("data/k.db.secret"));
        assert_eq!(
            Settings::default().resolved_secret_file(),
            PathBuf::from("keygate.db.secret")
        );
    }
}
