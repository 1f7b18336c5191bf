//! The command line: `serve`, `migrate`, `org create`, `user create`. Every command works
//! against the database directly, also while a server is running on it.

use crate::clock::{SharedClock, SystemClock};
use crate::config::{FlagOverrides, Settings};
use crate::server;
use crate::service::users;
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(name = "keygate", version, about = "Self-hosted access-key service")]
pub struct Cli {
    /// TOML configuration file (also KEYGATE_CONFIG).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Database URL, e.g. sqlite://keygate.db (also KEYGATE_DATABASE_URL).
    #[arg(long, global = true)]
    pub database: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve {
        /// Address to listen on (also KEYGATE_LISTEN); default 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Create or upgrade the database schema.
    Migrate(JsonFlag),
    /// Organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Keys of any kind.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Locks (SmartphoneKey surface).
    Lock {
        #[command(subcommand)]
        command: LockCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Create a lock; prints its numeric id and UUID.
    Create {
        name: String,
        /// Organization name.
        #[arg(long)]
        org: String,
        /// The owning user's UUID (B2C owner).
        #[arg(long)]
        owner: Option<uuid::Uuid>,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Revoke a key (as `DELETE /v1/keys/{id}`): refused from the next request on, also by a
    /// server running on the same database.
    Revoke {
        /// The key's id.
        id: uuid::Uuid,
        /// Organization name.
        #[arg(long)]
        org: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization; prints its id and first API key (shown once).
    Create {
        name: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        username: String,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Organization name; default: the system organization.
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        admin: bool,
        /// Numeric person id for the SuperOffice surface.
        #[arg(long)]
        person_id: Option<i64>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Set a user's password (read from standard input); ends its tickets and sessions.
    Passwd {
        username: String,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Disable a user: its every credential is refused at once, its tickets and sessions end.
    Disable {
        username: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Enable a disabled user.
    Enable {
        username: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Lift a user's lock-out after failed logins (on every node, also while servers run).
    Unlock {
        username: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

/// Run the parsed command. Errors are returned as text for `main` to print.
pub async fn run(cli: Cli) -> Result<(), String> {
    let listen = match &cli.command {
        Command::Serve { listen } => listen.clone(),
        _ => None,
    };
    let flags = FlagOverrides {
        listen,
        database_url: cli.database.clone(),
    };
    let settings = Settings::load(cli.config.as_deref(), &flags)?;
    match cli.command {
        Command::Serve { .. } => server::serve(settings).await,
        Command::Lock {
            command: LockCommand::Create { name, org, owner, out },
        } => create_lock(&settings, &name, &org, owner, out.json).await,
        Command::Migrate(out) => {
            if crate::store::is_postgres_url(&settings.database_url) {
                // Upgrading a shared schema needs no server secret; each node's start-up runs
                // the repair.
                let store = crate::store::open_with(&settings.database_url, &settings.pool_settings())
                    .await
                    .map_err(server::describe)?;
                store.migrate().await.map_err(server::describe)?;
                emit(out.json, json!({"migrated": true}), "database is up to date");
            } else {
                let svc = open(&settings).await?;
                let r = svc.repair().await.map_err(server::describe)?;
                emit(
                    out.json,
                    json!({"migrated": true, "revoked": {"personal_keys": r.personal_keys, "share_keys": r.share_keys}}),
                    &format!(
                        "database is up to date; revoked {} personal and {} share keys that broke their kind's rules",
                        r.personal_keys, r.share_keys
                    ),
                );
            }
            Ok(())
        }
        Command::Key {
            command: KeyCommand::Revoke { id, org, out },
        } => {
            let svc = open(&settings).await?;
            let org = svc
                .org_by_name(&org)
                .await
                .map_err(|_| format!("no organization named {org:?}"))?;
            let key = svc.operator_revoke_key(org.id, id).await.map_err(server::describe)?;
            emit(
                out.json,
                json!({"id": key.id, "revokedAt": key.revoked_at}),
                &format!("revoked key {} in {}", key.id, org.name),
            );
            Ok(())
        }
        Command::Org {
            command: OrgCommand::Create { name, out },
        } => {
            let svc = open(&settings).await?;
            let (org, key) = svc.create_org(None, &name).await.map_err(server::describe)?;
            emit(
                out.json,
                json!({"id": org.id, "apiKey": key}),
                &format!(
                    "created organization {} ({})\nAPI key (shown once): {key}",
                    org.name, org.id
                ),
            );
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    username,
                    password_stdin: _,
                    org,
                    admin,
                    person_id,
                    out,
                },
        } => {
            let svc = open(&settings).await?;
            let password = read_password()?;
            let org = match org {
                Some(name) => svc
                    .org_by_name(&name)
                    .await
                    .map_err(|_| format!("no organization named {name:?}"))?,
                None => svc
                    .system_org()
                    .await
                    .map_err(server::describe)?
                    .ok_or("no --org given and no system organization yet (run `keygate serve` once)")?,
            };
            let user = svc
                .create_user(None, org.id, &username, password, admin, person_id)
                .await
                .map_err(server::describe)?;
            emit(
                out.json,
                json!({"id": user.id}),
                &format!("created user {} ({}) in {}", user.username, user.id, org.name),
            );
            Ok(())
        }
        Command::User { command } => {
            let (username, change, out, what) = match command {
                UserCommand::Passwd { username, out, .. } => {
                    let password = read_password()?;
                    (username, users::UserCommand::Password(password), out, "password set")
                }
                UserCommand::Disable { username, out } => (username, users::UserCommand::Disable, out, "disabled"),
                UserCommand::Enable { username, out } => (username, users::UserCommand::Enable, out, "enabled"),
                UserCommand::Unlock { username, out } => (username, users::UserCommand::Unlock, out, "unlocked"),
                UserCommand::Create { .. } => return Err("unreachable: user create is handled above".into()),
            };
            let svc = open(&settings).await?;
            let user = svc
                .admin_user_command(&username, change)
                .await
                .map_err(server::describe)?;
            emit(
                out.json,
                json!({"id": user.id, "disabled": user.disabled}),
                &format!("{what}: user {} ({})", user.username, user.id),
            );
            Ok(())
        }
    }
}

/// A password from standard input, without its line ending.
fn read_password() -> Result<String, String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(password.trim_end_matches(['\r', '\n']).to_string())
}

async fn create_lock(
    settings: &Settings,
    name: &str,
    org: &str,
    owner: Option<uuid::Uuid>,
    json_out: bool,
) -> Result<(), String> {
    let svc = open(settings).await?;
    let org = svc
        .org_by_name(org)
        .await
        .map_err(|_| format!("no organization named {org:?}"))?;
    let lock = svc
        .create_lock(None, org.id, name, owner, serde_json::Value::Null)
        .await
        .map_err(server::describe)?;
    emit(
        json_out,
        json!({"id": lock.id, "uuid": lock.uuid}),
        &format!(
            "created lock {} (id {}, uuid {}) in {}",
            lock.name, lock.id, lock.uuid, org.name
        ),
    );
    Ok(())
}

async fn open(settings: &Settings) -> Result<crate::service::Service, String> {
    let clock: SharedClock = Arc::new(SystemClock);
    server::build_service(settings, clock).await
}

fn emit(json: bool, value: serde_json::Value, text: &str) {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}
