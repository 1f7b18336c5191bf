//! Users of an organization: organization administrators create and read them; a user reads
//! itself.

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
}
