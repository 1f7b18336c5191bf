//! The ForeignSystem mapping store's use cases (SuperOffice's ForeignSystem agent): who may read
//! and write it, the input rules, and each operation. Rows are identified as `core::foreign`
//! describes; every lookup is scoped to the caller's organization in the store's query.
//!
//! Rights: reading needs `Organization.Read`, writing `Organization.ReadWrite` (for a personal
//! access key) and an administrator (an organization API key is one). A user who is not an
//! administrator reads with Select rights and is refused every write.

use super::personal::scope;
use super::{Principal, Service};
use crate::core::foreign::{
    Author, DevicePath, DeviceTarget, ForeignApp, ForeignDevice, ForeignKey, KeyFilter, KeyMode, KeyWrite,
    MAX_NAME_CHARS, MAX_VALUE_CHARS, Stamp, check_name, check_text,
};
use crate::error::{Error, Result};
use uuid::Uuid;

/// Most rows one list answers; a larger answer is refused with a clear error rather than cut.
pub const MAX_LIST: u32 = 50_000;

/// What the caller may do with the mapping store (shown as TableRight and FieldProperties).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignRights {
    /// Select, Update, Insert and Delete.
    Full,
    /// Select only.
    Read,
}

/// A device address as the agent's methods give it: a blank identifier is the empty one.
pub fn device_path(app: &str, device: &str, identifier: Option<&str>) -> DevicePath {
    DevicePath {
        app: app.to_string(),
        device: device.to_string(),
        identifier: identifier.unwrap_or_default().to_string(),
    }
}

fn check_path(p: &DevicePath) -> Result<()> {
    check_name("ApplicationName", &p.app)?;
    check_name("DeviceName", &p.device)?;
    check_text("DeviceIdentifier", &p.identifier, MAX_NAME_CHARS)
}

fn check_filter(f: &KeyFilter) -> Result<()> {
    if let Some(k) = &f.key_name {
        check_text("KeyName", k, MAX_NAME_CHARS)?;
    }
    if let Some(t) = &f.table_name {
        check_text("TableName", t, MAX_NAME_CHARS)?;
    }
    Ok(())
}

fn check_list<T>(rows: Vec<T>) -> Result<Vec<T>> {
    if rows.len() > MAX_LIST as usize {
        return Err(Error::invalid(
            "request",
            format!("more than {MAX_LIST} rows match; ask for a narrower set (a device, a table, a record)"),
        ));
    }
    Ok(rows)
}

impl Service {
    /// The caller's rights on the mapping store (after `foreign_read`).
    pub fn foreign_rights(&self, p: &Principal) -> ForeignRights {
        if p.is_admin && p.require(scope::ORG_WRITE).is_ok() {
            ForeignRights::Full
        } else {
            ForeignRights::Read
        }
    }

    fn foreign_read(&self, p: &Principal) -> Result<()> {
        p.require(scope::ORG_READ)
    }

    /// May this caller write? Then the stamp its writes carry.
    fn foreign_write(&self, p: &Principal) -> Result<Stamp> {
        p.require(scope::ORG_WRITE)?;
        if self.foreign_rights(p) != ForeignRights::Full {
            return Err(Error::Forbidden(
                "only an administrator may change the foreign system mappings".into(),
            ));
        }
        Ok(Stamp {
            org_id: p.org_id,
            author: author(p),
            actor: p.actor.clone(),
            at: self.now(),
        })
    }

    /// CreateDefaultForeignAppEntity: a new, unsaved application with the caller as its author.
    pub fn default_foreign_app(&self, p: &Principal) -> Result<ForeignApp> {
        self.foreign_read(p)?;
        let now = self.now();
        Ok(ForeignApp {
            id: 0,
            uuid: Uuid::nil(),
            org_id: p.org_id,
            name: String::new(),
            created_at: now,
            created_by: author(p),
            updated_at: now,
            updated_by: author(p),
        })
    }

    /// SaveForeignAppEntity: create (`id == 0`) or rename. `None` when `id` is not one of the
    /// organization's applications.
    pub async fn save_foreign_app(&self, p: &Principal, id: i32, name: &str) -> Result<Option<ForeignApp>> {
        let stamp = self.foreign_write(p)?;
        check_name("Name", name)?;
        if id < 0 {
            return Err(Error::invalid("ForeignAppId", "must not be negative"));
        }
        self.store.save_foreign_app(id, name, &stamp).await
    }

