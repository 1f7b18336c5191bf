//! The ForeignSystem agent's operations: arguments to the service's use cases, results to
//! carriers. REST and SOAP both come here through `execute`.

use super::args::Args;
use super::carrier::{self, FIELD_FULL, FIELD_READ, FIELD_READ_ONLY, TABLE_FULL, TABLE_SELECT};
use super::ops::{ASSOCIATE, CarrierDef, FOREIGN_APP_ENTITY, FOREIGN_DEVICE, FOREIGN_KEY, FieldTy, Operation};
use super::{Answer, Ctx};
use crate::core::foreign::{
    Author, DevicePath, DeviceTarget, ForeignApp, ForeignDevice, ForeignKey, KeyFilter, KeyMode, KeyWrite,
};
use crate::error::{Error, Result};
use crate::service::foreign::{ForeignRights, device_path};
use crate::service::{Principal, Service};
use serde_json::{Map, Value, json};

/// Fields the server owns: read-only for every caller.
const SERVER_OWNED: &[&str] = &[
    "ForeignAppId",
    "ForeignDeviceId",
    "CreatedDate",
    "UpdatedDate",
    "CreatedBy",
    "UpdatedBy",
    "AssociateFullName",
    "Devices",
];

fn field_type(ty: FieldTy) -> &'static str {
    match ty {
        FieldTy::Int => "System.Int32",
        FieldTy::Short => "System.Int16",
        FieldTy::Bool => "System.Boolean",
        FieldTy::String => "System.String",
        FieldTy::DateTime => "System.DateTime",
        FieldTy::UserType => "SuperOffice.CRM.UserType",
        FieldTy::Carrier(_) => "SuperOffice.CRM.Services.Associate",
        FieldTy::List(_) => "SuperOffice.CRM.Services.ForeignDevice[]",
        FieldTy::StringDictionary => "SuperOffice.Util.StringDictionary",
    }
}

fn field_length(carrier: &str, field: &str, ty: FieldTy) -> u32 {
    match (carrier, field, ty) {
        ("ForeignKey", "Value", _) => crate::core::foreign::MAX_VALUE_CHARS as u32,
        (_, _, FieldTy::String) => crate::core::foreign::MAX_NAME_CHARS as u32,
        _ => 0,
    }
}

/// TableRight and FieldProperties from the caller's real rights. An Associate (who wrote an
/// application) is the server's record: read-only to every caller.
fn rights(def: &CarrierDef, r: ForeignRights, m: &mut Map<String, Value>) {
    let all_server_owned = def.name == ASSOCIATE.name;
    let (table, reason) = match r {
        _ if all_server_owned => (TABLE_SELECT, "set by the server"),
        ForeignRights::Full => (TABLE_FULL, ""),
        ForeignRights::Read => (
            TABLE_SELECT,
            "only an administrator may change the foreign system mappings",
        ),
    };
    m.insert("TableRight".into(), json!({"Mask": table, "Reason": reason}));
    let mut fp = Map::new();
    for (name, ty) in def.fields {
        let (mask, why) = if all_server_owned || SERVER_OWNED.contains(name) {
            (FIELD_READ_ONLY, "set by the server")
        } else if r == ForeignRights::Full {
            (FIELD_FULL, "")
        } else {
            (FIELD_READ, reason)
        };
        fp.insert(
            (*name).to_string(),
            json!({
                "FieldRight": {"Mask": mask, "Reason": why},
                "FieldType": field_type(*ty),
                "FieldLength": field_length(def.name, name, *ty),
            }),
        );
    }
    m.insert("FieldProperties".into(), Value::Object(fp));
}

fn with_rights(def: &CarrierDef, r: ForeignRights, v: Value) -> Value {
    match v {
        Value::Object(mut m) => {
            rights(def, r, &mut m);
            Value::Object(m)
        }
        other => other,
    }
}

fn associate(a: &Author, r: ForeignRights) -> Value {
    let kind = if a.user_id.is_some() {
        "InternalAssociate"
    } else {
        "SystemAssociate"
    };
    let person = a.person_id.and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    with_rights(
        &ASSOCIATE,
        r,
        json!({
            "AssociateId": 0, "Name": a.name, "PersonId": person, "Rank": 0, "Tooltip": a.name,
            "Type": kind, "GroupIdx": 0, "FullName": a.name, "FormalName": a.name, "Deleted": false,
            "EjUserId": 0, "UserName": a.name, "ExtraFields": null, "CustomFields": null,
        }),
    )
}

