//! Organizations and their API keys. Only administrators of the system organization create
//! organizations; organization administrators (and API keys) manage their own API keys.

use super::personal::scope;
use super::validate::{validate_name, validate_org_name};
use super::{Principal, Service};
use crate::core::event::{aggregate, kind as ev};
use crate::core::secret::{self, Purpose};
use crate::error::{Error, Result};
use crate::model::{ApiKey, Organization};
use serde_json::json;
use uuid::Uuid;

impl Service {
    /// Create an organization and its first API key. `by` is `None` for the CLI.
    pub async fn create_org(&self, by: Option<&Principal>, name: &str) -> Result<(Organization, String)> {
        if let Some(p) = by {
            p.require(scope::ORG_WRITE)?;
            if !p.is_system_admin {
                return Err(Error::Forbidden(
                    "only administrators of the system organization may create organizations".into(),
                ));
            }
        }
        validate_org_name(name)?;
        if self.store.get_org_by_name(name).await?.is_some() {
            return Err(Error::Conflict(format!(
                "an organization named {name:?} already exists"
            )));
        }
        let now = self.now();
        let org = Organization {
            id: Uuid::now_v7(),
            name: name.to_string(),
            is_system: false,
            created_at: now,
        };
        let (key, secret) = self.new_api_key(org.id, "default");
        let actor = by.map(|p| p.actor.clone()).unwrap_or_else(|| "cli".into());
        let events = [
            self.event(
                org.id,
                aggregate::ORGANIZATION,
                org.id,
                ev::ORGANIZATION_CREATED,
                json!({"name": org.name, "is_system": false}),
                &actor,
            ),
            self.event(
                org.id,
                aggregate::API_KEY,
                key.id,
                ev::API_KEY_CREATED,
                json!({"name": key.name, "prefix": key.prefix}),
                &actor,
            ),
        ];
        self.store.create_org(&org, &key, &events).await?;
        Ok((org, secret))
    }

    pub async fn list_orgs(&self, by: &Principal) -> Result<Vec<Organization>> {
        by.require(scope::ORG_READ)?;
        let all = self.store.list_orgs().await?;
        Ok(if by.is_system_admin {
            all
        } else {
            all.into_iter().filter(|o| o.id == by.org_id).collect()
        })
    }

    pub async fn get_org(&self, by: &Principal, id: Uuid) -> Result<Organization> {
        by.require(scope::ORG_READ)?;
        if !by.is_system_admin && by.org_id != id {
            return Err(Error::NotFound("organization"));
        }
        self.store.get_org(id).await?.ok_or(Error::NotFound("organization"))
    }

    /// An organization by name (the CLI).
    pub async fn org_by_name(&self, name: &str) -> Result<Organization> {
        self.store
            .get_org_by_name(name)
            .await?
            .ok_or(Error::NotFound("organization"))
    }

    /// The system organization, once the first start made it (the CLI).
    pub async fn system_org(&self) -> Result<Option<Organization>> {
        Ok(self.store.list_orgs().await?.into_iter().find(|o| o.is_system))
    }

    fn new_api_key(&self, org_id: Uuid, name: &str) -> (ApiKey, String) {
        let k = secret::new_native_key("kgo_");
        let key = ApiKey {
            id: Uuid::now_v7(),
            org_id,
            name: name.to_string(),
            prefix: k.prefix.clone(),
            hash: self.hasher.digest(Purpose::ApiKey, &k.full).to_vec(),
            created_at: self.now(),
            revoked_at: None,
        };
        (key, k.full)
    }

    pub async fn create_api_key(&self, by: &Principal, name: &str) -> Result<(ApiKey, String)> {
        by.require(scope::ORG_WRITE)?;
        by.require_admin()?;
        validate_name("name", name)?;
        let (key, secret) = self.new_api_key(by.org_id, name);
        let e = self.event(
            by.org_id,
            aggregate::API_KEY,
            key.id,
            ev::API_KEY_CREATED,
            json!({"name": key.name, "prefix": key.prefix}),
            &by.actor,
        );
        self.store.create_api_key(&key, &e).await?;
        Ok((key, secret))
    }

    pub async fn list_api_keys(&self, by: &Principal) -> Result<Vec<ApiKey>> {
        by.require(scope::ORG_READ)?;
        by.require_admin()?;
        self.store.list_api_keys(by.org_id).await
    }

    pub async fn revoke_api_key(&self, by: &Principal, id: Uuid) -> Result<ApiKey> {
        by.require(scope::ORG_WRITE)?;
        by.require_admin()?;
        let now = self.now();
        let e = self.event(
            by.org_id,
            aggregate::API_KEY,
            id,
            ev::API_KEY_REVOKED,
            json!({}),
            &by.actor,
        );
        self.store
            .revoke_api_key(by.org_id, id, now, &e)
            .await?
            .ok_or(Error::NotFound("API key"))
    }
}
