//! The PostgreSQL [`ChangeFeed`]: how the opt-in credential cache (`postgres_credential_cache`)
//! hears of every commit to the cached tables, by any writer (another node, the CLI, an
//! operator's `psql`).
//!
//! Migration 0006 puts triggers on `credentials`, `api_keys`, `login_tokens`, `users` and
//! `organizations` that `pg_notify('keygate_cache', ...)` what each row change touched;
//! PostgreSQL delivers a notification when its transaction commits. One task per node holds a
//! connection of its own (`application_name` [`APPLICATION_NAME`]) that `LISTEN`s on the
//! channel and hands every payload to the cache ([`FeedSink::changed`]).
//!
//! The migration only defines the trigger functions (NOTIFY serializes commits, so a deployment
//! without the cache must not pay for it): after its first `LISTEN`, a node with the setting on
//! creates the triggers (`install_triggers`) unless they are there already.
//!
//! The cache trusts its entries only while that connection is known to be up:
//! - after `LISTEN` succeeded (and the triggers are in place), [`FeedSink::connected`] drops every
//!   cache and then trusts it;
//! - on any error, a lost connection, or [`SILENCE_LIMIT`] without a notification (every node
//!   sends a ping notification each [`PING_EVERY`], so a silently dead connection is noticed
//!   too), [`FeedSink::disconnected`] makes lookups bypass the cache, a warning is logged, and
//!   the task reconnects after a short backoff.
//!
//! The gauge `keygate_cache_listener_connected` (0 or 1) shows the state in `/metrics`.

use super::cache::{ChangeFeed, FeedSink};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use std::time::Duration;

/// The channel the triggers notify on.
pub const CHANNEL: &str = "keygate_cache";
/// The listener connection's `application_name` (find it in `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "keygate-cache-listener";
/// How often each node sends a ping notification.
pub const PING_EVERY: Duration = Duration::from_secs(1);
/// A listener that received nothing (not even a ping) for this long counts as disconnected.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct PgNotify {
    /// The store's connect options (the listener gets its own connection from them).
    opts: PgConnectOptions,
    /// The store's pool, for the pings.
    pool: PgPool,
}

impl PgNotify {
    pub fn new(opts: PgConnectOptions, pool: PgPool) -> Self {
        PgNotify { opts, pool }
    }
}

impl ChangeFeed for PgNotify {
    fn start(&self, sink: FeedSink) {
        tokio::spawn(listen(self.opts.clone(), self.pool.clone(), sink.clone()));
        tokio::spawn(ping(self.pool.clone(), sink));
    }
}

/// Send a ping notification every [`PING_EVERY`] while the cache lives. A failed ping is not
/// reported here: the listeners notice the silence.
async fn ping(pool: PgPool, sink: FeedSink) {
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while sink.is_alive() {
        tick.tick().await;
        let _ = sqlx::query("SELECT pg_notify($1, 'p')")
            .bind(CHANNEL)
            .execute(&pool)
            .await;
    }
}

/// The listener: connect, listen, deliver; on any failure bypass the cache and reconnect.
async fn listen(opts: PgConnectOptions, store: PgPool, sink: FeedSink) {
    let opts = opts.application_name(APPLICATION_NAME);
    let mut backoff = BACKOFF_MIN;
    while sink.is_alive() {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(opts.clone());
        let mut was_connected = false;
        let ended = session(&pool, &store, &sink, &mut was_connected).await;
        // Also restates the gauge on every failed attempt (see `FeedSink::changed`).
        sink.disconnected();
        pool.close().await;
        match ended {
            Ok(()) => return,
            Err(e) if was_connected => {
                tracing::warn!(error = %e, "the credential cache's PostgreSQL listener is disconnected; lookups read the database until it reconnects");
                backoff = BACKOFF_MIN;
            }
            Err(e) => {
                tracing::debug!(error = %e, "the credential cache's PostgreSQL listener cannot connect yet");
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// One connection's life: `LISTEN`, then trust the cache, then deliver until it fails. Ok when
/// the cache is gone.
async fn session(pool: &PgPool, store: &PgPool, sink: &FeedSink, was_connected: &mut bool) -> Result<(), String> {
    let mut listener = PgListener::connect_with(pool).await.map_err(|e| e.to_string())?;
    // A lost connection is ours to handle (bypass, then reconnect and flush), not sqlx's.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await.map_err(|e| e.to_string())?;
    install_triggers(store).await.map_err(|e| e.to_string())?;
    sink.connected();
    *was_connected = true;
    tracing::info!("the credential cache's PostgreSQL listener is connected");
    loop {
        // On a timeout the pending receive is dropped with the listener: nothing is reused.
        match tokio::time::timeout(SILENCE_LIMIT, listener.try_recv()).await {
            Ok(Ok(Some(n))) => sink.changed(n.payload()),
            Ok(Ok(None)) => return Err("the connection was lost".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => {
                return Err(format!(
                    "no notification (not even a ping) for {} s",
                    SILENCE_LIMIT.as_secs()
                ));
            }
        }
        if !sink.is_alive() {
            return Ok(());
        }
    }
}

/// The tables whose row changes the cache hears of, each with its trigger function (migration
/// 0006).
const NOTIFYING_TABLES: [&str; 5] = ["credentials", "api_keys", "login_tokens", "users", "organizations"];

/// Create the triggers `keygate_cache_notify` on [`NOTIFYING_TABLES`] unless they are all there.
/// One transaction: each CREATE TRIGGER takes a lock that waits for every writer in flight on its
/// table to commit and makes later writers wait for this commit, after which they fire the
/// trigger; so when this returns, every write that did not notify has committed. A writer holding
/// its lock long (an operator's open transaction) makes this fail after `lock_timeout` rather
/// than stall every writer queued behind it; the listener then retries.
async fn install_triggers(store: &PgPool) -> Result<(), sqlx::Error> {
    let present: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         WHERE t.tgname = 'keygate_cache_notify' AND c.relname = ANY($1) \
         AND c.relnamespace = current_schema()::regnamespace",
    )
    .bind(&NOTIFYING_TABLES[..])
    .fetch_one(store)
    .await?;
    if present == NOTIFYING_TABLES.len() as i64 {
        return Ok(());
    }
    let mut tx = store.begin().await?;
    sqlx::query("SET LOCAL lock_timeout = '500ms'")
        .execute(&mut *tx)
        .await?;
    for table in NOTIFYING_TABLES {
        // Names from the constant above, never from input.
        sqlx::query(&format!("DROP TRIGGER IF EXISTS keygate_cache_notify ON {table}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "CREATE TRIGGER keygate_cache_notify AFTER INSERT OR UPDATE OR DELETE ON {table} \
             FOR EACH ROW EXECUTE FUNCTION keygate_cache_notify_{table}()"
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    tracing::info!("created the PostgreSQL triggers that notify the credential caches of every change");
    Ok(())
}