    /// DeleteForeignAppEntity, with its devices and keys.
    pub async fn delete_foreign_app(&self, p: &Principal, id: i32) -> Result<bool> {
        let stamp = self.foreign_write(p)?;
        self.store.delete_foreign_app(id, &stamp).await
    }

    /// GetForeignAppEntity / GetAppByName: the application and its devices.
    pub async fn get_foreign_app(
        &self,
        p: &Principal,
        id: Option<i32>,
        name: Option<&str>,
    ) -> Result<Option<(ForeignApp, Vec<ForeignDevice>)>> {
        self.foreign_read(p)?;
        let app = match (id, name) {
            (Some(id), _) => self.store.get_foreign_app(p.org_id, id).await?,
            (None, Some(name)) => {
                check_name("ApplicationName", name)?;
                self.store.get_foreign_app_by_name(p.org_id, name).await?
            }
            (None, None) => return Err(Error::internal("get_foreign_app needs an id or a name")),
        };
        let Some(app) = app else { return Ok(None) };
        let devices = self.store.list_foreign_devices(p.org_id, app.id).await?;
        Ok(Some((app, devices)))
    }

    /// GetApplicationDevices: empty when there is no such application.
    pub async fn foreign_app_devices(&self, p: &Principal, app: &str) -> Result<Vec<ForeignDevice>> {
        Ok(self
            .get_foreign_app(p, None, Some(app))
            .await?
            .map(|(_, d)| d)
            .unwrap_or_default())
    }

    /// GetForeignDevice.
    pub async fn get_foreign_device(&self, p: &Principal, id: i32) -> Result<Option<ForeignDevice>> {
        self.foreign_read(p)?;
        self.store.get_foreign_device(p.org_id, id).await
    }

    /// GetDeviceByName / GetDeviceByIdentifier.
    pub async fn get_foreign_device_at(&self, p: &Principal, path: &DevicePath) -> Result<Option<ForeignDevice>> {
        self.foreign_read(p)?;
        check_path(path)?;
        self.store.get_foreign_device_at(p.org_id, path).await
    }

    /// AddDeviceByIdentifier (`touch` false: an existing device is answered as it is),
    /// SaveDeviceByIdentifier and SaveForeignDevice (`touch` true: stamped, and renamed to
    /// `rename`). By path the application and device are created when missing.
    pub async fn save_foreign_device(
        &self,
        p: &Principal,
        app: &str,
        target: &DeviceTarget,
        rename: Option<(&str, &str)>,
        touch: bool,
    ) -> Result<Option<ForeignDevice>> {
        let stamp = self.foreign_write(p)?;
        check_name("ApplicationName", app)?;
        match target {
            DeviceTarget::Path { name, identifier } => {
                check_name("DeviceName", name)?;
                check_text("DeviceIdentifier", identifier, MAX_NAME_CHARS)?;
            }
            DeviceTarget::Id(id) if *id <= 0 => return Err(Error::invalid("ForeignDeviceId", "must be positive")),
            DeviceTarget::Id(_) => {}
        }
        if let Some((name, identifier)) = rename {
            check_name("ForeignDevice.Name", name)?;
            check_text("ForeignDevice.DeviceIdentifier", identifier, MAX_NAME_CHARS)?;
        }
        self.store.save_foreign_device(app, target, rename, touch, &stamp).await
    }

    /// DeleteDeviceByIdentifier / DeleteForeignDevice, with the device's keys.
    pub async fn delete_foreign_device(&self, p: &Principal, app: &str, target: &DeviceTarget) -> Result<bool> {
        let stamp = self.foreign_write(p)?;
        check_name("ApplicationName", app)?;
        if let DeviceTarget::Path { name, identifier } = target {
            check_name("DeviceName", name)?;
            check_text("DeviceIdentifier", identifier, MAX_NAME_CHARS)?;
        }
        self.store.delete_foreign_device(app, target, &stamp).await
    }

    /// GetDeviceKeys*, GetKey*: a device's keys matching `filter`; empty when there is no
    /// such device.
    pub async fn foreign_keys(&self, p: &Principal, path: &DevicePath, filter: &KeyFilter) -> Result<Vec<ForeignKey>> {
        self.foreign_read(p)?;
        check_path(path)?;
        check_filter(filter)?;
        let Some(device) = self.store.get_foreign_device_at(p.org_id, path).await? else {
            return Ok(vec![]);
        };
        check_list(
            self.store
                .list_foreign_keys(p.org_id, device.id, filter, MAX_LIST + 1)
                .await?,
        )
    }