pub fn key_carrier(k: &ForeignKey, r: ForeignRights, ctx: &Ctx) -> Value {
    with_rights(
        &FOREIGN_KEY,
        r,
        json!({
            "Key": k.key_name, "Value": k.value, "RecordId": k.record_id,
            "CreatedDate": carrier::date(k.created_at, ctx), "UpdatedDate": carrier::date(k.updated_at, ctx),
            "UpdatedBy": k.updated_by, "CreatedBy": k.created_by, "TableName": k.table_name,
        }),
    )
}

pub fn device_carrier(d: &ForeignDevice, r: ForeignRights, ctx: &Ctx) -> Value {
    with_rights(
        &FOREIGN_DEVICE,
        r,
        json!({
            "ForeignDeviceId": d.id, "Name": d.name,
            "CreatedDate": carrier::date(d.created_at, ctx), "UpdatedDate": carrier::date(d.updated_at, ctx),
            "AssociateFullName": d.owner_name, "CreatedBy": d.created_by, "UpdatedBy": d.updated_by,
            "DeviceIdentifier": d.identifier, "ForeignAppId": d.app_id,
        }),
    )
}

pub fn app_carrier(a: &ForeignApp, devices: &[ForeignDevice], r: ForeignRights, ctx: &Ctx) -> Value {
    with_rights(
        &FOREIGN_APP_ENTITY,
        r,
        json!({
            "ForeignAppId": a.id, "Name": a.name,
            "CreatedDate": carrier::date(a.created_at, ctx), "UpdatedDate": carrier::date(a.updated_at, ctx),
            "CreatedBy": associate(&a.created_by, r), "UpdatedBy": associate(&a.updated_by, r),
            "Devices": devices.iter().map(|d| device_carrier(d, r, ctx)).collect::<Vec<_>>(),
        }),
    )
}

fn one(def: &'static CarrierDef, v: Option<Value>) -> Answer {
    match v {
        Some(v) => Answer::Carrier(def, v),
        None => Answer::Null,
    }
}

/// A string argument; absent or null is "".
fn text(args: &Args, op: &Operation, name: &str) -> Result<String> {
    Ok(args.string(op, name)?.unwrap_or_default())
}

/// The device address of a by-name (`ident` false) or by-identifier method.
fn path(args: &Args, op: &Operation, ident: bool) -> Result<DevicePath> {
    let identifier = if ident {
        args.string(op, "DeviceIdentifier")?
    } else {
        None
    };
    Ok(device_path(
        &text(args, op, "ApplicationName")?,
        &text(args, op, "DeviceName")?,
        identifier.as_deref(),
    ))
}

/// TableName and RecordId when the operation takes them: blank and 0 match any.
fn table_record(args: &Args, op: &Operation) -> Result<(Option<String>, Option<i32>)> {
    let table = if op.param("TableName").is_some() {
        args.string(op, "TableName")?.filter(|t| !t.is_empty())
    } else {
        None
    };
    let record = if op.param("RecordId").is_some() {
        Some(args.int(op, "RecordId")?).filter(|r| *r != 0)
    } else {
        None
    };
    Ok((table, record))
}

fn key_filter(args: &Args, op: &Operation, key_name: Option<String>) -> Result<KeyFilter> {
    let (table_name, record_id) = table_record(args, op)?;
    Ok(KeyFilter {
        key_name,
        table_name,
        record_id,
    })
}

fn required_carrier(args: &Args, op: &Operation, name: &str) -> Result<Args> {
    args.carrier(op, name)?
        .ok_or_else(|| Error::invalid(name, "is required"))
}

