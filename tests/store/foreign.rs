//! Conformance of the ForeignSystem mapping store (applications -> devices -> keys): the
//! `*foreign*` methods of the `Store` trait, on every backend (run by `conformance!` in
//! main.rs). Every write is stamped by hand (`Stamp`), every organization exists first.

use super::{Fx, seed_org, t0};
use chrono::Duration;
use keygate::core::event::Event;
use keygate::core::foreign::{
    Author, DevicePath, DeviceTarget, ForeignApp, ForeignDevice, ForeignKey, KeyFilter, KeyMode, KeyWrite, Stamp,
};
use keygate::error::Error;
use keygate::store::SharedStore;
use serde_json::json;
use uuid::Uuid;

/// Who writes, when: an administrator of `org`, `secs` seconds after t0.
fn stamp_by(org: Uuid, name: &str, secs: i64) -> Stamp {
    let user = Uuid::now_v7();
    Stamp {
        org_id: org,
        author: Author {
            name: name.into(),
            user_id: Some(user),
            person_id: Some(7),
        },
        actor: format!("user:{user}"),
        at: t0() + Duration::seconds(secs),
    }
}

fn stamp(org: Uuid) -> Stamp {
    stamp_by(org, "admin", 0)
}

/// An organization API key's stamp: no user, no person.
fn api_stamp(org: Uuid, secs: i64) -> Stamp {
    let key = Uuid::now_v7();
    Stamp {
        org_id: org,
        author: Author {
            name: "integration key".into(),
            user_id: None,
            person_id: None,
        },
        actor: format!("api_key:{key}"),
        at: t0() + Duration::seconds(secs),
    }
}

fn path(app: &str, device: &str, identifier: &str) -> DevicePath {
    DevicePath {
        app: app.into(),
        device: device.into(),
        identifier: identifier.into(),
    }
}

fn by_path(name: &str, identifier: &str) -> DeviceTarget {
    DeviceTarget::Path {
        name: name.into(),
        identifier: identifier.into(),
    }
}

fn kw(key: &str, value: &str, table: &str, record: i32) -> KeyWrite {
    KeyWrite {
        key_name: key.into(),
        value: value.into(),
        table_name: table.into(),
        record_id: record,
    }
}

fn filter(key: Option<&str>, table: Option<&str>, record: Option<i32>) -> KeyFilter {
    KeyFilter {
        key_name: key.map(Into::into),
        table_name: table.map(Into::into),
        record_id: record,
    }
}

const ANY: KeyFilter = KeyFilter {
    key_name: None,
    table_name: None,
    record_id: None,
};

async fn add(s: &SharedStore, p: &DevicePath, k: KeyWrite, st: &Stamp) -> ForeignKey {
    s.save_foreign_key(p, &k, KeyMode::Add, st).await.unwrap()
}

async fn new_app(s: &SharedStore, name: &str, st: &Stamp) -> ForeignApp {
    s.save_foreign_app(0, name, st).await.unwrap().unwrap()
}

async fn device_at(s: &SharedStore, org: Uuid, p: &DevicePath) -> Option<ForeignDevice> {
    s.get_foreign_device_at(org, p).await.unwrap()
}

async fn keys_of(s: &SharedStore, org: Uuid, device: i32) -> Vec<ForeignKey> {
    s.list_foreign_keys(org, device, &ANY, 1000).await.unwrap()
}

/// The organization's ForeignSystem events, oldest first.
async fn foreign_events(s: &SharedStore, org: Uuid) -> Vec<Event> {
    s.list_events(org, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.aggregate_type.starts_with("foreign_"))
        .collect()
}

fn types(evs: &[Event]) -> Vec<&str> {
    evs.iter().map(|e| e.event_type.as_str()).collect()
}

fn ids<'a>(keys: impl IntoIterator<Item = &'a ForeignKey>) -> Vec<i64> {
    keys.into_iter().map(|k| k.id).collect()
}

/// Every ForeignSystem event has the aggregate type of its event type, the stamp's actor, and
/// none of `values` anywhere in its data (values are the integration's data, never audited).
fn check_events(evs: &[Event], values: &[&str]) {
    for e in evs {
        let want = if e.event_type.starts_with("ForeignApp") {
            "foreign_app"
        } else if e.event_type.starts_with("ForeignDevice") {
            "foreign_device"
        } else if e.event_type.starts_with("ForeignKey") {
            "foreign_key"
        } else {
            panic!("unexpected event {e:?}")
        };
        assert_eq!(e.aggregate_type, want, "{e:?}");
        assert!(e.actor.starts_with("user:") || e.actor.starts_with("api_key:"), "{e:?}");
        let text = e.data.to_string();
        for v in values {
            assert!(!text.contains(v), "the event {e:?} contains the value {v:?}");
        }
        assert!(e.data.get("value").is_none() && e.data.get("Value").is_none(), "{e:?}");
    }
}