    /// GetKey / GetKeyValue and their by-identifier forms: the oldest key matching `filter`.
    pub async fn foreign_key(
        &self,
        p: &Principal,
        path: &DevicePath,
        filter: &KeyFilter,
    ) -> Result<Option<ForeignKey>> {
        self.foreign_read(p)?;
        check_path(path)?;
        check_filter(filter)?;
        let Some(device) = self.store.get_foreign_device_at(p.org_id, path).await? else {
            return Ok(None);
        };
        Ok(self
            .store
            .list_foreign_keys(p.org_id, device.id, filter, 1)
            .await?
            .into_iter()
            .next())
    }

    /// GetApplicationKeys: empty when there is no such application.
    pub async fn foreign_app_keys(&self, p: &Principal, app: &str) -> Result<Vec<ForeignKey>> {
        self.foreign_read(p)?;
        check_name("ApplicationName", app)?;
        let Some(a) = self.store.get_foreign_app_by_name(p.org_id, app).await? else {
            return Ok(vec![]);
        };
        check_list(self.store.list_app_foreign_keys(p.org_id, a.id, MAX_LIST + 1).await?)
    }

    /// GetKeyByValue / GetKeyByValueAndIdentifier: the oldest key of that name whose value is
    /// exactly `value` (and in that table, unless it is blank).
    pub async fn foreign_key_by_value(
        &self,
        p: &Principal,
        path: &DevicePath,
        key_name: &str,
        value: &str,
        table_name: Option<&str>,
    ) -> Result<Option<ForeignKey>> {
        self.foreign_read(p)?;
        check_path(path)?;
        check_text("KeyName", key_name, MAX_NAME_CHARS)?;
        check_text("KeyValue", value, MAX_VALUE_CHARS)?;
        if let Some(t) = table_name {
            check_text("TableName", t, MAX_NAME_CHARS)?;
        }
        let Some(device) = self.store.get_foreign_device_at(p.org_id, path).await? else {
            return Ok(None);
        };
        self.store
            .get_foreign_key_by_value(p.org_id, device.id, key_name, value, table_name)
            .await
    }

    /// GetAllForeignKeysOnEntity: `(application, device, key)` for every key on the record.
    pub async fn foreign_keys_on_entity(
        &self,
        p: &Principal,
        table_name: &str,
        record_id: i32,
    ) -> Result<Vec<(String, String, ForeignKey)>> {
        self.foreign_read(p)?;
        check_name("EntityType", table_name)?;
        check_list(
            self.store
                .foreign_keys_on_entity(p.org_id, table_name, record_id, MAX_LIST + 1)
                .await?,
        )
    }

    /// AddForeignKey / SaveForeignKey (the upsert on application, device, key name, table
    /// and record id). The application and device are created when missing.
    pub async fn save_foreign_key(
        &self,
        p: &Principal,
        path: &DevicePath,
        key: &KeyWrite,
        mode: KeyMode,
    ) -> Result<ForeignKey> {
        let stamp = self.foreign_write(p)?;
        check_path(path)?;
        check_text("ForeignKey.Key", &key.key_name, MAX_NAME_CHARS)?;
        check_text("ForeignKey.Value", &key.value, MAX_VALUE_CHARS)?;
        check_text("ForeignKey.TableName", &key.table_name, MAX_NAME_CHARS)?;
        self.store.save_foreign_key(path, key, mode, &stamp).await
    }

    /// DeleteForeignKey / DeleteForeignKeyOnName: the device's keys of that name; a blank
    /// table name deletes them in every table, record id 0 on every record of the table.
    pub async fn delete_foreign_keys(&self, p: &Principal, path: &DevicePath, filter: &KeyFilter) -> Result<u64> {
        let stamp = self.foreign_write(p)?;
        check_path(path)?;
        check_filter(filter)?;
        self.store.delete_foreign_keys(path, filter, &stamp).await
    }
}

fn author(p: &Principal) -> Author {
    Author {
        name: p.name.clone(),
        user_id: p.user_id,
        person_id: p.person_id,
    }
}