/// Run one ForeignSystem operation.
pub async fn execute(svc: &Service, p: &Principal, op: &Operation, args: &Args, ctx: &Ctx) -> Result<Answer> {
    let by_identifier = op.param("DeviceIdentifier").is_some();
    let answer = match op.name {
        "CreateDefaultForeignAppEntity" => {
            let app = svc.default_foreign_app(p)?;
            Answer::Carrier(&FOREIGN_APP_ENTITY, app_carrier(&app, &[], svc.foreign_rights(p), ctx))
        }
        "SaveForeignAppEntity" => {
            let e = required_carrier(args, op, "ForeignAppEntity")?;
            let id = e.field_int("ForeignAppEntity", "ForeignAppId")?;
            let name = e.field_string("ForeignAppEntity", "Name")?.unwrap_or_default();
            let app = svc.save_foreign_app(p, id, &name).await?;
            match app {
                Some(app) => {
                    let found = svc.get_foreign_app(p, Some(app.id), None).await?;
                    let devices = found.map(|(_, d)| d).unwrap_or_default();
                    Answer::Carrier(
                        &FOREIGN_APP_ENTITY,
                        app_carrier(&app, &devices, svc.foreign_rights(p), ctx),
                    )
                }
                None => Answer::Null,
            }
        }
        "DeleteForeignAppEntity" => {
            svc.delete_foreign_app(p, args.int(op, "ForeignAppEntityId")?).await?;
            Answer::Void
        }
        "GetForeignAppEntity" | "GetAppByName" => {
            let found = if op.name == "GetAppByName" {
                svc.get_foreign_app(p, None, Some(&text(args, op, "ApplicationName")?))
                    .await?
            } else {
                svc.get_foreign_app(p, Some(args.int(op, "ForeignAppEntityId")?), None)
                    .await?
            };
            let r = svc.foreign_rights(p);
            one(&FOREIGN_APP_ENTITY, found.map(|(a, d)| app_carrier(&a, &d, r, ctx)))
        }
        "GetApplicationDevices" => {
            let devices = svc.foreign_app_devices(p, &text(args, op, "ApplicationName")?).await?;
            let r = svc.foreign_rights(p);
            Answer::List(
                &FOREIGN_DEVICE,
                devices.iter().map(|d| device_carrier(d, r, ctx)).collect(),
            )
        }
        "GetDeviceByName" | "GetDeviceByIdentifier" => {
            let d = svc.get_foreign_device_at(p, &path(args, op, by_identifier)?).await?;
            let r = svc.foreign_rights(p);
            one(&FOREIGN_DEVICE, d.map(|d| device_carrier(&d, r, ctx)))
        }
        "GetForeignDevice" => {
            let d = svc.get_foreign_device(p, args.int(op, "ForeignDeviceId")?).await?;
            let r = svc.foreign_rights(p);
            one(&FOREIGN_DEVICE, d.map(|d| device_carrier(&d, r, ctx)))
        }
        "AddDeviceByIdentifier" | "SaveDeviceByIdentifier" => {
            let at = path(args, op, true)?;
            let rename = match op.param("ForeignDevice").map(|_| args.carrier(op, "ForeignDevice")) {
                Some(Ok(Some(d))) => {
                    let name = d.field_string("ForeignDevice", "Name")?.unwrap_or_default();
                    let ident = d.field_string("ForeignDevice", "DeviceIdentifier")?.unwrap_or_default();
                    (!name.is_empty()).then_some((name, ident))
                }
                Some(Err(e)) => return Err(e),
                _ => None,
            };
            let target = DeviceTarget::Path {
                name: at.device,
                identifier: at.identifier,
            };
            let touch = op.name == "SaveDeviceByIdentifier";
            let d = svc
                .save_foreign_device(
                    p,
                    &at.app,
                    &target,
                    rename.as_ref().map(|(n, i)| (n.as_str(), i.as_str())),
                    touch,
                )
                .await?;
            let r = svc.foreign_rights(p);
            one(&FOREIGN_DEVICE, d.map(|d| device_carrier(&d, r, ctx)))
        }
        "SaveForeignDevice" | "DeleteForeignDevice" => {
            let app = text(args, op, "ApplicationName")?;
            let d = required_carrier(args, op, "ForeignDevice")?;
            let id = d.field_int("ForeignDevice", "ForeignDeviceId")?;
            let name = d.field_string("ForeignDevice", "Name")?.unwrap_or_default();
            let ident = d.field_string("ForeignDevice", "DeviceIdentifier")?.unwrap_or_default();
            let (target, rename) = if id != 0 {
                (DeviceTarget::Id(id), Some((name.as_str(), ident.as_str())))
            } else {
                (
                    DeviceTarget::Path {
                        name: name.clone(),
                        identifier: ident.clone(),
                    },
                    None,
                )
            };
            if op.name == "DeleteForeignDevice" {
                svc.delete_foreign_device(p, &app, &target).await?;
                Answer::Void
            } else {
                let saved = svc.save_foreign_device(p, &app, &target, rename, true).await?;
                let r = svc.foreign_rights(p);
                one(&FOREIGN_DEVICE, saved.map(|d| device_carrier(&d, r, ctx)))
            }
        }
        "DeleteDeviceByIdentifier" => {
            let at = path(args, op, true)?;
            let target = DeviceTarget::Path {
                name: at.device,
                identifier: at.identifier,
            };
            svc.delete_foreign_device(p, &at.app, &target).await?;
            Answer::Void
        }
        "GetKey" | "GetKeyOnDeviceIdentifier" | "GetKeyValue" | "GetKeyValueOnDeviceIdentifier" => {
            let filter = key_filter(args, op, Some(text(args, op, "KeyName")?))?;
            let k = svc.foreign_key(p, &path(args, op, by_identifier)?, &filter).await?;
            if op.returns == super::ops::Returns::String {
                match k {
                    Some(k) => Answer::Str(k.value),
                    None => Answer::Null,
                }
            } else {
                let r = svc.foreign_rights(p);
                one(&FOREIGN_KEY, k.map(|k| key_carrier(&k, r, ctx)))
            }
        }
        "AddForeignKey" | "SaveForeignKey" => {
            let c = required_carrier(args, op, "ForeignKey")?;
            // CreatedDate, UpdatedDate, CreatedBy and UpdatedBy are the server's: ignored.
            let key = KeyWrite {
                key_name: c.field_string("ForeignKey", "Key")?.unwrap_or_default(),
                value: c.field_string("ForeignKey", "Value")?.unwrap_or_default(),
                table_name: c.field_string("ForeignKey", "TableName")?.unwrap_or_default(),
                record_id: c.field_int("ForeignKey", "RecordId")?,
            };
            let mode = if op.name == "AddForeignKey" {
                KeyMode::Add
            } else {
                KeyMode::Save
            };
            let k = svc.save_foreign_key(p, &path(args, op, true)?, &key, mode).await?;
            Answer::Carrier(&FOREIGN_KEY, key_carrier(&k, svc.foreign_rights(p), ctx))
        }
        "DeleteForeignKeyOnName" | "DeleteForeignKey" => {
            let key_name = if op.name == "DeleteForeignKey" {
                required_carrier(args, op, "ForeignKey")?
                    .field_string("ForeignKey", "Key")?
                    .unwrap_or_default()
            } else {
                text(args, op, "KeyName")?
            };
            let mut filter = key_filter(args, op, Some(key_name))?;
            // A blank table name deletes ALL keys of the name on the device, whatever the record.
            if filter.table_name.is_none() {
                filter.record_id = None;
            }
            svc.delete_foreign_keys(p, &path(args, op, true)?, &filter).await?;
            Answer::Void
        }
        "GetKeyByValue" | "GetKeyByValueAndIdentifier" => {
            let table = args.string(op, "TableName")?.filter(|t| !t.is_empty());
            let k = svc
                .foreign_key_by_value(
                    p,
                    &path(args, op, by_identifier)?,
                    &text(args, op, "KeyName")?,
                    &text(args, op, "KeyValue")?,
                    table.as_deref(),
                )
                .await?;
            let r = svc.foreign_rights(p);
            one(&FOREIGN_KEY, k.map(|k| key_carrier(&k, r, ctx)))
        }
        "GetAllForeignKeysOnEntity" => {
            let rows = svc
                .foreign_keys_on_entity(p, &text(args, op, "EntityType")?, args.int(op, "EntityId")?)
                .await?;
            let mut pairs: Vec<(String, String)> = Vec::with_capacity(rows.len());
            let mut seen = std::collections::HashSet::new();
            for (app, device, k) in rows {
                let name = format!("{app}.{device}.{}", k.key_name);
                // Two keys with one name (devices that differ only by identifier): the oldest.
                if seen.insert(name.clone()) {
                    pairs.push((name, k.value));
                }
            }
            Answer::Dict(pairs)
        }
        "GetDeviceKeys"
        | "GetDeviceKeysOnDeviceIdentifier"
        | "GetDeviceKeysOnDeviceIdentifierTable"
        | "GetDeviceKeysOnDeviceIdentifierTableRecordId" => {
            let filter = key_filter(args, op, None)?;
            let keys = svc.foreign_keys(p, &path(args, op, by_identifier)?, &filter).await?;
            let r = svc.foreign_rights(p);
            Answer::List(&FOREIGN_KEY, keys.iter().map(|k| key_carrier(k, r, ctx)).collect())
        }
        "GetApplicationKeys" => {
            let keys = svc.foreign_app_keys(p, &text(args, op, "ApplicationName")?).await?;
            let r = svc.foreign_rights(p);
            Answer::List(&FOREIGN_KEY, keys.iter().map(|k| key_carrier(k, r, ctx)).collect())
        }
        other => return Err(Error::internal(format!("operation {other} has no implementation"))),
    };
    Ok(answer)
}