pub(crate) async fn foreign_apps(fx: Fx) {
    let s = &fx.store;
    let a = seed_org(s, "acme").await;
    let b = seed_org(s, "beta").await;
    let st = stamp(a.id);

    let erp = new_app(s, "ERP", &st).await;
    assert!(erp.id > 0);
    assert_eq!((erp.org_id, erp.name.as_str()), (a.id, "ERP"));
    assert_eq!((erp.created_at, &erp.created_by), (t0(), &st.author));
    assert_eq!((erp.updated_at, &erp.updated_by), (t0(), &st.author));
    assert_eq!(s.get_foreign_app(a.id, erp.id).await.unwrap(), Some(erp.clone()));
    assert_eq!(s.get_foreign_app_by_name(a.id, "ERP").await.unwrap(), Some(erp.clone()));
    assert_eq!(s.list_foreign_devices(a.id, erp.id).await.unwrap(), vec![]);
    // Names are exact: another spelling is another (absent) application.
    assert_eq!(s.get_foreign_app_by_name(a.id, "ERP ").await.unwrap(), None);

    // A taken name conflicts and writes nothing.
    let before = foreign_events(s, a.id).await.len();
    let e = s.save_foreign_app(0, "ERP", &st).await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    assert_eq!(foreign_events(s, a.id).await.len(), before);

    // Unknown ids: nothing found, nothing written.
    let unknown = erp.id + 1000;
    assert_eq!(s.get_foreign_app(a.id, unknown).await.unwrap(), None);
    assert_eq!(s.save_foreign_app(unknown, "Ghost", &st).await.unwrap(), None);
    assert!(!s.delete_foreign_app(unknown, &st).await.unwrap());
    assert_eq!(s.get_foreign_app_by_name(a.id, "Ghost").await.unwrap(), None);
    assert_eq!(foreign_events(s, a.id).await.len(), before);

    // Another organization's id is invisible: not read, not renamed, not deleted; that
    // organization may have its own application of the same name.
    let sb = stamp(b.id);
    assert_eq!(s.get_foreign_app(b.id, erp.id).await.unwrap(), None);
    assert_eq!(s.get_foreign_app_by_name(b.id, "ERP").await.unwrap(), None);
    assert_eq!(s.save_foreign_app(erp.id, "Hijacked", &sb).await.unwrap(), None);
    assert!(!s.delete_foreign_app(erp.id, &sb).await.unwrap());
    let erp_b = new_app(s, "ERP", &sb).await;
    assert_ne!(erp_b.id, erp.id);
    assert_eq!(s.get_foreign_app(a.id, erp.id).await.unwrap(), Some(erp.clone()));
    assert!(
        foreign_events(s, b.id)
            .await
            .iter()
            .all(|e| e.aggregate_id == erp_b.uuid)
    );

    // Rename: id, uuid and creation stay; the update is stamped.
    let later = api_stamp(a.id, 60);
    let renamed = s.save_foreign_app(erp.id, "ERP 2", &later).await.unwrap().unwrap();
    assert_eq!(
        renamed,
        ForeignApp {
            name: "ERP 2".into(),
            updated_at: later.at,
            updated_by: later.author.clone(),
            ..erp.clone()
        }
    );
    assert_eq!(s.get_foreign_app_by_name(a.id, "ERP").await.unwrap(), None);
    assert_eq!(
        s.get_foreign_app_by_name(a.id, "ERP 2").await.unwrap(),
        Some(renamed.clone())
    );
    // Saving under its own name is no conflict; renaming onto another's name is.
    assert!(s.save_foreign_app(erp.id, "ERP 2", &later).await.unwrap().is_some());
    let crm = new_app(s, "CRM", &st).await;
    let e = s.save_foreign_app(crm.id, "ERP 2", &later).await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    assert_eq!(s.get_foreign_app(a.id, crm.id).await.unwrap(), Some(crm.clone()));

    // Delete cascades to the devices and their keys.
    let p1 = path("ERP 2", "dev", "");
    let p2 = path("ERP 2", "dev", "SN-1");
    let k1 = add(s, &p1, kw("id", "secret-app-1", "contact", 1), &st).await;
    let k2 = add(s, &p2, kw("id", "secret-app-2", "contact", 1), &st).await;
    let crm_key = add(s, &path("CRM", "dev", ""), kw("id", "secret-app-3", "contact", 1), &st).await;
    let d1 = device_at(s, a.id, &p1).await.unwrap();
    let d2 = device_at(s, a.id, &p2).await.unwrap();
    assert_eq!(
        s.list_foreign_devices(a.id, erp.id).await.unwrap(),
        vec![d1.clone(), d2.clone()]
    );
    assert!(s.delete_foreign_app(erp.id, &later).await.unwrap());
    assert_eq!(s.get_foreign_app(a.id, erp.id).await.unwrap(), None);
    assert_eq!(s.get_foreign_device(a.id, d1.id).await.unwrap(), None);
    assert_eq!(s.get_foreign_device(a.id, d2.id).await.unwrap(), None);
    assert_eq!(device_at(s, a.id, &p1).await, None);
    assert!(keys_of(s, a.id, d1.id).await.is_empty() && keys_of(s, a.id, d2.id).await.is_empty());
    let on_entity = s.foreign_keys_on_entity(a.id, "contact", 1, 100).await.unwrap();
    assert_eq!(on_entity, vec![("CRM".to_string(), "dev".to_string(), crm_key.clone())]);
    assert!(
        !s.delete_foreign_app(erp.id, &later).await.unwrap(),
        "twice: nothing left"
    );
    // Another organization's same-named application is untouched.
    assert_eq!(s.get_foreign_app(b.id, erp_b.id).await.unwrap(), Some(erp_b));

    // The application's own events, in order, with its names and counts.
    let evs = s.events_of(a.id, erp.uuid).await.unwrap();
    assert_eq!(
        types(&evs),
        [
            "ForeignAppCreated",
            "ForeignAppUpdated",
            "ForeignAppUpdated",
            "ForeignAppDeleted"
        ]
    );
    assert_eq!(evs.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(evs[0].data, json!({"foreignAppId": erp.id, "name": "ERP"}));
    assert_eq!(evs[0].actor, st.actor);
    assert_eq!(evs[0].at, st.at);
    assert_eq!(
        evs[1].data,
        json!({"foreignAppId": erp.id, "name": "ERP 2", "previousName": "ERP"})
    );
    assert_eq!((evs[1].actor.as_str(), evs[1].at), (later.actor.as_str(), later.at));
    assert_eq!(
        evs[3].data,
        json!({"foreignAppId": erp.id, "name": "ERP 2", "devices": 2, "keys": 2})
    );
    // The cascade deletes rows; the keys' own histories end with the application's event.
    assert_eq!(types(&s.events_of(a.id, k1.uuid).await.unwrap()), ["ForeignKeyCreated"]);
    assert_eq!(types(&s.events_of(a.id, k2.uuid).await.unwrap()), ["ForeignKeyCreated"]);
    assert!(s.events_of(b.id, erp.uuid).await.unwrap().is_empty());
    check_events(
        &foreign_events(s, a.id).await,
        &["secret-app-1", "secret-app-2", "secret-app-3"],
    );
}

pub(crate) async fn foreign_devices(fx: Fx) {
    let s = &fx.store;
    let a = seed_org(s, "acme").await;
    let b = seed_org(s, "beta").await;
    let st = stamp(a.id);

    // Adding by path creates the application and the device.
    let d1 = s
        .save_foreign_device("ERP", &by_path("dev", ""), None, false, &st)
        .await
        .unwrap()
        .unwrap();
    let erp = s.get_foreign_app_by_name(a.id, "ERP").await.unwrap().unwrap();
    assert_eq!(
        (d1.org_id, d1.app_id, d1.name.as_str(), d1.identifier.as_str()),
        (a.id, erp.id, "dev", "")
    );
    assert_eq!(
        (d1.owner_name.as_str(), d1.created_by.as_str(), d1.created_at),
        ("admin", "admin", t0())
    );
    assert_eq!((d1.updated_by.as_str(), d1.updated_at), ("admin", t0()));
    assert_eq!(
        types(&foreign_events(s, a.id).await),
        ["ForeignAppCreated", "ForeignDeviceCreated"]
    );
    // Adding it again answers it unchanged and writes nothing.
    let later = stamp_by(a.id, "other admin", 30);
    assert_eq!(
        s.save_foreign_device("ERP", &by_path("dev", ""), None, false, &later)
            .await
            .unwrap(),
        Some(d1.clone())
    );
    assert_eq!(foreign_events(s, a.id).await.len(), 2);
    // The same name with an identifier is another device.
    let d2 = s
        .save_foreign_device("ERP", &by_path("dev", "SN-1"), None, false, &st)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(d1.id, d2.id);

    // By path, by id, listed.
    assert_eq!(device_at(s, a.id, &path("ERP", "dev", "")).await, Some(d1.clone()));
    assert_eq!(device_at(s, a.id, &path("ERP", "dev", "SN-1")).await, Some(d2.clone()));
    assert_eq!(device_at(s, a.id, &path("ERP", "dev", "SN-2")).await, None);
    assert_eq!(device_at(s, a.id, &path("ERP", "DEV", "")).await, None);
    assert_eq!(device_at(s, a.id, &path("CRM", "dev", "")).await, None);
    assert_eq!(
        s.get_foreign_app_by_name(a.id, "CRM").await.unwrap(),
        None,
        "a get creates nothing"
    );
    assert_eq!(s.get_foreign_device(a.id, d2.id).await.unwrap(), Some(d2.clone()));
    assert_eq!(s.get_foreign_device(a.id, d2.id + 1000).await.unwrap(), None);
    assert_eq!(
        s.list_foreign_devices(a.id, erp.id).await.unwrap(),
        vec![d1.clone(), d2.clone()]
    );
    assert_eq!(s.list_foreign_devices(a.id, erp.id + 1000).await.unwrap(), vec![]);

    // Saving with touch stamps it (name kept without a rename).
    let touched = s
        .save_foreign_device("ERP", &by_path("dev", "SN-1"), None, true, &later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        touched,
        ForeignDevice {
            updated_at: later.at,
            updated_by: "other admin".into(),
            ..d2.clone()
        }
    );
    // Rename by path, then by id.
    let renamed = s
        .save_foreign_device("ERP", &by_path("dev", "SN-1"), Some(("dev 2", "SN-2")), true, &later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (renamed.id, renamed.name.as_str(), renamed.identifier.as_str()),
        (d2.id, "dev 2", "SN-2")
    );
    assert_eq!(device_at(s, a.id, &path("ERP", "dev", "SN-1")).await, None);
    assert_eq!(
        device_at(s, a.id, &path("ERP", "dev 2", "SN-2")).await,
        Some(renamed.clone())
    );
    let renamed = s
        .save_foreign_device("ERP", &DeviceTarget::Id(d2.id), Some(("dev 3", "")), true, &later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((renamed.name.as_str(), renamed.identifier.as_str()), ("dev 3", ""));
    assert_eq!((renamed.created_at, renamed.owner_name.as_str()), (t0(), "admin"));
    // Renaming onto another device's address conflicts and changes nothing.
    let n = foreign_events(s, a.id).await.len();
    let e = s
        .save_foreign_device("ERP", &DeviceTarget::Id(d2.id), Some(("dev", "")), true, &later)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    assert_eq!(s.get_foreign_device(a.id, d2.id).await.unwrap(), Some(renamed.clone()));
    // A device that the call would create and then rename onto a taken address: the
    // conflict takes the new device (and its event) back too.
    let e = s
        .save_foreign_device("ERP", &by_path("fresh", ""), Some(("dev", "")), true, &later)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    assert_eq!(device_at(s, a.id, &path("ERP", "fresh", "")).await, None);
    assert_eq!(foreign_events(s, a.id).await.len(), n);
    // Created with a carrier naming it otherwise: created, then renamed.
    let d4 = s
        .save_foreign_device("ERP", &by_path("d4", ""), Some(("d4 named", "X")), true, &later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d4.name.as_str(), d4.identifier.as_str()), ("d4 named", "X"));
    assert_eq!(
        types(&s.events_of(a.id, d4.uuid).await.unwrap()),
        ["ForeignDeviceCreated", "ForeignDeviceUpdated"]
    );

    // By id, the device must belong to the named application (of the organization).
    let crm = new_app(s, "CRM", &st).await;
    let n = foreign_events(s, a.id).await.len();
    for app in ["CRM", "Nowhere"] {
        assert_eq!(
            s.save_foreign_device(app, &DeviceTarget::Id(d1.id), Some(("x", "")), true, &later)
                .await
                .unwrap(),
            None
        );
        assert!(
            !s.delete_foreign_device(app, &DeviceTarget::Id(d1.id), &later)
                .await
                .unwrap()
        );
    }
    assert_eq!(s.get_foreign_app_by_name(a.id, "Nowhere").await.unwrap(), None);
    assert_eq!(s.list_foreign_devices(a.id, crm.id).await.unwrap(), vec![]);
    assert_eq!(foreign_events(s, a.id).await.len(), n);
    // Another organization, even with an application of that name, neither sees nor changes it.
    let sb = stamp(b.id);
    new_app(s, "ERP", &sb).await;
    assert_eq!(s.get_foreign_device(b.id, d1.id).await.unwrap(), None);
    assert_eq!(device_at(s, b.id, &path("ERP", "dev", "")).await, None);
    assert_eq!(s.list_foreign_devices(b.id, erp.id).await.unwrap(), vec![]);
    assert_eq!(
        s.save_foreign_device("ERP", &DeviceTarget::Id(d1.id), Some(("x", "")), true, &sb)
            .await
            .unwrap(),
        None
    );
    assert!(
        !s.delete_foreign_device("ERP", &DeviceTarget::Id(d1.id), &sb)
            .await
            .unwrap()
    );
    assert!(!s.delete_foreign_device("ERP", &by_path("dev", ""), &sb).await.unwrap());
    assert_eq!(s.get_foreign_device(a.id, d1.id).await.unwrap(), Some(d1.clone()));
    assert_eq!(foreign_events(s, a.id).await.len(), n);

    // Deleting a device deletes its keys, and only its keys.
    let p1 = path("ERP", "dev", "");
    add(s, &p1, kw("id", "secret-dev-1", "contact", 1), &st).await;
    add(s, &p1, kw("id", "secret-dev-2", "contact", 2), &st).await;
    let kept = add(
        s,
        &path("ERP", "dev 3", ""),
        kw("id", "secret-dev-3", "contact", 1),
        &st,
    )
    .await;
    assert!(
        !s.delete_foreign_device("ERP", &by_path("dev", "SN-9"), &st)
            .await
            .unwrap()
    );
    assert!(
        s.delete_foreign_device("ERP", &by_path("dev", ""), &later)
            .await
            .unwrap()
    );
    assert_eq!(s.get_foreign_device(a.id, d1.id).await.unwrap(), None);
    assert_eq!(device_at(s, a.id, &p1).await, None);
    assert!(keys_of(s, a.id, d1.id).await.is_empty());
    assert_eq!(ids(&keys_of(s, a.id, d2.id).await), [kept.id]);
    assert_eq!(s.foreign_keys_on_entity(a.id, "contact", 2, 100).await.unwrap(), vec![]);
    assert!(
        !s.delete_foreign_device("ERP", &by_path("dev", ""), &later)
            .await
            .unwrap()
    );
    // By id, with its key.
    assert!(
        s.delete_foreign_device("ERP", &DeviceTarget::Id(d2.id), &later)
            .await
            .unwrap()
    );
    assert_eq!(s.get_foreign_device(a.id, d2.id).await.unwrap(), None);
    assert!(keys_of(s, a.id, d2.id).await.is_empty());
    assert!(
        s.get_foreign_app(a.id, erp.id).await.unwrap().is_some(),
        "the application stays"
    );

    let evs = s.events_of(a.id, d1.uuid).await.unwrap();
    assert_eq!(types(&evs), ["ForeignDeviceCreated", "ForeignDeviceDeleted"]);
    assert_eq!(
        evs[0].data,
        json!({"foreignDeviceId": d1.id, "foreignAppId": erp.id, "application": "ERP", "name": "dev",
               "deviceIdentifier": ""})
    );
    assert_eq!(evs[1].data["keys"], json!(2));
    let evs = s.events_of(a.id, d2.uuid).await.unwrap();
    assert_eq!(
        types(&evs),
        [
            "ForeignDeviceCreated",
            "ForeignDeviceUpdated",
            "ForeignDeviceUpdated",
            "ForeignDeviceUpdated",
            "ForeignDeviceDeleted"
        ]
    );
    assert_eq!(
        (&evs[2].data["previousName"], &evs[2].data["previousIdentifier"]),
        (&json!("dev"), &json!("SN-1"))
    );
    assert_eq!(
        (&evs[2].data["name"], &evs[2].data["deviceIdentifier"]),
        (&json!("dev 2"), &json!("SN-2"))
    );
    assert_eq!(evs[4].data["keys"], json!(1));
    check_events(
        &foreign_events(s, a.id).await,
        &["secret-dev-1", "secret-dev-2", "secret-dev-3"],
    );
}

pub(crate) async fn foreign_key_lists(fx: Fx) {
    let s = &fx.store;
    let a = seed_org(s, "acme").await;
    let st = stamp(a.id);
    let p = path("ERP", "dev", "");
    let k1 = add(s, &p, kw("id", "secret-1", "contact", 1), &st).await;
    let k2 = add(s, &p, kw("id", "secret-2", "contact", 2), &st).await;
    let k3 = add(s, &p, kw("id", "secret-3", "person", 1), &st).await;
    let k4 = add(s, &p, kw("other", "secret-4", "contact", 1), &st).await;
    let k5 = add(s, &p, kw("", "secret-5", "", 0), &st).await;
    // Another device of the application, and another application, on the same record.
    let k6 = add(s, &path("ERP", "dev", "SN-1"), kw("id", "secret-6", "contact", 1), &st).await;
    let k7 = add(s, &path("CRM", "phone", ""), kw("id", "secret-7", "contact", 1), &st).await;
    let d = device_at(s, a.id, &p).await.unwrap();
    let erp = s.get_foreign_app_by_name(a.id, "ERP").await.unwrap().unwrap();

    assert_eq!(
        (k1.org_id, k1.device_id, k1.key_name.as_str(), k1.value.as_str()),
        (a.id, d.id, "id", "secret-1")
    );
    assert_eq!((k1.table_name.as_str(), k1.record_id), ("contact", 1));
    assert_eq!((k1.created_at, k1.created_by.as_str()), (t0(), "admin"));
    assert_eq!((k1.updated_at, k1.updated_by.as_str()), (t0(), "admin"));

    // None is any; names are exact ('' is a name); oldest first; at most `limit`.
    let (org, dev) = (a.id, d.id);
    let list = |f: KeyFilter, limit: u32| {
        let s = s.clone();
        async move { ids(&s.list_foreign_keys(org, dev, &f, limit).await.unwrap()) }
    };
    assert_eq!(
        keys_of(s, a.id, d.id).await,
        vec![k1.clone(), k2.clone(), k3.clone(), k4.clone(), k5.clone()]
    );
    assert_eq!(list(filter(Some("id"), None, None), 100).await, [k1.id, k2.id, k3.id]);
    assert_eq!(list(filter(Some(""), None, None), 100).await, [k5.id]);
    assert_eq!(list(filter(Some("ID"), None, None), 100).await, [] as [i64; 0]);
    assert_eq!(
        list(filter(None, Some("contact"), None), 100).await,
        [k1.id, k2.id, k4.id]
    );
    assert_eq!(list(filter(None, Some(""), None), 100).await, [k5.id]);
    assert_eq!(list(filter(None, None, Some(1)), 100).await, [k1.id, k3.id, k4.id]);
    assert_eq!(list(filter(None, None, Some(0)), 100).await, [k5.id]);
    assert_eq!(
        list(filter(Some("id"), Some("contact"), None), 100).await,
        [k1.id, k2.id]
    );
    assert_eq!(list(filter(Some("id"), None, Some(1)), 100).await, [k1.id, k3.id]);
    assert_eq!(list(filter(Some("id"), Some("contact"), Some(1)), 100).await, [k1.id]);
    assert_eq!(
        list(filter(Some("id"), Some("person"), Some(2)), 100).await,
        [] as [i64; 0]
    );
    assert_eq!(list(ANY, 2).await, [k1.id, k2.id]);
    assert_eq!(list(filter(Some("id"), None, None), 1).await, [k1.id]);
    assert!(keys_of(s, a.id, d.id + 1000).await.is_empty());

    // The application's keys: every device's, oldest first, at most `limit`.
    let app_keys = s.list_app_foreign_keys(a.id, erp.id, 100).await.unwrap();
    assert_eq!(ids(&app_keys), [k1.id, k2.id, k3.id, k4.id, k5.id, k6.id]);
    assert_eq!(app_keys[5], k6);
    assert_eq!(
        ids(&s.list_app_foreign_keys(a.id, erp.id, 3).await.unwrap()),
        [k1.id, k2.id, k3.id]
    );
    assert!(
        s.list_app_foreign_keys(a.id, erp.id + 1000, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // On an entity: every application's and device's keys on that record, with their names.
    let on = s.foreign_keys_on_entity(a.id, "contact", 1, 100).await.unwrap();
    let named: Vec<(&str, &str, i64)> = on.iter().map(|(a, d, k)| (a.as_str(), d.as_str(), k.id)).collect();
    assert_eq!(
        named,
        [
            ("ERP", "dev", k1.id),
            ("ERP", "dev", k4.id),
            ("ERP", "dev", k6.id),
            ("CRM", "phone", k7.id)
        ]
    );
    assert_eq!(on[3].2, k7);
    assert_eq!(s.foreign_keys_on_entity(a.id, "contact", 1, 2).await.unwrap().len(), 2);
    assert_eq!(
        ids(s
            .foreign_keys_on_entity(a.id, "person", 1, 100)
            .await
            .unwrap()
            .iter()
            .map(|t| &t.2)),
        [k3.id]
    );
    assert!(
        s.foreign_keys_on_entity(a.id, "Contact", 1, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.foreign_keys_on_entity(a.id, "contact", 3, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // Save on a taken address updates the value (and the stamp), keeping the key's identity.
    let later = api_stamp(a.id, 90);
    let saved = s
        .save_foreign_key(&p, &kw("id", "secret-1b", "contact", 1), KeyMode::Save, &later)
        .await
        .unwrap();
    assert_eq!(
        saved,
        ForeignKey {
            value: "secret-1b".into(),
            updated_at: later.at,
            updated_by: "integration key".into(),
            ..k1.clone()
        }
    );
    // Save on a free address creates the key.
    let k8 = s
        .save_foreign_key(&p, &kw("id", "secret-8", "contact", 3), KeyMode::Save, &later)
        .await
        .unwrap();
    assert!(k8.id > k7.id);
    assert_eq!((k8.created_at, k8.created_by.as_str()), (later.at, "integration key"));
    // Add on a taken address conflicts: nothing changes, nothing is appended.
    let n = foreign_events(s, a.id).await.len();
    for taken in [&p, &path("CRM", "phone", "")] {
        let e = s
            .save_foreign_key(taken, &kw("id", "secret-9", "contact", 1), KeyMode::Add, &later)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    }
    assert_eq!(foreign_events(s, a.id).await.len(), n);
    assert_eq!(keys_of(s, a.id, d.id).await[0], saved);
    assert_eq!(s.list_foreign_devices(a.id, erp.id).await.unwrap().len(), 2);

    let evs = s.events_of(a.id, k1.uuid).await.unwrap();
    assert_eq!(types(&evs), ["ForeignKeyCreated", "ForeignKeyUpdated"]);
    assert_eq!(
        evs[0].data,
        json!({"application": "ERP", "device": "dev", "deviceIdentifier": "", "foreignDeviceId": d.id,
               "key": "id", "tableName": "contact", "recordId": 1})
    );
    assert_eq!(evs[1].actor, later.actor);
    check_events(
        &foreign_events(s, a.id).await,
        &[
            "secret-1", "secret-2", "secret-3", "secret-4", "secret-5", "secret-6", "secret-7", "secret-8", "secret-9",
        ],
    );
}

pub(crate) async fn foreign_key_by_value(fx: Fx) {
    let s = &fx.store;
    let a = seed_org(s, "acme").await;
    let st = stamp(a.id);
    let p = path("ERP", "dev", "");
    let k1 = add(s, &p, kw("id", "v-1", "contact", 1), &st).await;
    let k2 = add(s, &p, kw("id", "shared", "contact", 2), &st).await;
    let k3 = add(s, &p, kw("id", "shared", "person", 3), &st).await;
    let k4 = add(s, &p, kw("other", "v-1", "contact", 4), &st).await;
    let other = add(s, &path("ERP", "dev", "SN-1"), kw("id", "elsewhere", "contact", 1), &st).await;
    let d = device_at(s, a.id, &p).await.unwrap();
    let (org, dev) = (a.id, d.id);
    let by = |name: &'static str, value: String, table: Option<&'static str>| {
        let s = s.clone();
        async move {
            s.get_foreign_key_by_value(org, dev, name, &value, table)
                .await
                .unwrap()
                .map(|k| k.id)
        }
    };
    assert_eq!(by("id", "v-1".into(), None).await, Some(k1.id));
    assert_eq!(
        s.get_foreign_key_by_value(a.id, d.id, "id", "v-1", None).await.unwrap(),
        Some(k1.clone())
    );
    assert_eq!(by("other", "v-1".into(), None).await, Some(k4.id));
    // The table narrows; without it the oldest key with that value wins.
    assert_eq!(by("id", "v-1".into(), Some("contact")).await, Some(k1.id));
    assert_eq!(by("id", "v-1".into(), Some("person")).await, None);
    assert_eq!(by("id", "shared".into(), None).await, Some(k2.id));
    assert_eq!(by("id", "shared".into(), Some("person")).await, Some(k3.id));
    // Exact: no case folding, no trimming, no prefix, no other key name, no other device.
    for miss in ["V-1", "v-1 ", " v-1", "v-", "v-10", ""] {
        assert_eq!(by("id", miss.into(), None).await, None, "{miss:?}");
    }
    assert_eq!(by("ID", "v-1".into(), None).await, None);
    assert_eq!(by("id", "elsewhere".into(), None).await, None);
    assert_eq!(
        s.get_foreign_key_by_value(a.id, other.device_id, "id", "elsewhere", None)
            .await
            .unwrap(),
        Some(other.clone())
    );
    assert_eq!(
        s.get_foreign_key_by_value(a.id, d.id + 1000, "id", "v-1", None)
            .await
            .unwrap(),
        None
    );

    // Byte for byte: a value that differs only by Unicode normalization is another value.
    let nfc = "Caf\u{e9} \u{212b}ngstr\u{f6}m"; // é, Å (ANGSTROM SIGN), ö precomposed
    let nfd = "Cafe\u{301} A\u{30a}ngstro\u{308}m";
    let k_nfc = add(s, &p, kw("name", nfc, "contact", 5), &st).await;
    assert_eq!(by("name", nfc.into(), None).await, Some(k_nfc.id));
    assert_eq!(by("name", nfd.into(), None).await, None);
    assert_eq!(
        by("name", "Caf\u{e9} \u{c5}ngstr\u{f6}m".into(), None).await,
        None,
        "NFC of the sign"
    );
    let k_nfd = add(s, &p, kw("name", nfd, "contact", 6), &st).await;
    assert_eq!(by("name", nfd.into(), None).await, Some(k_nfd.id));
    assert_eq!(by("name", nfc.into(), None).await, Some(k_nfc.id));
    // Whitespace and control characters the wires carry come back as they went in.
    let odd = "\ttab\r\nnew line  \u{a0}\u{200b}end ";
    let k_odd = add(s, &p, kw("odd", odd, "contact", 7), &st).await;
    assert_eq!(by("odd", odd.into(), None).await, Some(k_odd.id));
    assert_eq!(by("odd", odd.trim().into(), None).await, None);
    assert_eq!(keys_of(s, a.id, d.id).await.last().unwrap().value, odd);

    // 4,000 characters of 4 bytes each (16,000 bytes): stored, found, and told apart from a
    // value that differs in its last character only (the index holds the digest, not the value).
    let long = "\u{1f980}".repeat(4000);
    let mut near = "\u{1f980}".repeat(3999);
    near.push('\u{1f40d}');
    let k_long = add(s, &p, kw("long", &long, "contact", 8), &st).await;
    assert_eq!(k_long.value, long);
    assert_eq!(by("long", long.clone(), None).await, Some(k_long.id));
    assert_eq!(by("long", near.clone(), None).await, None);
    let k_near = add(s, &p, kw("long", &near, "contact", 9), &st).await;
    assert_eq!(by("long", near.clone(), None).await, Some(k_near.id));
    let got = s
        .get_foreign_key_by_value(a.id, d.id, "long", &long, Some("contact"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.value.chars().count(), 4000);
    assert_eq!(got.value.len(), 16_000);
    assert_eq!(got, k_long);

    // A saved value is found by its new value only.
    let later = stamp_by(a.id, "admin", 5);
    s.save_foreign_key(&p, &kw("id", "v-1-new", "contact", 1), KeyMode::Save, &later)
        .await
        .unwrap();
    assert_eq!(by("id", "v-1".into(), None).await, None);
    assert_eq!(by("id", "v-1-new".into(), None).await, Some(k1.id));

    check_events(
        &foreign_events(s, a.id).await,
        &["v-1", "shared", "elsewhere", nfc, nfd, odd, "\u{1f980}", "\u{1f40d}"],
    );
}

pub(crate) async fn foreign_key_deletes(fx: Fx) {
    let s = &fx.store;
    let a = seed_org(s, "acme").await;
    let st = stamp(a.id);
    let p = path("ERP", "dev", "SN-1");
    let seed = |s: SharedStore| {
        let st = st.clone();
        let p = p.clone();
        async move {
            let mut out = vec![];
            for (k, t, r) in [
                ("id", "contact", 1),
                ("id", "contact", 2),
                ("id", "person", 1),
                ("other", "contact", 1),
                ("", "", 0),
            ] {
                let k = kw(k, &format!("secret-{k}-{t}-{r}"), t, r);
                out.push(s.save_foreign_key(&p, &k, KeyMode::Save, &st).await.unwrap());
            }
            out
        }
    };
    let keys = seed(s.clone()).await;
    // The same key on another device (same name, no identifier) and another application.
    let elsewhere = [
        add(
            s,
            &path("ERP", "dev", ""),
            kw("id", "secret-elsewhere-1", "contact", 1),
            &st,
        )
        .await,
        add(
            s,
            &path("CRM", "dev", "SN-1"),
            kw("id", "secret-elsewhere-2", "contact", 1),
            &st,
        )
        .await,
    ];
    let d = device_at(s, a.id, &p).await.unwrap();
    let (org, dev) = (a.id, d.id);
    let remaining = |s: SharedStore| async move { ids(&keys_of(&s, org, dev).await) };
    let del = |f: KeyFilter| {
        let s = s.clone();
        let st = stamp_by(org, "admin", 10);
        let p = p.clone();
        async move { s.delete_foreign_keys(&p, &f, &st).await.unwrap() }
    };

    // Exact address.
    assert_eq!(del(filter(Some("id"), Some("contact"), Some(1))).await, 1);
    assert_eq!(
        remaining(s.clone()).await,
        [keys[1].id, keys[2].id, keys[3].id, keys[4].id]
    );
    assert_eq!(del(filter(Some("id"), Some("contact"), Some(1))).await, 0, "twice");
    // Record 0 (None) = every record of the table; a blank table (None) = every table.
    assert_eq!(del(filter(Some("id"), Some("contact"), None)).await, 1);
    assert_eq!(del(filter(Some("id"), None, None)).await, 1);
    assert_eq!(remaining(s.clone()).await, [keys[3].id, keys[4].id]);
    // The key name is exact: '' deletes the key named '' only.
    assert_eq!(del(filter(Some("ID"), None, None)).await, 0);
    assert_eq!(del(filter(Some(""), None, None)).await, 1);
    assert_eq!(remaining(s.clone()).await, [keys[3].id]);
    // All filters absent: the device's every key (the seed saved the one left, and added four).
    let again = seed(s.clone()).await;
    assert_eq!(again[3].id, keys[3].id);
    assert_eq!(del(ANY).await, 5);
    assert!(remaining(s.clone()).await.is_empty());
    // Record filter without a table.
    let third = seed(s.clone()).await;
    assert_eq!(del(filter(None, None, Some(1))).await, 3);
    assert_eq!(remaining(s.clone()).await, [third[1].id, third[4].id]);
    // The other devices' keys were never touched.
    for k in &elsewhere {
        assert_eq!(keys_of(s, a.id, k.device_id).await, vec![k.clone()]);
    }
    // No such device or application: nothing deleted, nothing created.
    let n = foreign_events(s, a.id).await.len();
    for missing in [path("ERP", "dev", "SN-2"), path("Nowhere", "dev", "")] {
        assert_eq!(s.delete_foreign_keys(&missing, &ANY, &st).await.unwrap(), 0);
    }
    assert_eq!(s.get_foreign_app_by_name(a.id, "Nowhere").await.unwrap(), None);
    assert_eq!(device_at(s, a.id, &path("ERP", "dev", "SN-2")).await, None);
    assert_eq!(foreign_events(s, a.id).await.len(), n);

    // Each deleted key has its own event, with its address and no value.
    let evs = s.events_of(a.id, keys[2].uuid).await.unwrap();
    assert_eq!(types(&evs), ["ForeignKeyCreated", "ForeignKeyDeleted"]);
    assert_eq!(
        evs[1].data,
        json!({"application": "ERP", "device": "dev", "deviceIdentifier": "SN-1", "foreignDeviceId": d.id,
               "key": "id", "tableName": "person", "recordId": 1})
    );
    assert_eq!(evs[1].at, t0() + Duration::seconds(10));
    let deleted = foreign_events(s, a.id)
        .await
        .into_iter()
        .filter(|e| e.event_type == "ForeignKeyDeleted")
        .count();
    assert_eq!(deleted, 4 + 5 + 3);
    assert!(again.iter().all(|k| k.device_id == d.id));
    check_events(&foreign_events(s, a.id).await, &["secret-"]);
}

/// Organization B never sees or changes organization A's rows, by any method: not by id, not by
/// name, not by value, not on an entity, not in the event feed.
pub(crate) async fn foreign_tenancy(fx: Fx) {
    let s = &fx.store;
    let a = seed_org(s, "acme").await;
    let b = seed_org(s, "beta").await;
    let (sa, sb) = (stamp(a.id), stamp(b.id));
    let p = path("ERP", "dev", "SN-1");
    let ka = add(s, &p, kw("id", "secret-of-a", "contact", 1), &sa).await;
    let app_a = s.get_foreign_app_by_name(a.id, "ERP").await.unwrap().unwrap();
    let dev_a = device_at(s, a.id, &p).await.unwrap();
    let events_a = s.list_events(a.id, 0, 10_000).await.unwrap();

    // B before it has anything of its own.
    assert_eq!(s.get_foreign_app(b.id, app_a.id).await.unwrap(), None);
    assert_eq!(s.get_foreign_app_by_name(b.id, "ERP").await.unwrap(), None);
    assert_eq!(s.list_foreign_devices(b.id, app_a.id).await.unwrap(), vec![]);
    assert_eq!(s.get_foreign_device(b.id, dev_a.id).await.unwrap(), None);
    assert_eq!(device_at(s, b.id, &p).await, None);
    assert!(keys_of(s, b.id, dev_a.id).await.is_empty());
    assert!(
        s.list_foreign_keys(b.id, dev_a.id, &filter(Some("id"), Some("contact"), Some(1)), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.list_app_foreign_keys(b.id, app_a.id, 10).await.unwrap().is_empty());
    assert_eq!(
        s.get_foreign_key_by_value(b.id, dev_a.id, "id", "secret-of-a", None)
            .await
            .unwrap(),
        None
    );
    assert!(
        s.foreign_keys_on_entity(b.id, "contact", 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // B's writes aimed at A's ids find nothing.
    assert_eq!(s.save_foreign_app(app_a.id, "Mine", &sb).await.unwrap(), None);
    assert!(!s.delete_foreign_app(app_a.id, &sb).await.unwrap());
    assert_eq!(
        s.save_foreign_device("ERP", &DeviceTarget::Id(dev_a.id), None, true, &sb)
            .await
            .unwrap(),
        None
    );
    assert!(
        !s.delete_foreign_device("ERP", &DeviceTarget::Id(dev_a.id), &sb)
            .await
            .unwrap()
    );
    assert!(
        !s.delete_foreign_device("ERP", &by_path("dev", "SN-1"), &sb)
            .await
            .unwrap()
    );
    assert_eq!(s.delete_foreign_keys(&p, &ANY, &sb).await.unwrap(), 0);

    // B's writes by the same names make B's own rows (Add is no conflict across organizations).
    let kb = add(s, &p, kw("id", "secret-of-b", "contact", 1), &sb).await;
    let app_b = s.get_foreign_app_by_name(b.id, "ERP").await.unwrap().unwrap();
    let dev_b = device_at(s, b.id, &p).await.unwrap();
    assert_ne!((app_b.id, dev_b.id, kb.id), (app_a.id, dev_a.id, ka.id));
    assert_eq!(kb.org_id, b.id);
    // Every read by B answers B's rows only.
    assert_eq!(
        s.list_foreign_devices(b.id, app_b.id).await.unwrap(),
        vec![dev_b.clone()]
    );
    assert_eq!(s.list_foreign_devices(b.id, app_a.id).await.unwrap(), vec![]);
    assert_eq!(keys_of(s, b.id, dev_b.id).await, vec![kb.clone()]);
    assert_eq!(
        ids(&s.list_app_foreign_keys(b.id, app_b.id, 10).await.unwrap()),
        [kb.id]
    );
    assert_eq!(
        s.get_foreign_key_by_value(b.id, dev_b.id, "id", "secret-of-a", None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.get_foreign_key_by_value(b.id, dev_b.id, "id", "secret-of-b", None)
            .await
            .unwrap(),
        Some(kb.clone())
    );
    let on_b = s.foreign_keys_on_entity(b.id, "contact", 1, 10).await.unwrap();
    assert_eq!(on_b, vec![("ERP".to_string(), "dev".to_string(), kb.clone())]);
    let on_a = s.foreign_keys_on_entity(a.id, "contact", 1, 10).await.unwrap();
    assert_eq!(on_a, vec![("ERP".to_string(), "dev".to_string(), ka.clone())]);
    // B's save, rename and deletes by name touch B's rows only.
    let later = stamp_by(b.id, "admin", 5);
    s.save_foreign_key(&p, &kw("id", "secret-of-b-2", "contact", 1), KeyMode::Save, &later)
        .await
        .unwrap();
    s.save_foreign_device("ERP", &by_path("dev", "SN-1"), Some(("dev b", "SN-1")), true, &later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(device_at(s, a.id, &p).await, Some(dev_a.clone()));
    assert_eq!(
        s.save_foreign_app(app_b.id, "ERP b", &later).await.unwrap().unwrap().id,
        app_b.id
    );
    assert_eq!(s.get_foreign_app(a.id, app_a.id).await.unwrap(), Some(app_a.clone()));
    assert_eq!(
        s.delete_foreign_keys(&path("ERP b", "dev b", "SN-1"), &ANY, &later)
            .await
            .unwrap(),
        1
    );
    assert!(s.delete_foreign_app(app_b.id, &later).await.unwrap());
    // A is exactly as it was: its rows and its event feed.
    assert_eq!(keys_of(s, a.id, dev_a.id).await, vec![ka.clone()]);
    assert_eq!(
        s.list_foreign_devices(a.id, app_a.id).await.unwrap(),
        vec![dev_a.clone()]
    );
    let after = s.list_events(a.id, 0, 10_000).await.unwrap();
    assert_eq!(
        after.iter().map(|e| e.seq).collect::<Vec<_>>(),
        events_a.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
    // B's feed holds B's aggregates only; A's aggregates are invisible through B.
    let feed_b = foreign_events(s, b.id).await;
    let mine = [app_b.uuid, dev_b.uuid, kb.uuid];
    assert!(feed_b.iter().all(|e| mine.contains(&e.aggregate_id)), "{feed_b:?}");
    assert_eq!(
        types(&feed_b),
        [
            "ForeignAppCreated",
            "ForeignDeviceCreated",
            "ForeignKeyCreated",
            "ForeignKeyUpdated",
            "ForeignDeviceUpdated",
            "ForeignAppUpdated",
            "ForeignKeyDeleted",
            "ForeignAppDeleted"
        ]
    );
    for id in [app_a.uuid, dev_a.uuid, ka.uuid] {
        assert!(s.events_of(b.id, id).await.unwrap().is_empty());
        assert_eq!(s.events_of(a.id, id).await.unwrap().len(), 1);
    }
    check_events(&feed_b, &["secret-of-a", "secret-of-b"]);
    check_events(&foreign_events(s, a.id).await, &["secret-of-a", "secret-of-b"]);
}
