//! Users of an organization: organization administrators create, read, disable, enable and
//! unlock them and set their passwords; a user reads itself and changes its own password. Every
//! change to an account needs a signed-in person (never an API key or a personal key, or either
//! could take over an account). A password change or a disable ends the user's tickets and
//! sessions, and a disabled user's every credential is refused on the next request.

use super::personal::scope;
use super::validate::validate_username;
use super::{Principal, Service, password};
use crate::core::event::{aggregate, kind as ev};
use crate::error::{Error, Result};
use crate::model::User;
use serde_json::json;
use uuid::Uuid;

impl Service {
    /// Create a user. `by` is `None` for the CLI (which has the database itself).
    pub async fn create_user(
        &self,
        by: Option<&Principal>,
        org_id: Uuid,
        username: &str,
        password: String,
        is_admin: bool,
        person_id: Option<i64>,
    ) -> Result<User> {
        if let Some(p) = by {
            p.require(scope::ORG_WRITE)?;
            p.require_admin()?;
            if p.org_id != org_id && !p.is_system_admin {
                return Err(Error::NotFound("organization"));
            }
            if p.user_id.is_none() && p.org_id != org_id {
                return Err(Error::NotFound("organization"));
            }
        }
        validate_username(username)?;
        password::check_policy(&password)?;
        if let Some(pid) = person_id {
            if !(1..=i64::from(i32::MAX)).contains(&pid) {
                return Err(Error::invalid("person_id", "must be between 1 and 2147483647"));
            }
        }
        if self.store.get_org(org_id).await?.is_none() {
            return Err(Error::NotFound("organization"));
        }
        if self.store.find_user_by_username(username).await?.is_some() {
            return Err(Error::Conflict(format!("a user named {username:?} already exists")));
        }
        let user = User {
            id: Uuid::now_v7(),
            org_id,
            username: username.to_string(),
            password_hash: password::hash(password).await?,
            person_id,
            is_admin,
            created_at: self.now(),
            disabled: false,
            unlocked_at: None,
        };
        let actor = by.map(|p| p.actor.clone()).unwrap_or_else(|| "cli".into());
        let e = self.event(
            org_id,
            aggregate::USER,
            user.id,
            ev::USER_CREATED,
            json!({"username": user.username, "is_admin": is_admin, "person_id": person_id}),
            &actor,
        );
        self.store.create_user(&user, &e).await?;
        Ok(user)
    }

    pub async fn list_users(&self, by: &Principal) -> Result<Vec<User>> {
        by.require(scope::ORG_READ)?;
        by.require_admin()?;
        self.store.list_users(by.org_id).await
    }

    pub async fn get_user(&self, by: &Principal, id: Uuid) -> Result<User> {
        by.require(if by.user_id == Some(id) {
            scope::ACCOUNT_READ
        } else {
            scope::ORG_READ
        })?;
        let u = self
            .store
            .get_user(by.org_id, id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        if !by.is_admin && by.user_id != Some(u.id) {
            return Err(Error::NotFound("user"));
        }
        Ok(u)
    }

    /// Is every one of `ids` a user of the organization? The first that is not is named by
    /// its index in `field`.
    pub(crate) async fn check_members(&self, org_id: Uuid, field: &str, ids: &[Uuid]) -> Result<()> {
        for (i, u) in ids.iter().enumerate() {
            if self.store.get_user(org_id, *u).await?.is_none() {
                return Err(Error::invalid(
                    format!("{field}[{i}]"),
                    "no such user in this organization",
                ));
            }
        }
        Ok(())
    }

    /// The change to write to a user, by a person of its organization (or the CLI).
    async fn write_user(&self, by: Option<&Principal>, mut user: User, change: UserChange) -> Result<User> {
        let now = self.now();
        let (event, data, end_tokens) = match &change {
            UserChange::Password(phc) => {
                user.password_hash = phc.clone();
                (ev::USER_PASSWORD_CHANGED, json!({}), true)
            }
            UserChange::Disabled(true) => {
                user.disabled = true;
                (ev::USER_DISABLED, json!({}), true)
            }
            UserChange::Disabled(false) => {
                user.disabled = false;
                (ev::USER_ENABLED, json!({}), false)
            }
            UserChange::Unlock => {
                user.unlocked_at = Some(now);
                (ev::USER_UNLOCKED, json!({}), false)
            }
        };
        let actor = by.map(|p| p.actor.clone()).unwrap_or_else(|| "cli".into());
        let e = self.event(user.org_id, aggregate::USER, user.id, event, data, &actor);
        if !self.store.update_user(&user, end_tokens, &e).await? {
            return Err(Error::NotFound("user"));
        }
        Ok(user)
    }

    /// `PATCH /v1/users/{id}`: an organization administrator, signed in, sets a user's password
    /// and/or disables or enables it.
    pub async fn update_user(
        &self,
        by: &Principal,
        id: Uuid,
        new_password: Option<String>,
        disabled: Option<bool>,
    ) -> Result<User> {
        by.require_person()?;
        by.require_admin()?;
        if disabled == Some(true) && by.user_id == Some(id) {
            return Err(Error::invalid("disabled", "you cannot disable yourself"));
        }
        if let Some(p) = &new_password {
            password::check_policy(p)?;
        }
        let mut user = self
            .store
            .get_user(by.org_id, id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        if let Some(p) = new_password {
            let phc = password::hash(p).await?;
            user = self.write_user(Some(by), user, UserChange::Password(phc)).await?;
        }
        if let Some(d) = disabled.filter(|d| *d != user.disabled) {
            user = self.write_user(Some(by), user, UserChange::Disabled(d)).await?;
        }
        Ok(user)
    }

    /// `POST /v1/me/password`: a signed-in user changes its own password, giving the current one
    /// (a wrong one counts as a failed login).
    pub async fn change_own_password(&self, by: &Principal, current: &str, new: String, source: &str) -> Result<()> {
        by.require_person()?;
        let id = by.user_id.ok_or(Error::NotFound("user"))?;
        let user = self
            .store
            .get_user(by.org_id, id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        password::check_policy(&new)?;
        match self.login(&user.username, current, source).await {
            Ok(u) if u.id == user.id => {}
            Ok(_) | Err(Error::Unauthenticated) => {
                return Err(Error::Forbidden("the current password is not right".into()));
            }
            Err(e) => return Err(e),
        }
        let phc = password::hash(new).await?;
        self.write_user(Some(by), user, UserChange::Password(phc)).await?;
        Ok(())
    }

    /// `POST /v1/users/{id}/unlock`: an organization administrator, signed in, lifts a user's
    /// lock-out: failed logins up to now no longer count, on every node.
    pub async fn unlock_user(&self, by: &Principal, id: Uuid) -> Result<User> {
        by.require_person()?;
        by.require_admin()?;
        let user = self
            .store
            .get_user(by.org_id, id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        self.write_user(Some(by), user, UserChange::Unlock).await
    }

    /// The CLI (`keygate user passwd|disable|enable|unlock NAME`), which has the database itself.
    pub async fn admin_user_command(&self, username: &str, command: UserCommand) -> Result<User> {
        let user = self
            .store
            .find_user_by_username(username)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let change = match command {
            UserCommand::Password(p) => {
                password::check_policy(&p)?;
                UserChange::Password(password::hash(p).await?)
            }
            UserCommand::Disable => UserChange::Disabled(true),
            UserCommand::Enable => UserChange::Disabled(false),
            UserCommand::Unlock => UserChange::Unlock,
        };
        self.write_user(None, user, change).await
    }
}

/// What the CLI does to a user (no `Debug`: it may hold a password).
pub enum UserCommand {
    Password(String),
    Disable,
    Enable,
    Unlock,
}

enum UserChange {
    /// The new PHC string.
    Password(String),
    Disabled(bool),
    Unlock,
}
