//! The ForeignSystem agent over REST (seed 002). See tests/api/foreign_soap.rs for SOAP.
//!
//! Every test starts the real server and talks HTTP to it. "Nothing changed" is checked against
//! the organization's event feed (every mapping write appends an event) and by looking the
//! mappings up again.

use crate::common::*;
use crate::pg;
use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const AGENT: &str = "/api/v1/Agents/ForeignSystem";
const INVALID: &str = "The request is invalid.";
const NOT_ADMIN: &str = "only an administrator may change the foreign system mappings";
const DATACONTRACT_NS: &str = "http://schemas.datacontract.org/2004/07/SuperOffice.CRM.Services";

/// The agent's 30 methods.
const METHODS: [&str; 30] = [
    "CreateDefaultForeignAppEntity",
    "SaveForeignAppEntity",
    "DeleteForeignAppEntity",
    "GetForeignAppEntity",
    "GetAppByName",
    "GetApplicationDevices",
    "GetDeviceByName",
    "GetDeviceByIdentifier",
    "AddDeviceByIdentifier",
    "SaveDeviceByIdentifier",
    "DeleteDeviceByIdentifier",
    "GetForeignDevice",
    "SaveForeignDevice",
    "DeleteForeignDevice",
    "GetKey",
    "GetKeyValue",
    "GetKeyOnDeviceIdentifier",
    "GetKeyValueOnDeviceIdentifier",
    "AddForeignKey",
    "SaveForeignKey",
    "DeleteForeignKeyOnName",
    "DeleteForeignKey",
    "GetKeyByValue",
    "GetKeyByValueAndIdentifier",
    "GetAllForeignKeysOnEntity",
    "GetDeviceKeys",
    "GetApplicationKeys",
    "GetDeviceKeysOnDeviceIdentifier",
    "GetDeviceKeysOnDeviceIdentifierTable",
    "GetDeviceKeysOnDeviceIdentifierTableRecordId",
];

// ---------------------------------------------------------------------------------------------
// The kit.

/// Who calls.
#[derive(Clone, Debug)]
enum Who {
    /// An organization API key (X-API-Key).
    Key(String),
    /// A user by HTTP Basic.
    Basic(String, String),
    /// A personal access key.
    Personal(String),
}

impl Who {
    fn apply(&self, r: RequestBuilder) -> RequestBuilder {
        match self {
            Who::Key(k) => r.header("X-API-Key", k),
            Who::Basic(u, p) => r.basic_auth(u, Some(p)),
            Who::Personal(k) => r.header("Authorization", format!("PersonalKey {k}")),
        }
    }
}

/// An organization with its API key and an administrator user.
struct Org {
    key: String,
    api: Who,
    admin: Who,
    admin_name: String,
}

async fn org(s: &Server, name: &str) -> Org {
    let (_, key) = s.create_org(name).await;
    let user = format!("{name}-admin");
    let password = format!("{name}-admin-password");
    s.create_user(&key, &user, &password, true).await;
    Org {
        api: Who::Key(key.clone()),
        key,
        admin: Who::Basic(user.clone(), password),
        admin_name: user,
    }
}

struct Resp {
    status: u16,
    content_type: String,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("status {}, not JSON ({e}): {}", self.status, self.text))
    }
}

/// Send; no answer of the agent may be a server error.
async fn send(r: RequestBuilder) -> Resp {
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = r.text().await.unwrap();
    assert!(status < 500, "status {status}: {text}");
    Resp {
        status,
        content_type,
        text,
    }
}

/// `POST /api/v1/Agents/ForeignSystem/<method>` (method may carry a query string).
fn post(s: &Server, who: &Who, method: &str) -> RequestBuilder {
    who.apply(s.req(Method::POST, &format!("{AGENT}/{method}")))
}

async fn call(s: &Server, who: &Who, method: &str, body: Value) -> Resp {
    send(post(s, who, method).json(&body)).await
}

/// A 200 answer's JSON.
async fn ok(s: &Server, who: &Who, method: &str, body: Value) -> Value {
    let r = call(s, who, method, body).await;
    assert_eq!(r.status, 200, "{method}: {}", r.text);
    assert_eq!(r.content_type, "application/json; charset=utf-8", "{method}");
    r.json()
}

/// A 204 answer.
async fn void(s: &Server, who: &Who, method: &str, body: Value) {
    let r = call(s, who, method, body).await;
    assert_eq!(r.status, 204, "{method}: {}", r.text);
    assert!(r.text.is_empty(), "{method}: {}", r.text);
}

/// A 400 in the agent's shape: its MessageDetail.
fn invalid_detail(method: &str, r: &Resp) -> String {
    assert_eq!(r.status, 400, "{method}: {}", r.text);
    let v = r.json();
    assert_eq!(v["Message"], INVALID, "{method}: {v}");
    v["MessageDetail"]
        .as_str()
        .unwrap_or_else(|| panic!("{method}: no MessageDetail: {v}"))
        .to_string()
}

async fn invalid(s: &Server, who: &Who, method: &str, body: Value) -> String {
    let r = call(s, who, method, body).await;
    invalid_detail(method, &r)
}

/// A refusal in the agent's exception shape.
fn exception(method: &str, r: &Resp, status: u16, error_type: &str) -> Value {
    assert_eq!(r.status, status, "{method}: {}", r.text);
    let v = r.json();
    assert_eq!(v["Error"], true, "{method}: {v}");
    assert_eq!(v["ErrorType"], error_type, "{method}: {v}");
    assert!(
        v["ErrorSource"].as_str().unwrap().starts_with("ForeignSystem."),
        "{method}: {v}"
    );
    assert!(!v["ErrorMessage"].as_str().unwrap().is_empty(), "{method}: {v}");
    v
}

async fn refused(s: &Server, who: &Who, method: &str, body: Value, status: u16, error_type: &str) -> Value {
    let r = call(s, who, method, body).await;
    exception(method, &r, status, error_type)
}

/// A device address.
#[derive(Clone, Copy)]
struct At<'a> {
    app: &'a str,
    device: &'a str,
    ident: &'a str,
}

fn at<'a>(app: &'a str, device: &'a str, ident: &'a str) -> At<'a> {
    At { app, device, ident }
}

impl At<'_> {
    /// As the by-identifier methods take it.
    fn ident(&self) -> Value {
        json!({"ApplicationName": self.app, "DeviceName": self.device, "DeviceIdentifier": self.ident})
    }

    /// As the by-name methods take it (no identifier).
    fn named(&self) -> Value {
        json!({"ApplicationName": self.app, "DeviceName": self.device})
    }
}

/// `a` with `b`'s members added.
fn with(mut a: Value, b: Value) -> Value {
    if let (Value::Object(a), Value::Object(b)) = (&mut a, b) {
        a.extend(b);
    }
    a
}

/// A ForeignKey carrier.
fn fk(key: &str, value: &str, table: &str, record: i64) -> Value {
    json!({"Key": key, "Value": value, "TableName": table, "RecordId": record})
}

/// SaveForeignKey at a by-identifier address.
async fn save(s: &Server, who: &Who, at: At<'_>, key: Value) -> Value {
    let v = ok(
        s,
        who,
        "SaveForeignKey",
        with(at.ident(), json!({"ForeignKey": key.clone()})),
    )
    .await;
    assert_eq!(v["Key"], key["Key"]);
    assert_eq!(v["Value"], key["Value"]);
    v
}

/// GetKeyOnDeviceIdentifier: the key at one exact address, or null.
async fn get(s: &Server, who: &Who, at: At<'_>, key: &str, table: &str, record: i64) -> Value {
    ok(
        s,
        who,
        "GetKeyOnDeviceIdentifier",
        with(
            at.ident(),
            json!({"KeyName": key, "TableName": table, "RecordId": record}),
        ),
    )
    .await
}

/// The `field` of each carrier of a list answer.
fn field_of(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|k| {
            k[field]
                .as_str()
                .unwrap_or_else(|| panic!("no {field}: {k}"))
                .to_string()
        })
        .collect()
}

fn values(list: &Value) -> Vec<String> {
    field_of(list, "Value")
}

/// The whole event feed of an organization.
async fn events(s: &Server, key: &str) -> Vec<Value> {
    let mut out = vec![];
    let mut after = 0;
    loop {
        let r = s
            .req(Method::GET, &format!("/v1/events?after={after}&limit=500"))
            .header("X-API-Key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page = json(r).await;
        let items = page["items"].as_array().unwrap().clone();
        if items.is_empty() {
            return out;
        }
        after = page["next_cursor"].as_i64().unwrap();
        out.extend(items);
    }
}

/// The feed's ForeignSystem events.
async fn foreign_events(s: &Server, key: &str) -> Vec<Value> {
    events(s, key)
        .await
        .into_iter()
        .filter(|e| e["aggregate_type"].as_str().unwrap().starts_with("foreign_"))
        .collect()
}

fn types(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["type"].as_str().unwrap().to_string()).collect()
}

/// A date the server wrote: UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, and now (not a client's).
fn server_date(v: &Value) -> DateTime<Utc> {
    let t = v.as_str().unwrap_or_else(|| panic!("not a date: {v}"));
    assert!(
        t.len() == 27 && t.ends_with('Z') && t.as_bytes()[19] == b'.',
        "not YYYY-MM-DDTHH:MM:SS.ffffffZ: {t}"
    );
    let d = DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
    assert!(
        (Utc::now() - d).num_minutes().abs() < 10,
        "{t} is not the server's time"
    );
    d
}

/// A personal access key of a user (Basic), holding `scopes`.
async fn personal_key(s: &Server, user: &Who, scopes: &[&str]) -> Who {
    let valid_to = (Utc::now() + Duration::days(30)).to_rfc3339();
    let r = user
        .apply(s.req(Method::POST, "/api/v37/my/personalaccesskey"))
        .json(&json!({"name": "foreign", "validTo": valid_to, "scopes": scopes}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    Who::Personal(json(r).await["result"]["key"].as_str().unwrap().to_string())
}

// ---------------------------------------------------------------------------------------------
// 1. The seed.

/// Seed 002's sample request body, verbatim.
const SEED_BODY: &str = r#"{
  "ForeignKey": {
    "Key": "iste",
    "Value": "animi",
    "RecordId": 394,
    "CreatedDate": "2017-07-01T16:48:29.713924+02:00",
    "UpdatedDate": "2013-04-08T16:48:29.713924+02:00",
    "UpdatedBy": "commodi",
    "CreatedBy": "tempora",
    "TableName": "Kub, Balistreri and Carter"
  },
  "ApplicationName": "White Inc and Sons",
  "DeviceName": "Hintz-Schmidt",
  "DeviceIdentifier": "ut"
}"#;

#[tokio::test]
async fn the_seed_sample_saves_the_key_with_the_servers_dates_and_the_callers_name() {
    let s = Server::start().await;
    let (_, key) = s.create_org("seed").await;
    // The seed's `tje0:Tje0` is shorter than the password rule allows: the same user name with
    // a longer password.
    s.create_user(&key, "tje0", "Tje0-long-enough", true).await;
    let who = Who::Basic("tje0".into(), "Tje0-long-enough".into());
    let app = json!({"ApplicationName": "White Inc and Sons"});
    assert_eq!(ok(&s, &who, "GetAppByName", app.clone()).await, Value::Null);
    assert_eq!(ok(&s, &who, "GetApplicationKeys", app.clone()).await, json!([]));

    let r = send(
        post(&s, &who, "SaveForeignKey")
            .header("Accept", "application/json; charset=utf-8")
            .header("Accept-Language", "fr,de,ru,zh")
            .header("Content-Type", "application/json; charset=utf-8")
            .body(SEED_BODY),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.content_type, "application/json; charset=utf-8");
    let v = r.json();
    assert_eq!(v["Key"], "iste");
    assert_eq!(v["Value"], "animi");
    assert_eq!(v["RecordId"], 394);
    assert_eq!(v["TableName"], "Kub, Balistreri and Carter");
    // The dates and authors are the server's, not the client's.
    let created = server_date(&v["CreatedDate"]);
    assert_eq!(server_date(&v["UpdatedDate"]), created);
    assert_eq!(v["CreatedBy"], "tje0");
    assert_eq!(v["UpdatedBy"], "tje0");
    for client in ["2017-07-01", "2013-04-08", "tempora", "commodi"] {
        assert!(!r.text.contains(client), "{client} in {}", r.text);
    }
    assert_eq!(v["TableRight"], json!({"Mask": "FULL", "Reason": ""}));
    let fp = &v["FieldProperties"];
    assert_eq!(
        fp["Value"],
        json!({"FieldRight": {"Mask": "FULL", "Reason": ""}, "FieldType": "System.String", "FieldLength": 4000})
    );
    assert_eq!(fp["Key"]["FieldRight"]["Mask"], "FULL");
    assert_eq!(fp["Key"]["FieldLength"], 255);
    assert_eq!(fp["RecordId"]["FieldType"], "System.Int32");
    assert_eq!(fp["CreatedDate"]["FieldRight"]["Mask"], "Read, UIHintReadOnly");
    assert_eq!(fp["CreatedBy"]["FieldRight"]["Mask"], "Read, UIHintReadOnly");

    // The members in the carrier's order, and only those.
    let order = [
        "Key",
        "Value",
        "RecordId",
        "CreatedDate",
        "UpdatedDate",
        "UpdatedBy",
        "CreatedBy",
        "TableName",
        "TableRight",
        "FieldProperties",
    ];
    assert!(r.text.starts_with("{\"Key\":"), "{}", r.text);
    let pos: Vec<usize> = order
        .iter()
        .map(|m| r.text.find(&format!("\"{m}\":")).unwrap_or_else(|| panic!("no {m}")))
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}: {}", r.text);
    assert_eq!(v.as_object().unwrap().len(), order.len(), "{v}");

    // Stored on the device with the identifier "ut", created on the way.
    let ut = at_seed();
    let d = ok(&s, &who, "GetDeviceByIdentifier", ut.ident()).await;
    assert_eq!(d["Name"], "Hintz-Schmidt");
    assert_eq!(d["DeviceIdentifier"], "ut");
    assert_eq!(d["CreatedBy"], "tje0");
    assert_eq!(d["AssociateFullName"], "tje0");
    assert_eq!(ok(&s, &who, "GetDeviceByName", ut.named()).await, Value::Null);
    assert_eq!(get(&s, &who, ut, "iste", "Kub, Balistreri and Carter", 394).await, v);
    let a = ok(&s, &who, "GetAppByName", app).await;
    assert_eq!(a["Name"], "White Inc and Sons");
    assert_eq!(a["CreatedBy"]["UserName"], "tje0");
    assert_eq!(a["CreatedBy"]["Type"], "InternalAssociate");
}

fn at_seed() -> At<'static> {
    at("White Inc and Sons", "Hintz-Schmidt", "ut")
}

// ---------------------------------------------------------------------------------------------
// 2. Every method.

#[tokio::test]
async fn every_method_answers_over_rest() {
    let s = Server::start().await;
    let o = org(&s, "walk").await;
    let w = &o.api;
    let mut called = BTreeSet::new();
    let mut m = |name: &'static str| {
        called.insert(name);
        name
    };

    let d = ok(&s, w, m("CreateDefaultForeignAppEntity"), json!({})).await;
    assert_eq!(d["ForeignAppId"], 0);
    assert_eq!(d["Name"], "");
    assert_eq!(d["Devices"], json!([]));
    assert_eq!(d["CreatedBy"]["Name"], "default");
    assert_eq!(d["CreatedBy"]["Type"], "SystemAssociate");
    assert_eq!(d["TableRight"]["Mask"], "FULL");
    server_date(&d["CreatedDate"]);

    let app = ok(
        &s,
        w,
        m("SaveForeignAppEntity"),
        json!({"ForeignAppEntity": {"ForeignAppId": 0, "Name": "ERP"}}),
    )
    .await;
    let app_id = app["ForeignAppId"].as_i64().unwrap();
    assert!(app_id > 0, "{app}");
    assert_eq!(app["Name"], "ERP");
    assert_eq!(app["Devices"], json!([]));
    assert_eq!(app["UpdatedBy"]["UserName"], "default");
    let got = ok(
        &s,
        w,
        &format!("{}?foreignAppEntityId={app_id}", m("GetForeignAppEntity")),
        json!({}),
    )
    .await;
    assert_eq!(got["Name"], "ERP");
    assert_eq!(got["ForeignAppId"], app_id);
    let got = ok(
        &s,
        w,
        &format!("GetForeignAppEntity?ForeignAppEntityID={app_id}"),
        json!({}),
    )
    .await;
    assert_eq!(got["Name"], "ERP");
    let erp = json!({"ApplicationName": "ERP"});
    assert_eq!(ok(&s, w, m("GetAppByName"), erp.clone()).await["ForeignAppId"], app_id);
    // Method names are case-insensitive.
    assert_eq!(ok(&s, w, "getappbyname", erp.clone()).await["ForeignAppId"], app_id);

    let laptop = ok(
        &s,
        w,
        m("AddDeviceByIdentifier"),
        at("ERP", "laptop", "serial-1").ident(),
    )
    .await;
    let laptop_id = laptop["ForeignDeviceId"].as_i64().unwrap();
    assert!(laptop_id > 0);
    assert_eq!(laptop["Name"], "laptop");
    assert_eq!(laptop["DeviceIdentifier"], "serial-1");
    assert_eq!(laptop["ForeignAppId"], app_id);
    assert_eq!(laptop["AssociateFullName"], "default");
    // An existing device is answered as it is.
    assert_eq!(
        ok(&s, w, "AddDeviceByIdentifier", at("ERP", "laptop", "serial-1").ident()).await,
        laptop
    );
    let renamed = ok(
        &s,
        w,
        m("SaveDeviceByIdentifier"),
        with(
            at("ERP", "laptop", "serial-1").ident(),
            json!({"ForeignDevice": {"Name": "laptop2", "DeviceIdentifier": "serial-2"}}),
        ),
    )
    .await;
    assert_eq!(renamed["ForeignDeviceId"], laptop_id);
    assert_eq!(renamed["Name"], "laptop2");
    assert_eq!(renamed["DeviceIdentifier"], "serial-2");
    let laptop2 = at("ERP", "laptop2", "serial-2");
    assert_eq!(
        ok(&s, w, m("GetDeviceByIdentifier"), laptop2.ident()).await["ForeignDeviceId"],
        laptop_id
    );
    assert_eq!(
        ok(&s, w, "GetDeviceByIdentifier", at("ERP", "laptop", "serial-1").ident()).await,
        Value::Null
    );

    let desk0 = ok(
        &s,
        w,
        m("SaveForeignDevice"),
        json!({"ForeignDevice": {"ForeignDeviceId": 0, "Name": "desk0"}, "ApplicationName": "ERP"}),
    )
    .await;
    let desk_id = desk0["ForeignDeviceId"].as_i64().unwrap();
    assert_ne!(desk_id, laptop_id);
    assert_eq!(desk0["Name"], "desk0");
    assert_eq!(desk0["DeviceIdentifier"], "");
    // With its id: renamed.
    let desk = ok(
        &s,
        w,
        "SaveForeignDevice",
        json!({"ForeignDevice": {"ForeignDeviceId": desk_id, "Name": "desk", "DeviceIdentifier": ""}, "ApplicationName": "ERP"}),
    )
    .await;
    assert_eq!(desk["ForeignDeviceId"], desk_id);
    assert_eq!(desk["Name"], "desk");
    let desk_at = at("ERP", "desk", "");
    assert_eq!(
        ok(&s, w, m("GetDeviceByName"), desk_at.named()).await["ForeignDeviceId"],
        desk_id
    );
    let got = ok(
        &s,
        w,
        &format!("{}?foreignDeviceId={desk_id}", m("GetForeignDevice")),
        json!({}),
    )
    .await;
    assert_eq!(got["Name"], "desk");
    let got = ok(
        &s,
        w,
        &format!("GetForeignDevice?FOREIGNDEVICEID={laptop_id}"),
        json!({}),
    )
    .await;
    assert_eq!(got["Name"], "laptop2");
    let devices = ok(&s, w, m("GetApplicationDevices"), erp.clone()).await;
    assert_eq!(field_of(&devices, "Name"), ["laptop2", "desk"]);
    let a = ok(&s, w, "GetAppByName", erp.clone()).await;
    assert_eq!(field_of(&a["Devices"], "Name"), ["laptop2", "desk"]);

    let k1 = ok(
        &s,
        w,
        m("AddForeignKey"),
        with(desk_at.named(), json!({"ForeignKey": fk("id", "v-desk", "contact", 7)})),
    )
    .await;
    assert_eq!(
        (&k1["Key"], &k1["Value"], &k1["TableName"], &k1["RecordId"]),
        (&json!("id"), &json!("v-desk"), &json!("contact"), &json!(7))
    );
    assert_eq!(k1["CreatedBy"], "default");
    let k2 = ok(
        &s,
        w,
        m("SaveForeignKey"),
        with(
            laptop2.ident(),
            json!({"ForeignKey": fk("id", "v-laptop", "person", 8)}),
        ),
    )
    .await;
    assert_eq!(k2["Value"], "v-laptop");
    assert_eq!(k2["RecordId"], 8);

    let desk_key = with(
        desk_at.named(),
        json!({"KeyName": "id", "TableName": "contact", "RecordId": 7}),
    );
    assert_eq!(ok(&s, w, m("GetKey"), desk_key.clone()).await, k1);
    assert_eq!(ok(&s, w, m("GetKeyValue"), desk_key.clone()).await, json!("v-desk"));
    let laptop_key = with(
        laptop2.ident(),
        json!({"KeyName": "id", "TableName": "person", "RecordId": 8}),
    );
    assert_eq!(ok(&s, w, m("GetKeyOnDeviceIdentifier"), laptop_key.clone()).await, k2);
    assert_eq!(
        ok(&s, w, m("GetKeyValueOnDeviceIdentifier"), laptop_key.clone()).await,
        json!("v-laptop")
    );
    let by_value = ok(
        &s,
        w,
        m("GetKeyByValue"),
        with(desk_at.named(), json!({"KeyName": "id", "KeyValue": "v-desk"})),
    )
    .await;
    assert_eq!(by_value["RecordId"], 7);
    assert_eq!(
        ok(
            &s,
            w,
            "GetKeyByValue",
            with(
                desk_at.named(),
                json!({"KeyName": "id", "KeyValue": "v-desk", "TableName": "person"})
            ),
        )
        .await,
        Value::Null
    );
    let by_value = ok(
        &s,
        w,
        m("GetKeyByValueAndIdentifier"),
        with(
            laptop2.ident(),
            json!({"KeyName": "id", "KeyValue": "v-laptop", "TableName": "person"}),
        ),
    )
    .await;
    assert_eq!(by_value["RecordId"], 8);
    assert_eq!(
        ok(
            &s,
            w,
            m("GetAllForeignKeysOnEntity"),
            json!({"EntityType": "contact", "EntityId": 7})
        )
        .await,
        json!({"ERP.desk.id": "v-desk"})
    );
    assert_eq!(
        ok(
            &s,
            w,
            "GetAllForeignKeysOnEntity",
            json!({"EntityType": "person", "EntityId": 8})
        )
        .await,
        json!({"ERP.laptop2.id": "v-laptop"})
    );
    assert_eq!(
        values(&ok(&s, w, m("GetDeviceKeys"), desk_at.named()).await),
        ["v-desk"]
    );
    assert_eq!(
        values(&ok(&s, w, m("GetApplicationKeys"), erp.clone()).await),
        ["v-desk", "v-laptop"]
    );
    assert_eq!(
        values(&ok(&s, w, m("GetDeviceKeysOnDeviceIdentifier"), laptop2.ident()).await),
        ["v-laptop"]
    );
    let table = |t: &str| with(laptop2.ident(), json!({"TableName": t}));
    assert_eq!(
        values(&ok(&s, w, m("GetDeviceKeysOnDeviceIdentifierTable"), table("person")).await),
        ["v-laptop"]
    );
    assert_eq!(
        ok(&s, w, "GetDeviceKeysOnDeviceIdentifierTable", table("contact")).await,
        json!([])
    );
    let record = |r: i64| with(laptop2.ident(), json!({"TableName": "person", "RecordId": r}));
    assert_eq!(
        values(&ok(&s, w, m("GetDeviceKeysOnDeviceIdentifierTableRecordId"), record(8)).await),
        ["v-laptop"]
    );
    assert_eq!(
        ok(&s, w, "GetDeviceKeysOnDeviceIdentifierTableRecordId", record(9)).await,
        json!([])
    );

    void(&s, w, m("DeleteForeignKeyOnName"), desk_key.clone()).await;
    assert_eq!(ok(&s, w, "GetKey", desk_key).await, Value::Null);
    void(
        &s,
        w,
        m("DeleteForeignKey"),
        with(
            laptop2.ident(),
            json!({"ForeignKey": {"Key": "id"}, "TableName": "person", "RecordId": 8}),
        ),
    )
    .await;
    assert_eq!(
        ok(&s, w, "GetDeviceKeysOnDeviceIdentifier", laptop2.ident()).await,
        json!([])
    );
    void(
        &s,
        w,
        m("DeleteForeignDevice"),
        json!({"ForeignDevice": {"ForeignDeviceId": desk_id}, "ApplicationName": "ERP"}),
    )
    .await;
    assert_eq!(
        ok(&s, w, &format!("GetForeignDevice?foreignDeviceId={desk_id}"), json!({})).await,
        Value::Null
    );
    void(&s, w, m("DeleteDeviceByIdentifier"), laptop2.ident()).await;
    assert_eq!(ok(&s, w, "GetApplicationDevices", erp.clone()).await, json!([]));
    void(
        &s,
        w,
        &format!("{}?foreignAppEntityId={app_id}", m("DeleteForeignAppEntity")),
        json!({}),
    )
    .await;
    assert_eq!(ok(&s, w, "GetAppByName", erp).await, Value::Null);
    assert_eq!(
        ok(
            &s,
            w,
            &format!("GetForeignAppEntity?foreignAppEntityId={app_id}"),
            json!({})
        )
        .await,
        Value::Null
    );

    assert_eq!(called, METHODS.into_iter().collect::<BTreeSet<_>>());
}

#[tokio::test]
async fn query_string_ids_are_read_case_insensitively_from_the_query_only() {
    let s = Server::start().await;
    let o = org(&s, "query").await;
    let w = &o.api;
    let app = ok(
        &s,
        w,
        "SaveForeignAppEntity",
        json!({"ForeignAppEntity": {"Name": "ERP"}}),
    )
    .await;
    let id = app["ForeignAppId"].as_i64().unwrap();
    let dev = ok(&s, w, "AddDeviceByIdentifier", at("ERP", "d", "").ident()).await;
    let dev_id = dev["ForeignDeviceId"].as_i64().unwrap();
    for q in ["foreignAppEntityId", "ForeignAppEntityID", "FOREIGNAPPENTITYID"] {
        let got = ok(&s, w, &format!("GetForeignAppEntity?{q}={id}"), json!({})).await;
        assert_eq!(got["ForeignAppId"], id, "{q}");
        assert_eq!(field_of(&got["Devices"], "Name"), ["d"]);
    }
    for q in ["foreignDeviceId", "ForeignDeviceID"] {
        let got = ok(&s, w, &format!("GetForeignDevice?{q}={dev_id}"), json!({})).await;
        assert_eq!(got["ForeignDeviceId"], dev_id, "{q}");
    }
    let before = foreign_events(&s, &o.key).await;
    // Missing: 400, and a body cannot stand in for the query.
    for (method, field) in [
        ("GetForeignAppEntity", "ForeignAppEntityId"),
        ("DeleteForeignAppEntity", "ForeignAppEntityId"),
        ("GetForeignDevice", "ForeignDeviceId"),
    ] {
        let detail = invalid(&s, w, method, json!({})).await;
        assert_eq!(detail, format!("{field}: is required"), "{method}");
        let detail = invalid(&s, w, method, json!({field: id})).await;
        assert_eq!(detail, format!("{field}: is required"), "{method} with a body id");
        let detail = invalid(&s, w, &format!("{method}?{field}=abc"), json!({})).await;
        assert!(
            detail.starts_with(&format!("{field}: must be a whole number")),
            "{detail}"
        );
        let detail = invalid(&s, w, &format!("{method}?{field}=3000000000"), json!({})).await;
        assert!(
            detail.starts_with(&format!("{field}: must be a whole number")),
            "{detail}"
        );
    }
    assert_eq!(foreign_events(&s, &o.key).await, before);
    assert_eq!(
        ok(&s, w, "GetAppByName", json!({"ApplicationName": "ERP"})).await["ForeignAppId"],
        id
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Creating on the way.

/// A saving method, its body, and the device (name, identifier) it creates, if any.
type Creator = (&'static str, Value, Option<(&'static str, &'static str)>);

#[tokio::test]
async fn only_the_six_saving_methods_create_and_gets_and_deletes_create_nothing() {
    let s = Server::start().await;
    let o = org(&s, "creates").await;
    let w = &o.api;
    // One existing application with one device, so that a missing device under a present
    // application is tried too.
    save(&s, w, at("Keep", "kept", ""), fk("k", "v", "t", 1)).await;
    let keep_devices = ok(&s, w, "GetApplicationDevices", json!({"ApplicationName": "Keep"})).await;
    assert_eq!(keep_devices.as_array().unwrap().len(), 1);
    let before = foreign_events(&s, &o.key).await;

    for app in ["Ghost", "Keep"] {
        let g = at(app, "ghost", "");
        let gi = at(app, "ghost", "g-1");
        let key = json!({"KeyName": "k", "TableName": "t", "RecordId": 1});
        assert_eq!(ok(&s, w, "GetDeviceByName", g.named()).await, Value::Null);
        assert_eq!(ok(&s, w, "GetDeviceByIdentifier", gi.ident()).await, Value::Null);
        assert_eq!(ok(&s, w, "GetKey", with(g.named(), key.clone())).await, Value::Null);
        assert_eq!(
            ok(&s, w, "GetKeyValue", with(g.named(), key.clone())).await,
            Value::Null
        );
        assert_eq!(
            ok(&s, w, "GetKeyOnDeviceIdentifier", with(gi.ident(), key.clone())).await,
            Value::Null
        );
        assert_eq!(
            ok(&s, w, "GetKeyValueOnDeviceIdentifier", with(gi.ident(), key.clone())).await,
            Value::Null
        );
        let by_value = json!({"KeyName": "k", "KeyValue": "v"});
        assert_eq!(
            ok(&s, w, "GetKeyByValue", with(g.named(), by_value.clone())).await,
            Value::Null
        );
        assert_eq!(
            ok(&s, w, "GetKeyByValueAndIdentifier", with(gi.ident(), by_value)).await,
            Value::Null
        );
        assert_eq!(ok(&s, w, "GetDeviceKeys", g.named()).await, json!([]));
        assert_eq!(
            ok(&s, w, "GetDeviceKeysOnDeviceIdentifier", gi.ident()).await,
            json!([])
        );
        assert_eq!(
            ok(
                &s,
                w,
                "GetDeviceKeysOnDeviceIdentifierTable",
                with(gi.ident(), json!({"TableName": "t"}))
            )
            .await,
            json!([])
        );
        assert_eq!(
            ok(
                &s,
                w,
                "GetDeviceKeysOnDeviceIdentifierTableRecordId",
                with(gi.ident(), json!({"TableName": "t", "RecordId": 1}))
            )
            .await,
            json!([])
        );
        void(&s, w, "DeleteDeviceByIdentifier", gi.ident()).await;
        void(
            &s,
            w,
            "DeleteForeignDevice",
            json!({"ForeignDevice": {"Name": "ghost"}, "ApplicationName": app}),
        )
        .await;
        void(
            &s,
            w,
            "DeleteForeignDevice",
            json!({"ForeignDevice": {"ForeignDeviceId": 999_999}, "ApplicationName": app}),
        )
        .await;
        void(&s, w, "DeleteForeignKeyOnName", with(gi.ident(), key.clone())).await;
        void(
            &s,
            w,
            "DeleteForeignKey",
            with(
                gi.ident(),
                json!({"ForeignKey": {"Key": "k"}, "TableName": "t", "RecordId": 1}),
            ),
        )
        .await;
        // A device id that is not the application's is not created either.
        assert_eq!(
            ok(
                &s,
                w,
                "SaveForeignDevice",
                json!({"ForeignDevice": {"ForeignDeviceId": 999_999, "Name": "ghost"}, "ApplicationName": app}),
            )
            .await,
            Value::Null
        );
    }
    let ghost = json!({"ApplicationName": "Ghost"});
    assert_eq!(ok(&s, w, "GetAppByName", ghost.clone()).await, Value::Null);
    assert_eq!(ok(&s, w, "GetApplicationDevices", ghost.clone()).await, json!([]));
    assert_eq!(ok(&s, w, "GetApplicationKeys", ghost).await, json!([]));
    assert_eq!(
        ok(
            &s,
            w,
            "GetAllForeignKeysOnEntity",
            json!({"EntityType": "ghost", "EntityId": 1})
        )
        .await,
        json!({})
    );
    for q in [
        "GetForeignAppEntity?foreignAppEntityId=999999",
        "GetForeignDevice?foreignDeviceId=999999",
    ] {
        assert_eq!(ok(&s, w, q, json!({})).await, Value::Null, "{q}");
    }
    void(&s, w, "DeleteForeignAppEntity?foreignAppEntityId=999999", json!({})).await;
    // The default application is not saved.
    assert_eq!(
        ok(&s, w, "CreateDefaultForeignAppEntity", json!({})).await["ForeignAppId"],
        0
    );
    assert_eq!(
        ok(&s, w, "GetApplicationDevices", json!({"ApplicationName": "Keep"})).await,
        keep_devices
    );
    assert_eq!(foreign_events(&s, &o.key).await, before, "a Get or a Delete wrote");

    // Each of the six saving methods creates what it names.
    let creators: [Creator; 6] = [
        (
            "AddForeignKey",
            with(at("A1", "d1", "").ident(), json!({"ForeignKey": fk("k", "v", "t", 1)})),
            Some(("d1", "")),
        ),
        (
            "SaveForeignKey",
            with(
                at("A2", "d2", "i2").ident(),
                json!({"ForeignKey": fk("k", "v", "t", 1)}),
            ),
            Some(("d2", "i2")),
        ),
        (
            "AddDeviceByIdentifier",
            at("A3", "d3", "i3").ident(),
            Some(("d3", "i3")),
        ),
        ("SaveDeviceByIdentifier", at("A4", "d4", "").ident(), Some(("d4", ""))),
        (
            "SaveForeignDevice",
            json!({"ForeignDevice": {"ForeignDeviceId": 0, "Name": "d5", "DeviceIdentifier": "i5"}, "ApplicationName": "A5"}),
            Some(("d5", "i5")),
        ),
        (
            "SaveForeignAppEntity",
            json!({"ForeignAppEntity": {"ForeignAppId": 0, "Name": "A6"}}),
            None,
        ),
    ];
    for (i, (method, body, device)) in creators.into_iter().enumerate() {
        let app = format!("A{}", i + 1);
        let name = json!({"ApplicationName": app});
        assert_eq!(ok(&s, w, "GetAppByName", name.clone()).await, Value::Null);
        let seen = foreign_events(&s, &o.key).await.len();
        ok(&s, w, method, body).await;
        let a = ok(&s, w, "GetAppByName", name.clone()).await;
        assert_eq!(a["Name"], app.as_str(), "{method}");
        let devices = ok(&s, w, "GetApplicationDevices", name).await;
        let mut wrote = vec!["ForeignAppCreated".to_string()];
        match device {
            Some((d, ident)) => {
                assert_eq!(field_of(&devices, "Name"), [d], "{method}");
                assert_eq!(field_of(&devices, "DeviceIdentifier"), [ident], "{method}");
                wrote.push("ForeignDeviceCreated".into());
                if method.ends_with("ForeignKey") {
                    wrote.push("ForeignKeyCreated".into());
                }
            }
            None => assert_eq!(devices, json!([]), "{method}"),
        }
        assert_eq!(types(&foreign_events(&s, &o.key).await[seen..]), wrote, "{method}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Upsert and conflicts.

#[tokio::test]
async fn save_foreign_key_upserts_and_add_foreign_key_refuses_a_taken_address() {
    let s = Server::start().await;
    let o = org(&s, "upsert").await;
    let w = &o.api;
    let d = at("ERP", "desk", "");
    let first = save(&s, w, d, fk("id", "one", "contact", 5)).await;
    s.advance(5).await;
    let second = save(&s, w, d, fk("id", "two", "contact", 5)).await;
    assert_eq!(second["Value"], "two");
    assert_eq!(second["CreatedDate"], first["CreatedDate"]);
    let (c, u1, u2) = (
        server_date(&first["CreatedDate"]),
        server_date(&first["UpdatedDate"]),
        server_date(&second["UpdatedDate"]),
    );
    assert_eq!(c, u1);
    assert!(u2 >= u1 + Duration::seconds(5), "{u1} -> {u2}");
    let keys = ok(&s, w, "GetDeviceKeys", d.named()).await;
    assert_eq!(values(&keys), ["two"]);
    assert_eq!(get(&s, w, d, "id", "contact", 5).await, second);
    // Another record is another address.
    save(&s, w, d, fk("id", "three", "contact", 6)).await;
    assert_eq!(values(&ok(&s, w, "GetDeviceKeys", d.named()).await), ["two", "three"]);

    // AddForeignKey on a taken address: 409, nothing changes.
    let before = foreign_events(&s, &o.key).await;
    let v = refused(
        &s,
        w,
        "AddForeignKey",
        with(d.ident(), json!({"ForeignKey": fk("id", "four", "contact", 5)})),
        409,
        "SoConflictException",
    )
    .await;
    assert!(!v.to_string().contains("four"));
    assert_eq!(foreign_events(&s, &o.key).await, before);
    assert_eq!(get(&s, w, d, "id", "contact", 5).await, second);

    // Add the same new address twice: one key, one application, one device.
    let n = at("Fresh", "dev", "x");
    ok(
        &s,
        w,
        "AddForeignKey",
        with(n.ident(), json!({"ForeignKey": fk("k", "first", "t", 1)})),
    )
    .await;
    let before = foreign_events(&s, &o.key).await;
    refused(
        &s,
        w,
        "AddForeignKey",
        with(n.ident(), json!({"ForeignKey": fk("k", "second", "t", 1)})),
        409,
        "SoConflictException",
    )
    .await;
    assert_eq!(foreign_events(&s, &o.key).await, before);
    let fresh = json!({"ApplicationName": "Fresh"});
    assert_eq!(values(&ok(&s, w, "GetApplicationKeys", fresh.clone()).await), ["first"]);
    assert_eq!(
        ok(&s, w, "GetApplicationDevices", fresh)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // SaveForeignAppEntity: a taken name is a conflict; an id not in the organization is null.
    refused(
        &s,
        w,
        "SaveForeignAppEntity",
        json!({"ForeignAppEntity": {"ForeignAppId": 0, "Name": "Fresh"}}),
        409,
        "SoConflictException",
    )
    .await;
    assert_eq!(
        ok(
            &s,
            w,
            "SaveForeignAppEntity",
            json!({"ForeignAppEntity": {"ForeignAppId": 999_999, "Name": "Other"}}),
        )
        .await,
        Value::Null
    );
    assert_eq!(foreign_events(&s, &o.key).await, before);
}

/// Writers racing on one new address (application, device and key all new).
async fn racing_walk(s: &Server) {
    let o = org(s, "race").await;
    // AddForeignKey: one wins, every other is a conflict that leaves nothing behind.
    let n = at("Raced", "dev", "");
    let adds = (0..6)
        .map(|i| {
            post(s, &o.api, "AddForeignKey").json(&with(
                n.ident(),
                json!({"ForeignKey": fk("k", &format!("add-{i}"), "t", 1)}),
            ))
        })
        .collect();
    let statuses = statuses_at_once(adds).await;
    assert_eq!(count(&statuses, 200), 1, "{statuses:?}");
    assert_eq!(count(&statuses, 409), 5, "{statuses:?}");
    let raced = json!({"ApplicationName": "Raced"});
    assert_eq!(
        ok(s, &o.api, "GetApplicationKeys", raced.clone())
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        ok(s, &o.api, "GetApplicationDevices", raced)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        types(&foreign_events(s, &o.key).await),
        ["ForeignAppCreated", "ForeignDeviceCreated", "ForeignKeyCreated"]
    );
    // SaveForeignKey: every one succeeds, on one application, device and key.
    let m = at("Saved", "dev", "");
    let saves = (0..6)
        .map(|i| {
            post(s, &o.api, "SaveForeignKey").json(&with(
                m.ident(),
                json!({"ForeignKey": fk("k", &format!("save-{i}"), "t", 1)}),
            ))
        })
        .collect();
    let statuses = statuses_at_once(saves).await;
    assert_eq!(count(&statuses, 200), 6, "{statuses:?}");
    let saved = json!({"ApplicationName": "Saved"});
    assert_eq!(
        ok(s, &o.api, "GetApplicationKeys", saved.clone())
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        ok(s, &o.api, "GetApplicationDevices", saved)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let e = foreign_events(s, &o.key).await;
    assert_eq!(
        types(&e[3..]),
        [
            "ForeignAppCreated",
            "ForeignDeviceCreated",
            "ForeignKeyCreated",
            "ForeignKeyUpdated",
            "ForeignKeyUpdated",
            "ForeignKeyUpdated",
            "ForeignKeyUpdated",
            "ForeignKeyUpdated"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_on_a_new_address_make_one_application_device_and_key() {
    let s = Server::start().await;
    racing_walk(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_on_a_new_address_make_one_application_device_and_key_on_postgres() {
    let Some(admin) = pg::admin_url("racing_writers_on_a_new_address_make_one_application_device_and_key_on_postgres")
    else {
        return;
    };
    let url = pg::fresh_database(&admin).await;
    let s = Server::start_with(
        Options::default()
            .env("KEYGATE_DATABASE_URL", &url)
            .env("KEYGATE_SECRET", "a-shared-server-secret-of-at-least-32-bytes"),
    )
    .await;
    racing_walk(&s).await;
}

// ---------------------------------------------------------------------------------------------
// 5. Deletes.

/// On `app`: device "d" (no identifier) with key "id" in contact 1, contact 2 and person 1, and
/// key "other" in contact 1; device "d" with identifier "x" and device "e", each with "id" in
/// contact 1.
async fn delete_fixture(s: &Server, w: &Who, app: &str) {
    let d = at(app, "d", "");
    for (k, v, t, r) in [
        ("id", "c1", "contact", 1),
        ("id", "c2", "contact", 2),
        ("id", "p1", "person", 1),
        ("other", "o1", "contact", 1),
    ] {
        save(s, w, d, fk(k, v, t, r)).await;
    }
    save(s, w, at(app, "d", "x"), fk("id", "x1", "contact", 1)).await;
    save(s, w, at(app, "e", ""), fk("id", "e1", "contact", 1)).await;
}

async fn keys_left(s: &Server, w: &Who, app: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    (
        values(&ok(s, w, "GetDeviceKeys", at(app, "d", "").named()).await),
        values(&ok(s, w, "GetDeviceKeysOnDeviceIdentifier", at(app, "d", "x").ident()).await),
        values(&ok(s, w, "GetDeviceKeys", at(app, "e", "").named()).await),
    )
}

#[tokio::test]
async fn delete_wildcards_blank_table_and_record_zero() {
    let s = Server::start().await;
    let o = org(&s, "wild").await;
    let w = &o.api;
    let untouched = (vec!["x1".to_string()], vec!["e1".to_string()]);
    // Both delete methods: by KeyName, and by ForeignKey.Key.
    for (app, method) in [("OnName", "DeleteForeignKeyOnName"), ("ByKey", "DeleteForeignKey")] {
        delete_fixture(&s, w, app).await;
        let d = at(app, "d", "");
        let name = |table: &str, record: i64| {
            let target = if method == "DeleteForeignKey" {
                json!({"ForeignKey": {"Key": "id", "Value": "ignored", "TableName": "ignored", "RecordId": 99}})
            } else {
                json!({"KeyName": "id"})
            };
            with(with(d.ident(), target), json!({"TableName": table, "RecordId": record}))
        };
        // An exact address: that key only.
        void(&s, w, method, name("contact", 2)).await;
        let (dk, x, e) = keys_left(&s, w, app).await;
        assert_eq!(dk, ["c1", "p1", "o1"], "{method}");
        assert_eq!((x, e), untouched, "{method}");
        save(&s, w, d, fk("id", "c2", "contact", 2)).await;
        // RecordId 0: every key of that name in that table.
        void(&s, w, method, name("contact", 0)).await;
        let (dk, x, e) = keys_left(&s, w, app).await;
        assert_eq!(dk, ["p1", "o1"], "{method}");
        assert_eq!((x, e), untouched, "{method}");
        save(&s, w, d, fk("id", "c1", "contact", 1)).await;
        save(&s, w, d, fk("id", "c2", "contact", 2)).await;
        // Blank table: every key of that name on the device, whatever the table and record.
        void(&s, w, method, name("", 1)).await;
        let (dk, x, e) = keys_left(&s, w, app).await;
        assert_eq!(dk, ["o1"], "{method}");
        assert_eq!((x, e), untouched, "{method}");
    }
    // The other organization's feed was not involved; this one shows one event per deleted key.
    let deleted = foreign_events(&s, &o.key)
        .await
        .into_iter()
        .filter(|e| e["type"] == "ForeignKeyDeleted")
        .count();
    assert_eq!(deleted, 2 * (1 + 2 + 3));
}

#[tokio::test]
async fn deleting_an_app_removes_its_devices_and_keys_and_deleting_a_device_only_its_keys() {
    let s = Server::start().await;
    let o = org(&s, "cascade").await;
    let w = &o.api;
    delete_fixture(&s, w, "Gone").await;
    delete_fixture(&s, w, "Stays").await;
    let gone = ok(&s, w, "GetAppByName", json!({"ApplicationName": "Gone"})).await;
    let gone_id = gone["ForeignAppId"].as_i64().unwrap();
    let gone_devices: Vec<i64> = gone["Devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["ForeignDeviceId"].as_i64().unwrap())
        .collect();
    assert_eq!(gone_devices.len(), 3);
    let entity = json!({"EntityType": "contact", "EntityId": 1});
    assert_eq!(
        ok(&s, w, "GetAllForeignKeysOnEntity", entity.clone()).await,
        json!({"Gone.d.id": "c1", "Gone.d.other": "o1", "Gone.e.id": "e1", "Stays.d.id": "c1", "Stays.d.other": "o1", "Stays.e.id": "e1"})
    );

    void(
        &s,
        w,
        &format!("DeleteForeignAppEntity?foreignAppEntityId={gone_id}"),
        json!({}),
    )
    .await;
    let name = json!({"ApplicationName": "Gone"});
    assert_eq!(ok(&s, w, "GetAppByName", name.clone()).await, Value::Null);
    assert_eq!(ok(&s, w, "GetApplicationKeys", name.clone()).await, json!([]));
    assert_eq!(ok(&s, w, "GetApplicationDevices", name).await, json!([]));
    for id in gone_devices {
        assert_eq!(
            ok(&s, w, &format!("GetForeignDevice?foreignDeviceId={id}"), json!({})).await,
            Value::Null
        );
    }
    assert_eq!(
        ok(&s, w, "GetAllForeignKeysOnEntity", entity.clone()).await,
        json!({"Stays.d.id": "c1", "Stays.d.other": "o1", "Stays.e.id": "e1"})
    );
    assert_eq!(
        ok(
            &s,
            w,
            "GetAllForeignKeysOnEntity",
            json!({"EntityType": "person", "EntityId": 1})
        )
        .await,
        json!({"Stays.d.id": "p1"})
    );
    let last = foreign_events(&s, &o.key).await.pop().unwrap();
    assert_eq!(last["type"], "ForeignAppDeleted");
    assert_eq!(last["data"]["devices"], 3);
    assert_eq!(last["data"]["keys"], 6);

    // Deleting device "d" of Stays: its keys go, the device "d"/"x" and "e" stay with theirs.
    void(&s, w, "DeleteDeviceByIdentifier", at("Stays", "d", "").ident()).await;
    let stays = json!({"ApplicationName": "Stays"});
    let devices = ok(&s, w, "GetApplicationDevices", stays.clone()).await;
    assert_eq!(field_of(&devices, "Name"), ["d", "e"]);
    assert_eq!(field_of(&devices, "DeviceIdentifier"), ["x", ""]);
    assert_eq!(
        values(&ok(&s, w, "GetApplicationKeys", stays.clone()).await),
        ["x1", "e1"]
    );
    assert_eq!(
        ok(&s, w, "GetAllForeignKeysOnEntity", entity.clone()).await,
        json!({"Stays.d.id": "x1", "Stays.e.id": "e1"})
    );
    // And by DeleteForeignDevice (by name and identifier).
    void(
        &s,
        w,
        "DeleteForeignDevice",
        json!({"ForeignDevice": {"Name": "d", "DeviceIdentifier": "x"}, "ApplicationName": "Stays"}),
    )
    .await;
    assert_eq!(values(&ok(&s, w, "GetApplicationKeys", stays.clone()).await), ["e1"]);
    assert_eq!(
        ok(&s, w, "GetAllForeignKeysOnEntity", entity).await,
        json!({"Stays.e.id": "e1"})
    );
    assert_eq!(ok(&s, w, "GetAppByName", stays).await["Name"], "Stays");
}

// ---------------------------------------------------------------------------------------------
// 6. Device identity.

#[tokio::test]
async fn by_name_methods_see_the_device_without_identifier_and_by_identifier_methods_the_pair() {
    let s = Server::start().await;
    let o = org(&s, "identity").await;
    let w = &o.api;
    let plain = at("ERP", "phone", "");
    let one = at("ERP", "phone", "imei-1");
    let two = at("ERP", "phone", "imei-2");
    save(&s, w, plain, fk("id", "plain", "contact", 1)).await;
    save(&s, w, one, fk("id", "one", "contact", 1)).await;
    save(&s, w, two, fk("id", "two", "contact", 1)).await;
    let devices = ok(&s, w, "GetApplicationDevices", json!({"ApplicationName": "ERP"})).await;
    assert_eq!(field_of(&devices, "Name"), ["phone", "phone", "phone"]);
    assert_eq!(field_of(&devices, "DeviceIdentifier"), ["", "imei-1", "imei-2"]);
    let ids: BTreeSet<i64> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["ForeignDeviceId"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);

    // By name: the device without identifier, whatever identifier the body carries.
    let d = ok(&s, w, "GetDeviceByName", plain.named()).await;
    assert_eq!(d["DeviceIdentifier"], "");
    let d = ok(&s, w, "GetDeviceByName", one.ident()).await;
    assert_eq!(d["DeviceIdentifier"], "", "GetDeviceByName ignores DeviceIdentifier");
    let key = json!({"KeyName": "id", "TableName": "contact", "RecordId": 1});
    assert_eq!(
        ok(&s, w, "GetKey", with(plain.named(), key.clone())).await["Value"],
        "plain"
    );
    assert_eq!(ok(&s, w, "GetKeyValue", with(one.ident(), key.clone())).await, "plain");
    assert_eq!(values(&ok(&s, w, "GetDeviceKeys", plain.named()).await), ["plain"]);
    let by_value = |v: &str| json!({"KeyName": "id", "KeyValue": v});
    assert_eq!(
        ok(&s, w, "GetKeyByValue", with(plain.named(), by_value("plain"))).await["Value"],
        "plain"
    );
    assert_eq!(
        ok(&s, w, "GetKeyByValue", with(plain.named(), by_value("one"))).await,
        Value::Null
    );

    // By identifier: the pair.
    for (addr, value) in [(one, "one"), (two, "two"), (plain, "plain")] {
        let d = ok(&s, w, "GetDeviceByIdentifier", addr.ident()).await;
        assert_eq!(d["DeviceIdentifier"], addr.ident, "{value}");
        assert_eq!(
            ok(&s, w, "GetKeyOnDeviceIdentifier", with(addr.ident(), key.clone())).await["Value"],
            value
        );
        assert_eq!(
            ok(&s, w, "GetKeyValueOnDeviceIdentifier", with(addr.ident(), key.clone())).await,
            value
        );
        assert_eq!(
            values(&ok(&s, w, "GetDeviceKeysOnDeviceIdentifier", addr.ident()).await),
            [value]
        );
        assert_eq!(
            ok(&s, w, "GetKeyByValueAndIdentifier", with(addr.ident(), by_value(value))).await["Value"],
            value
        );
    }
    assert_eq!(
        ok(&s, w, "GetKeyByValueAndIdentifier", with(one.ident(), by_value("two"))).await,
        Value::Null
    );
    // An absent identifier is the empty one.
    assert_eq!(
        values(&ok(&s, w, "GetDeviceKeysOnDeviceIdentifier", plain.named()).await),
        ["plain"]
    );

    // A device that has only an identified variant is not seen by name.
    let tablet = at("ERP", "tablet", "t-1");
    save(&s, w, tablet, fk("id", "tab", "contact", 1)).await;
    let tablet_plain = at("ERP", "tablet", "");
    assert_eq!(ok(&s, w, "GetDeviceByName", tablet_plain.named()).await, Value::Null);
    assert_eq!(
        ok(&s, w, "GetKey", with(tablet_plain.named(), key.clone())).await,
        Value::Null
    );
    assert_eq!(ok(&s, w, "GetDeviceKeys", tablet_plain.named()).await, json!([]));

    // Deleting one identified device leaves the others.
    void(&s, w, "DeleteDeviceByIdentifier", one.ident()).await;
    let devices = ok(&s, w, "GetApplicationDevices", json!({"ApplicationName": "ERP"})).await;
    assert_eq!(field_of(&devices, "DeviceIdentifier"), ["", "imei-2", "t-1"]);
    assert_eq!(ok(&s, w, "GetKey", with(plain.named(), key)).await["Value"], "plain");
}

// ---------------------------------------------------------------------------------------------
// 7. Unicode and sizes.

/// Values that must come back byte for byte.
fn unicode_values() -> Vec<(&'static str, String)> {
    vec![
        ("cjk", "中文キー한국어".to_string()),
        ("arabic", "مرحبا بالعالم".to_string()),
        ("astral", "🦀 crab \u{1F980} and 𝄞".to_string()),
        ("decomposed", "Cafe\u{301}".to_string()),
        ("spaces", "  leading and trailing  ".to_string()),
        ("controls", "tab\there\nnewline\r\ncrlf".to_string()),
        ("markup", "a<b>&c\"d'e\\f".to_string()),
        ("empty", String::new()),
        ("4000 astral", "\u{1F980}".repeat(4000)),
    ]
}

async fn unicode_walk(s: &Server) {
    let o = org(s, "unicode").await;
    let w = &o.api;
    let d = at("Ünïcödé アプリ", "デバイス", "идентификатор");
    // The same device name without identifier, for the by-name methods.
    let plain = at("Ünïcödé アプリ", "デバイス", "");
    let all = unicode_values();
    for (i, (what, v)) in all.iter().enumerate() {
        let r = i as i64 + 1;
        let saved = save(s, w, d, fk("val", v, "table", r)).await;
        assert_eq!(saved["Value"].as_str().unwrap().as_bytes(), v.as_bytes(), "{what}");
        save(s, w, plain, fk("val", v, "table", r)).await;
    }
    for (i, (what, v)) in all.iter().enumerate() {
        let r = i as i64 + 1;
        let got = get(s, w, d, "val", "table", r).await;
        assert_eq!(got["Value"].as_str().unwrap().as_bytes(), v.as_bytes(), "{what}");
        let value = ok(
            s,
            w,
            "GetKeyValueOnDeviceIdentifier",
            with(
                d.ident(),
                json!({"KeyName": "val", "TableName": "table", "RecordId": r}),
            ),
        )
        .await;
        assert_eq!(value.as_str().unwrap().as_bytes(), v.as_bytes(), "{what}");
        let found = ok(
            s,
            w,
            "GetKeyByValueAndIdentifier",
            with(d.ident(), json!({"KeyName": "val", "KeyValue": v})),
        )
        .await;
        assert_eq!(found["RecordId"], r, "{what} by value");
        let found = ok(
            s,
            w,
            "GetKeyByValue",
            with(
                plain.named(),
                json!({"KeyName": "val", "KeyValue": v, "TableName": "table"}),
            ),
        )
        .await;
        assert_eq!(found["RecordId"], r, "{what} by value, by name");
        assert_eq!(found["Value"].as_str().unwrap().as_bytes(), v.as_bytes(), "{what}");
        let key = json!({"KeyName": "val", "TableName": "table", "RecordId": r});
        let value = ok(s, w, "GetKeyValue", with(plain.named(), key)).await;
        assert_eq!(value.as_str().unwrap().as_bytes(), v.as_bytes(), "{what} by name");
    }
    let listed = ok(s, w, "GetDeviceKeysOnDeviceIdentifier", d.ident()).await;
    assert_eq!(values(&listed), all.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>());
    // The raw answer carries the characters themselves.
    let raw = call(
        s,
        w,
        "GetKeyValueOnDeviceIdentifier",
        with(
            d.ident(),
            json!({"KeyName": "val", "TableName": "table", "RecordId": 4}),
        ),
    )
    .await;
    assert!(raw.text.contains("Cafe\u{301}"), "{}", raw.text);
    // The decomposed value is kept decomposed: its composed form is another value, and a trimmed
    // value is another value too.
    for other in ["Caf\u{e9}", "leading and trailing", " leading and trailing "] {
        let by_value = json!({"KeyName": "val", "KeyValue": other});
        assert_eq!(
            ok(s, w, "GetKeyByValueAndIdentifier", with(d.ident(), by_value.clone())).await,
            Value::Null,
            "{other:?}"
        );
        assert_eq!(
            ok(s, w, "GetKeyByValue", with(plain.named(), by_value)).await,
            Value::Null,
            "{other:?}"
        );
    }
    assert_eq!(
        ok(
            s,
            w,
            "GetAllForeignKeysOnEntity",
            json!({"EntityType": "table", "EntityId": 9})
        )
        .await,
        json!({"Ünïcödé アプリ.デバイス.val": "\u{1F980}".repeat(4000)})
    );

    // One more than 4,000 characters: 400, nothing stored.
    let before = foreign_events(s, &o.key).await;
    for (what, long) in [
        ("x", "x".repeat(4001)),
        ("astral", "\u{1F980}".repeat(4001)),
        ("mixed", format!("{}\u{1F980}", "x".repeat(4000))),
    ] {
        let detail = invalid(
            s,
            w,
            "SaveForeignKey",
            with(d.ident(), json!({"ForeignKey": fk("long", &long, "table", 1)})),
        )
        .await;
        assert_eq!(detail, "ForeignKey.Value: must be at most 4000 characters", "{what}");
    }
    assert_eq!(get(s, w, d, "long", "table", 1).await, Value::Null);
    assert_eq!(foreign_events(s, &o.key).await, before);

    // Names: 255 characters (of a 3-byte character) are fine, 256 are refused.
    let n255 = "界".repeat(255);
    let long = at(&n255, &n255, &n255);
    let saved = save(s, w, long, fk(&n255, "named", &n255, 1)).await;
    assert_eq!(saved["TableName"], n255.as_str());
    assert_eq!(get(s, w, long, &n255, &n255, 1).await["Value"], "named");
    let before = foreign_events(s, &o.key).await;
    let n256 = "界".repeat(256);
    for (field, body) in [
        (
            "ApplicationName",
            with(at(&n256, "d", "").ident(), json!({"ForeignKey": fk("k", "v", "t", 1)})),
        ),
        (
            "DeviceName",
            with(at("A", &n256, "").ident(), json!({"ForeignKey": fk("k", "v", "t", 1)})),
        ),
        (
            "DeviceIdentifier",
            with(at("A", "d", &n256).ident(), json!({"ForeignKey": fk("k", "v", "t", 1)})),
        ),
        (
            "ForeignKey.Key",
            with(at("A", "d", "").ident(), json!({"ForeignKey": fk(&n256, "v", "t", 1)})),
        ),
        (
            "ForeignKey.TableName",
            with(at("A", "d", "").ident(), json!({"ForeignKey": fk("k", "v", &n256, 1)})),
        ),
    ] {
        let detail = invalid(s, w, "SaveForeignKey", body).await;
        assert_eq!(detail, format!("{field}: must be at most 255 characters"));
    }
    let detail = invalid(
        s,
        w,
        "SaveForeignAppEntity",
        json!({"ForeignAppEntity": {"Name": n256}}),
    )
    .await;
    assert_eq!(detail, "Name: must be at most 255 characters");
    assert_eq!(foreign_events(s, &o.key).await, before);
    assert_eq!(
        ok(s, w, "GetAppByName", json!({"ApplicationName": "A"})).await,
        Value::Null
    );
}

#[tokio::test]
async fn values_and_names_round_trip_byte_for_byte_up_to_their_limits() {
    let s = Server::start().await;
    unicode_walk(&s).await;
}

#[tokio::test]
async fn values_and_names_round_trip_byte_for_byte_on_postgres() {
    let Some(admin) = pg::admin_url("values_and_names_round_trip_byte_for_byte_on_postgres") else {
        return;
    };
    let url = pg::fresh_database(&admin).await;
    let s = Server::start_with(
        Options::default()
            .env("KEYGATE_DATABASE_URL", &url)
            .env("KEYGATE_SECRET", "a-shared-server-secret-of-at-least-32-bytes"),
    )
    .await;
    unicode_walk(&s).await;
}

#[tokio::test]
async fn characters_no_wire_can_carry_are_refused_naming_the_field() {
    let s = Server::start().await;
    let o = org(&s, "chars").await;
    let w = &o.api;
    let before = foreign_events(&s, &o.key).await;
    for c in ['\u{0}', '\u{1}', '\u{b}', '\u{1f}', '\u{ffff}'] {
        let bad = format!("a{c}b");
        let code = format!("U+{:04X}", c as u32);
        let ok_key = fk("k", "v", "t", 1);
        let cases = [
            (
                "ForeignKey.Value",
                "SaveForeignKey",
                with(at("A", "d", "").ident(), json!({"ForeignKey": fk("k", &bad, "t", 1)})),
            ),
            (
                "ForeignKey.Key",
                "AddForeignKey",
                with(at("A", "d", "").ident(), json!({"ForeignKey": fk(&bad, "v", "t", 1)})),
            ),
            (
                "ForeignKey.TableName",
                "SaveForeignKey",
                with(at("A", "d", "").ident(), json!({"ForeignKey": fk("k", "v", &bad, 1)})),
            ),
            (
                "ApplicationName",
                "SaveForeignKey",
                with(at(&bad, "d", "").ident(), json!({"ForeignKey": ok_key.clone()})),
            ),
            (
                "DeviceName",
                "SaveForeignKey",
                with(at("A", &bad, "").ident(), json!({"ForeignKey": ok_key.clone()})),
            ),
            ("DeviceIdentifier", "AddDeviceByIdentifier", at("A", "d", &bad).ident()),
            (
                "Name",
                "SaveForeignAppEntity",
                json!({"ForeignAppEntity": {"Name": bad}}),
            ),
            (
                "KeyValue",
                "GetKeyByValue",
                with(at("A", "d", "").named(), json!({"KeyName": "k", "KeyValue": bad})),
            ),
            (
                "KeyName",
                "GetKey",
                with(at("A", "d", "").named(), json!({"KeyName": bad})),
            ),
        ];
        for (field, method, body) in cases {
            let detail = invalid(&s, w, method, body).await;
            assert!(
                detail.starts_with(&format!("{field}: must not contain {code}")),
                "{method} {field} {code}: {detail}"
            );
        }
    }
    assert_eq!(foreign_events(&s, &o.key).await, before);
    assert_eq!(
        ok(&s, w, "GetAppByName", json!({"ApplicationName": "A"})).await,
        Value::Null
    );
    // Tab, LF and CR are fine.
    save(&s, w, at("A", "d", ""), fk("k", "\t\n\r", "t", 1)).await;
}

// ---------------------------------------------------------------------------------------------
// 8. Rights.

/// Data for the rights tests: application "ERP" with device "desk" holding key "id" = "secret"
/// in contact 1. Returns (application id, device id).
async fn rights_fixture(s: &Server, o: &Org) -> (i64, i64) {
    save(s, &o.api, at("ERP", "desk", ""), fk("id", "secret", "contact", 1)).await;
    let a = ok(s, &o.api, "GetAppByName", json!({"ApplicationName": "ERP"})).await;
    (
        a["ForeignAppId"].as_i64().unwrap(),
        a["Devices"][0]["ForeignDeviceId"].as_i64().unwrap(),
    )
}

/// One call of every write method, each aimed at the fixture (or at something new).
fn writes(app_id: i64, dev_id: i64) -> Vec<(String, Value)> {
    let desk = at("ERP", "desk", "");
    let key = with(
        desk.ident(),
        json!({"KeyName": "id", "TableName": "contact", "RecordId": 1}),
    );
    vec![
        (
            "SaveForeignAppEntity".into(),
            json!({"ForeignAppEntity": {"ForeignAppId": app_id, "Name": "renamed"}}),
        ),
        (format!("DeleteForeignAppEntity?foreignAppEntityId={app_id}"), json!({})),
        ("AddDeviceByIdentifier".into(), at("ERP", "new", "n").ident()),
        (
            "SaveDeviceByIdentifier".into(),
            with(desk.ident(), json!({"ForeignDevice": {"Name": "renamed"}})),
        ),
        ("DeleteDeviceByIdentifier".into(), desk.ident()),
        (
            "SaveForeignDevice".into(),
            json!({"ForeignDevice": {"ForeignDeviceId": dev_id, "Name": "renamed"}, "ApplicationName": "ERP"}),
        ),
        (
            "DeleteForeignDevice".into(),
            json!({"ForeignDevice": {"ForeignDeviceId": dev_id}, "ApplicationName": "ERP"}),
        ),
        (
            "AddForeignKey".into(),
            with(desk.ident(), json!({"ForeignKey": fk("id", "new", "contact", 2)})),
        ),
        (
            "SaveForeignKey".into(),
            with(desk.ident(), json!({"ForeignKey": fk("id", "changed", "contact", 1)})),
        ),
        ("DeleteForeignKeyOnName".into(), key),
        (
            "DeleteForeignKey".into(),
            with(
                desk.ident(),
                json!({"ForeignKey": {"Key": "id"}, "TableName": "contact", "RecordId": 1}),
            ),
        ),
    ]
}

/// Every write is refused with 403 and nothing changes.
async fn all_writes_refused(s: &Server, o: &Org, who: &Who, app_id: i64, dev_id: i64) {
    let before = foreign_events(s, &o.key).await;
    let list = writes(app_id, dev_id);
    assert_eq!(list.len(), 11);
    for (method, body) in list {
        refused(s, who, &method, body, 403, "SoAccessDeniedException").await;
    }
    assert_eq!(foreign_events(s, &o.key).await, before);
    let a = ok(s, &o.api, "GetAppByName", json!({"ApplicationName": "ERP"})).await;
    assert_eq!(a["Name"], "ERP");
    assert_eq!(field_of(&a["Devices"], "Name"), ["desk"]);
    assert_eq!(
        values(&ok(s, &o.api, "GetApplicationKeys", json!({"ApplicationName": "ERP"})).await),
        ["secret"]
    );
}

#[tokio::test]
async fn a_user_who_is_not_an_administrator_reads_with_select_rights_and_every_write_is_refused() {
    let s = Server::start().await;
    let o = org(&s, "rights").await;
    let (app_id, dev_id) = rights_fixture(&s, &o).await;
    s.create_user(&o.key, "reader", "reader-password", false).await;
    let reader = Who::Basic("reader".into(), "reader-password".into());
    let key = with(
        at("ERP", "desk", "").named(),
        json!({"KeyName": "id", "TableName": "contact", "RecordId": 1}),
    );
    let k = ok(&s, &reader, "GetKey", key).await;
    assert_eq!(k["Value"], "secret");
    assert_eq!(k["TableRight"], json!({"Mask": "Select", "Reason": NOT_ADMIN}));
    assert_eq!(
        k["FieldProperties"]["Value"]["FieldRight"],
        json!({"Mask": "Read", "Reason": NOT_ADMIN})
    );
    assert_eq!(
        k["FieldProperties"]["CreatedDate"]["FieldRight"]["Mask"],
        "Read, UIHintReadOnly"
    );
    let a = ok(&s, &reader, "GetAppByName", json!({"ApplicationName": "ERP"})).await;
    assert_eq!(a["TableRight"]["Mask"], "Select");
    assert_eq!(a["Devices"][0]["TableRight"]["Mask"], "Select");
    let list = ok(&s, &reader, "GetDeviceKeys", at("ERP", "desk", "").named()).await;
    assert_eq!(list[0]["TableRight"]["Mask"], "Select");
    let d = ok(&s, &reader, "CreateDefaultForeignAppEntity", json!({})).await;
    assert_eq!(d["TableRight"]["Mask"], "Select");
    assert_eq!(d["CreatedBy"]["Name"], "reader");
    assert_eq!(d["CreatedBy"]["Type"], "InternalAssociate");
    all_writes_refused(&s, &o, &reader, app_id, dev_id).await;
    // The same writes by the administrator user go through (the refusals were about rights).
    let r = ok(
        &s,
        &o.admin,
        "SaveForeignKey",
        with(
            at("ERP", "desk", "").ident(),
            json!({"ForeignKey": fk("id", "changed", "contact", 1)}),
        ),
    )
    .await;
    assert_eq!(r["TableRight"], json!({"Mask": "FULL", "Reason": ""}));
    assert_eq!(r["UpdatedBy"], o.admin_name.as_str());
    assert_eq!(r["CreatedBy"], "default");
}

#[tokio::test]
async fn personal_keys_read_with_organization_read_and_write_with_read_write_of_an_administrator() {
    let s = Server::start().await;
    let o = org(&s, "scoped").await;
    let (app_id, dev_id) = rights_fixture(&s, &o).await;
    let key = with(
        at("ERP", "desk", "").named(),
        json!({"KeyName": "id", "TableName": "contact", "RecordId": 1}),
    );

    // Organization.Read of an administrator: reads (Select), never writes.
    let read = personal_key(&s, &o.admin, &["Organization.Read"]).await;
    let k = ok(&s, &read, "GetKey", key.clone()).await;
    assert_eq!(k["Value"], "secret");
    assert_eq!(k["TableRight"]["Mask"], "Select");
    all_writes_refused(&s, &o, &read, app_id, dev_id).await;

    // Without Organization.Read: not even reads.
    let other = personal_key(&s, &o.admin, &["Device.Read"]).await;
    let v = refused(&s, &other, "GetKey", key.clone(), 403, "SoAccessDeniedException").await;
    assert!(v["ErrorMessage"].as_str().unwrap().contains("Organization.Read"), "{v}");
    refused(
        &s,
        &other,
        "GetApplicationKeys",
        json!({"ApplicationName": "ERP"}),
        403,
        "SoAccessDeniedException",
    )
    .await;

    // Organization.ReadWrite of a user who is not an administrator: still no writes.
    s.create_user(&o.key, "plain", "plain-password", false).await;
    let plain = personal_key(
        &s,
        &Who::Basic("plain".into(), "plain-password".into()),
        &["Organization.ReadWrite"],
    )
    .await;
    assert_eq!(
        ok(&s, &plain, "GetKey", key.clone()).await["TableRight"]["Mask"],
        "Select"
    );
    all_writes_refused(&s, &o, &plain, app_id, dev_id).await;

    // Organization.ReadWrite of an administrator: writes, as that user.
    let write = personal_key(&s, &o.admin, &["Organization.ReadWrite"]).await;
    let k = ok(
        &s,
        &write,
        "SaveForeignKey",
        with(
            at("ERP", "desk", "").ident(),
            json!({"ForeignKey": fk("id", "by key", "contact", 1)}),
        ),
    )
    .await;
    assert_eq!(k["Value"], "by key");
    assert_eq!(k["UpdatedBy"], o.admin_name.as_str());
    assert_eq!(k["TableRight"], json!({"Mask": "FULL", "Reason": ""}));
    let n = ok(
        &s,
        &write,
        "AddForeignKey",
        with(
            at("ERP", "desk", "").ident(),
            json!({"ForeignKey": fk("id", "new", "contact", 2)}),
        ),
    )
    .await;
    assert_eq!(n["CreatedBy"], o.admin_name.as_str());
}

#[tokio::test]
async fn an_organization_api_key_writes_under_its_own_name() {
    let s = Server::start().await;
    let o = org(&s, "apikey").await;
    let k = save(&s, &o.api, at("ERP", "desk", ""), fk("id", "v", "contact", 1)).await;
    assert_eq!(k["CreatedBy"], "default");
    assert_eq!(k["UpdatedBy"], "default");
    assert_eq!(k["TableRight"], json!({"Mask": "FULL", "Reason": ""}));
    let d = ok(&s, &o.api, "GetDeviceByName", at("ERP", "desk", "").named()).await;
    assert_eq!(d["CreatedBy"], "default");
    assert_eq!(d["AssociateFullName"], "default");
    let a = ok(&s, &o.api, "GetAppByName", json!({"ApplicationName": "ERP"})).await;
    assert_eq!(a["CreatedBy"]["Name"], "default");
    assert_eq!(a["CreatedBy"]["Type"], "SystemAssociate");
    let e = foreign_events(&s, &o.key).await;
    assert!(
        e.iter().all(|e| e["actor"].as_str().unwrap().starts_with("api_key:")),
        "{e:?}"
    );
    // The administrator user's resave: UpdatedBy is that user, CreatedBy stays the key's.
    let k = save(&s, &o.admin, at("ERP", "desk", ""), fk("id", "w", "contact", 1)).await;
    assert_eq!(k["CreatedBy"], "default");
    assert_eq!(k["UpdatedBy"], o.admin_name.as_str());
}

// ---------------------------------------------------------------------------------------------
// 9. Bad input.

#[tokio::test]
async fn bad_input_answers_a_clear_error_and_changes_nothing() {
    let s = Server::start().await;
    let o = org(&s, "bad").await;
    let w = &o.api;
    save(&s, w, at("ERP", "desk", ""), fk("id", "kept", "contact", 1)).await;
    let before = foreign_events(&s, &o.key).await;
    let good = || {
        with(
            at("New", "dev", "").ident(),
            json!({"ForeignKey": fk("id", "v", "contact", 1)}),
        )
    };
    let set = |path: &[&str], v: Value| {
        let mut b = good();
        let mut cur = &mut b;
        for p in &path[..path.len() - 1] {
            cur = cur.get_mut(*p).unwrap();
        }
        cur.as_object_mut().unwrap().insert(path[path.len() - 1].to_string(), v);
        b
    };
    let drop = |field: &str| {
        let mut b = good();
        b.as_object_mut().unwrap().remove(field);
        b
    };
    // Raw JSON texts.
    for (text, detail) in [
        (r#"{"ForeignKey": {"Key": "k""#, "body: malformed JSON"),
        (r#"{"ForeignKey": {}} trailing"#, "body: malformed JSON"),
        ("[1, 2]", "request: the body must be a JSON object"),
        (r#""a string""#, "request: the body must be a JSON object"),
        ("42", "request: the body must be a JSON object"),
    ] {
        let r = send(
            post(&s, w, "SaveForeignKey")
                .header("Content-Type", "application/json")
                .body(text),
        )
        .await;
        let got = invalid_detail("SaveForeignKey", &r);
        assert!(got.starts_with(detail), "{text}: {got}");
    }
    // Bodies that are objects, with a wrong member.
    let whole = "must be a whole number between -2147483648 and 2147483647";
    let cases: Vec<(&str, Value, String)> = vec![
        (
            "SaveForeignKey",
            set(&["ForeignKey"], json!("Key=k")),
            "ForeignKey: must be a ForeignKey object".into(),
        ),
        (
            "SaveForeignKey",
            set(&["ForeignKey"], json!([1])),
            "ForeignKey: must be a ForeignKey object".into(),
        ),
        ("SaveForeignKey", drop("ForeignKey"), "ForeignKey: is required".into()),
        (
            "SaveForeignKey",
            set(&["ForeignKey", "RecordId"], json!("abc")),
            format!("ForeignKey.RecordId: {whole}"),
        ),
        (
            "AddForeignKey",
            set(&["ForeignKey", "RecordId"], json!(3_000_000_000_i64)),
            format!("ForeignKey.RecordId: {whole}"),
        ),
        (
            "SaveForeignKey",
            set(&["ForeignKey", "RecordId"], json!(1.5)),
            format!("ForeignKey.RecordId: {whole}"),
        ),
        (
            "SaveForeignKey",
            set(&["ForeignKey", "Value"], json!(5)),
            "ForeignKey.Value: must be a string".into(),
        ),
        (
            "SaveForeignKey",
            drop("ApplicationName"),
            "ApplicationName: is required".into(),
        ),
        (
            "SaveForeignKey",
            set(&["ApplicationName"], Value::Null),
            "ApplicationName: is required".into(),
        ),
        (
            "SaveForeignKey",
            set(&["ApplicationName"], json!("")),
            "ApplicationName: is required".into(),
        ),
        (
            "SaveForeignKey",
            set(&["ApplicationName"], json!(5)),
            "ApplicationName: must be a string".into(),
        ),
        (
            "SaveForeignKey",
            set(&["DeviceName"], json!("   ")),
            "DeviceName: is required".into(),
        ),
        (
            "AddDeviceByIdentifier",
            drop("DeviceName"),
            "DeviceName: is required".into(),
        ),
        (
            "GetKey",
            json!({"ApplicationName": "ERP", "DeviceName": "desk", "KeyName": "id", "RecordId": "abc"}),
            format!("RecordId: {whole}"),
        ),
        (
            "GetKey",
            json!({"DeviceName": "desk", "KeyName": "id"}),
            "ApplicationName: is required".into(),
        ),
        (
            "GetAllForeignKeysOnEntity",
            json!({"EntityId": 1}),
            "EntityType: is required".into(),
        ),
        (
            "SaveForeignAppEntity",
            json!({"ForeignAppEntity": {"ForeignAppId": -1, "Name": "x"}}),
            "ForeignAppId: must not be negative".into(),
        ),
    ];
    for (method, body, detail) in cases {
        let got = invalid(&s, w, method, body.clone()).await;
        assert_eq!(got, detail, "{method} {body}");
    }
    // An empty body: the required carrier is missing.
    let r = send(post(&s, w, "SaveForeignKey").header("Content-Type", "application/json")).await;
    assert_eq!(invalid_detail("SaveForeignKey", &r), "ForeignKey: is required");
    // Malformed XML.
    let r = send(
        post(&s, w, "SaveForeignKey")
            .header("Content-Type", "application/xml")
            .body("<request><ForeignKey>"),
    )
    .await;
    assert!(invalid_detail("SaveForeignKey", &r).starts_with("request: "));
    // An unknown method, and bodies in a media type the agent does not read.
    let r = send(post(&s, w, "NoSuchMethod").json(&good())).await;
    exception("NoSuchMethod", &r, 404, "SoNotFoundException");
    for ct in [Some("text/plain"), Some("application/octet-stream"), None] {
        let mut rb = post(&s, w, "SaveForeignKey").body(good().to_string());
        if let Some(ct) = ct {
            rb = rb.header("Content-Type", ct);
        }
        let r = send(rb).await;
        exception("SaveForeignKey", &r, 415, "SoUnsupportedMediaTypeException");
    }
    assert_eq!(foreign_events(&s, &o.key).await, before);
    assert_eq!(
        ok(&s, w, "GetAppByName", json!({"ApplicationName": "New"})).await,
        Value::Null
    );
    assert_eq!(
        values(&ok(&s, w, "GetApplicationKeys", json!({"ApplicationName": "ERP"})).await),
        ["kept"]
    );
    // Without credentials: 401 in the same shape.
    let r = send(
        s.req(Method::POST, &format!("{AGENT}/GetAppByName"))
            .json(&json!({"ApplicationName": "ERP"})),
    )
    .await;
    exception("GetAppByName", &r, 401, "UnauthorizedAccessException");
}

// ---------------------------------------------------------------------------------------------
// 10. Organizations.

/// Organization A's mapping, as A sees it.
async fn fingerprint(s: &Server, a: &Org) -> (Value, Value, Value, Vec<Value>) {
    let app = json!({"ApplicationName": "ERP"});
    (
        ok(s, &a.api, "GetAppByName", app.clone()).await,
        ok(s, &a.api, "GetApplicationKeys", app).await,
        ok(
            s,
            &a.api,
            "GetAllForeignKeysOnEntity",
            json!({"EntityType": "contact", "EntityId": 7}),
        )
        .await,
        foreign_events(s, &a.key).await,
    )
}

#[tokio::test]
async fn another_organization_reaches_none_of_the_mappings() {
    let s = Server::start().await;
    let a = org(&s, "orga").await;
    let b = org(&s, "orgb").await;
    let secret = "A-secret-value-7f3a";
    let desk = at("ERP", "desk", "");
    let phone = at("ERP", "phone", "imei");
    save(&s, &a.admin, desk, fk("id", secret, "contact", 7)).await;
    save(&s, &a.api, phone, fk("id", secret, "contact", 7)).await;
    let a_app = ok(&s, &a.api, "GetAppByName", json!({"ApplicationName": "ERP"})).await;
    let a_app_id = a_app["ForeignAppId"].as_i64().unwrap();
    let a_devices: Vec<i64> = a_app["Devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["ForeignDeviceId"].as_i64().unwrap())
        .collect();
    assert_eq!(a_devices.len(), 2);
    let before = fingerprint(&s, &a).await;

    let key = json!({"KeyName": "id", "TableName": "contact", "RecordId": 7});
    let by_value = json!({"KeyName": "id", "KeyValue": secret, "TableName": "contact"});
    let app = json!({"ApplicationName": "ERP"});
    let mut lookups: Vec<(String, Value, Value)> = vec![
        ("GetAppByName".into(), app.clone(), Value::Null),
        (
            format!("GetForeignAppEntity?foreignAppEntityId={a_app_id}"),
            json!({}),
            Value::Null,
        ),
        ("GetApplicationDevices".into(), app.clone(), json!([])),
        ("GetApplicationKeys".into(), app.clone(), json!([])),
        ("GetDeviceByName".into(), desk.named(), Value::Null),
        ("GetDeviceByIdentifier".into(), phone.ident(), Value::Null),
        ("GetKey".into(), with(desk.named(), key.clone()), Value::Null),
        ("GetKeyValue".into(), with(desk.named(), key.clone()), Value::Null),
        (
            "GetKeyOnDeviceIdentifier".into(),
            with(phone.ident(), key.clone()),
            Value::Null,
        ),
        (
            "GetKeyValueOnDeviceIdentifier".into(),
            with(phone.ident(), key.clone()),
            Value::Null,
        ),
        (
            "GetKeyByValue".into(),
            with(desk.named(), by_value.clone()),
            Value::Null,
        ),
        (
            "GetKeyByValueAndIdentifier".into(),
            with(phone.ident(), by_value.clone()),
            Value::Null,
        ),
        (
            "GetAllForeignKeysOnEntity".into(),
            json!({"EntityType": "contact", "EntityId": 7}),
            json!({}),
        ),
        ("GetDeviceKeys".into(), desk.named(), json!([])),
        ("GetDeviceKeysOnDeviceIdentifier".into(), phone.ident(), json!([])),
        (
            "GetDeviceKeysOnDeviceIdentifierTable".into(),
            with(phone.ident(), json!({"TableName": "contact"})),
            json!([]),
        ),
        (
            "GetDeviceKeysOnDeviceIdentifierTableRecordId".into(),
            with(phone.ident(), key.clone()),
            json!([]),
        ),
    ];
    for id in &a_devices {
        lookups.push((format!("GetForeignDevice?foreignDeviceId={id}"), json!({}), Value::Null));
    }
    // (method, body, whether it names what B itself saves in round 1: then it is B's own to
    // delete and is left out of that round).
    let deletes: Vec<(String, Value, bool)> = vec![
        (
            format!("DeleteForeignAppEntity?foreignAppEntityId={a_app_id}"),
            json!({}),
            false,
        ),
        ("DeleteDeviceByIdentifier".into(), phone.ident(), false),
        (
            "DeleteForeignDevice".into(),
            json!({"ForeignDevice": {"ForeignDeviceId": a_devices[0]}, "ApplicationName": "ERP"}),
            false,
        ),
        (
            "DeleteForeignDevice".into(),
            json!({"ForeignDevice": {"ForeignDeviceId": a_devices[1]}, "ApplicationName": "ERP"}),
            false,
        ),
        (
            "DeleteForeignDevice".into(),
            json!({"ForeignDevice": {"Name": "desk"}, "ApplicationName": "ERP"}),
            true,
        ),
        ("DeleteForeignKeyOnName".into(), with(desk.ident(), key.clone()), true),
        (
            "DeleteForeignKey".into(),
            with(
                phone.ident(),
                json!({"ForeignKey": {"Key": "id"}, "TableName": "", "RecordId": 0}),
            ),
            false,
        ),
    ];
    let b_user = b.admin.clone();
    // Twice for B: before B has anything of its own, and after B saved under the same names.
    for round in 0..2 {
        for who in [&b_user, &b.api] {
            for (method, body, nothing) in &lookups {
                let r = call(&s, who, method, body.clone()).await;
                assert_eq!(r.status, 200, "{method}: {}", r.text);
                assert!(
                    !r.text.contains(secret),
                    "round {round}: {method} shows A's value: {}",
                    r.text
                );
                let v = r.json();
                if round == 0 || method.contains('?') {
                    assert_eq!(&v, nothing, "round {round}: {method}");
                } else if let Some(list) = v.as_array() {
                    // B's own rows only.
                    for item in list {
                        assert_ne!(item["Value"], secret);
                        assert!(!a_devices.contains(&item["ForeignDeviceId"].as_i64().unwrap_or(0)));
                    }
                }
            }
            for (method, body, names_bs_own) in &deletes {
                if round == 0 || !names_bs_own {
                    void(&s, who, method, body.clone()).await;
                }
            }
            // Saves naming A's ids answer null and create nothing.
            assert_eq!(
                ok(
                    &s,
                    who,
                    "SaveForeignAppEntity",
                    json!({"ForeignAppEntity": {"ForeignAppId": a_app_id, "Name": "stolen"}}),
                )
                .await,
                Value::Null
            );
            assert_eq!(
                ok(
                    &s,
                    who,
                    "SaveForeignDevice",
                    json!({"ForeignDevice": {"ForeignDeviceId": a_devices[0], "Name": "stolen"}, "ApplicationName": "ERP"}),
                )
                .await,
                Value::Null
            );
            assert_eq!(fingerprint(&s, &a).await, before, "round {round}: A changed under B");
        }
        if round == 0 {
            assert_eq!(
                foreign_events(&s, &b.key).await,
                Vec::<Value>::new(),
                "B's failed tries wrote"
            );
            // B saves under A's names: B's own application.
            let mine = save(&s, &b.admin, desk, fk("id", "B-value", "contact", 7)).await;
            assert_eq!(mine["CreatedBy"], b.admin_name.as_str());
            let b_app = ok(&s, &b.api, "GetAppByName", app.clone()).await;
            assert_ne!(b_app["ForeignAppId"], a_app_id);
            assert_eq!(field_of(&b_app["Devices"], "Name"), ["desk"]);
            assert!(!a_devices.contains(&b_app["Devices"][0]["ForeignDeviceId"].as_i64().unwrap()));
            assert_eq!(
                ok(
                    &s,
                    &b.api,
                    "GetAllForeignKeysOnEntity",
                    json!({"EntityType": "contact", "EntityId": 7})
                )
                .await,
                json!({"ERP.desk.id": "B-value"})
            );
            assert_eq!(fingerprint(&s, &a).await, before, "B's save changed A");
        }
    }
    // The feeds: A's holds none of B's writes, B's none of A's.
    let b_feed = foreign_events(&s, &b.key).await;
    assert_eq!(
        types(&b_feed),
        ["ForeignAppCreated", "ForeignDeviceCreated", "ForeignKeyCreated"]
    );
    let a_ids: BTreeSet<String> = before.3.iter().map(|e| e["aggregate_id"].to_string()).collect();
    assert!(b_feed.iter().all(|e| !a_ids.contains(&e["aggregate_id"].to_string())));
    assert!(
        b_feed
            .iter()
            .all(|e| e["actor"].as_str().unwrap() != before.3[0]["actor"].as_str().unwrap())
    );
    // A still reads its own.
    assert_eq!(ok(&s, &a.api, "GetKey", with(desk.named(), key)).await["Value"], secret);
}

// ---------------------------------------------------------------------------------------------
// 11. Events.

#[tokio::test]
async fn writes_append_events_that_never_carry_the_value() {
    let s = Server::start().await;
    let o = org(&s, "events").await;
    let value = "event-secret-value-91c2";
    let d = at("ERP", "desk", "serial");
    save(&s, &o.admin, d, fk("id", value, "contact", 3)).await;
    let e = foreign_events(&s, &o.key).await;
    assert_eq!(
        types(&e),
        ["ForeignAppCreated", "ForeignDeviceCreated", "ForeignKeyCreated"]
    );
    let aggregates: Vec<&str> = e.iter().map(|e| e["aggregate_type"].as_str().unwrap()).collect();
    assert_eq!(aggregates, ["foreign_app", "foreign_device", "foreign_key"]);
    assert_eq!(e[0]["data"]["name"], "ERP");
    assert_eq!(e[1]["data"]["name"], "desk");
    assert_eq!(e[1]["data"]["deviceIdentifier"], "serial");
    let k = &e[2]["data"];
    assert_eq!(
        (
            &k["application"],
            &k["device"],
            &k["key"],
            &k["tableName"],
            &k["recordId"]
        ),
        (
            &json!("ERP"),
            &json!("desk"),
            &json!("id"),
            &json!("contact"),
            &json!(3)
        )
    );
    assert!(e.iter().all(|e| e["actor"].as_str().unwrap().starts_with("user:")));
    let key_aggregate = e[2]["aggregate_id"].clone();

    save(&s, &o.api, d, fk("id", &format!("{value}-2"), "contact", 3)).await;
    let e = foreign_events(&s, &o.key).await;
    assert_eq!(types(&e[3..]), ["ForeignKeyUpdated"]);
    assert_eq!(e[3]["aggregate_id"], key_aggregate);
    assert!(e[3]["actor"].as_str().unwrap().starts_with("api_key:"));

    void(
        &s,
        &o.api,
        "DeleteForeignKeyOnName",
        with(
            d.ident(),
            json!({"KeyName": "id", "TableName": "contact", "RecordId": 3}),
        ),
    )
    .await;
    let e = foreign_events(&s, &o.key).await;
    assert_eq!(types(&e[4..]), ["ForeignKeyDeleted"]);
    assert_eq!(e[4]["aggregate_id"], key_aggregate);
    assert_eq!(e[4]["data"]["key"], "id");

    let text = serde_json::to_string(&events(&s, &o.key).await).unwrap();
    assert!(!text.contains("event-secret-value"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// 12. XML, forms, time zones, $select.

#[tokio::test]
async fn xml_answers_are_datacontract_with_the_rights_first() {
    let s = Server::start().await;
    let o = org(&s, "xml").await;
    let w = &o.api;
    let d = at("ERP", "desk", "");
    let r = send(
        post(&s, w, "SaveForeignKey")
            .header("Accept", "application/xml")
            .json(&with(d.ident(), json!({"ForeignKey": fk("id", "a<b&c", "contact", 1)}))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.content_type, "application/xml; charset=utf-8");
    let head = format!(
        "<ForeignKey xmlns=\"{DATACONTRACT_NS}\" xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\"><TableRight><Mask>Select Update Insert Delete</Mask><Reason></Reason></TableRight><FieldProperties>"
    );
    assert!(r.text.starts_with(&head), "{}", r.text);
    assert!(r.text.ends_with("</ForeignKey>"), "{}", r.text);
    assert!(
        r.text
            .contains("<Key>id</Key><Value>a&lt;b&amp;c</Value><RecordId>1</RecordId>"),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("<CreatedBy>default</CreatedBy><TableName>contact</TableName>"),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("<Key>Value</Key><Value><FieldRight><Mask>Read Write</Mask><Reason></Reason></FieldRight><FieldType>System.String</FieldType><FieldLength>4000</FieldLength></Value>"),
        "{}",
        r.text
    );
    assert!(r.text.contains("<Mask>Read UIHintReadOnly</Mask>"), "{}", r.text);
    assert!(r.text.find("</FieldProperties>").unwrap() < r.text.find("<Key>id</Key>").unwrap());

    // Not found: a nil carrier, and a nil string.
    let key = with(
        d.named(),
        json!({"KeyName": "none", "TableName": "contact", "RecordId": 1}),
    );
    let r = send(post(&s, w, "GetKey").header("Accept", "application/xml").json(&key)).await;
    assert_eq!(r.status, 200);
    assert!(r.text.starts_with("<ForeignKey i:nil=\"true\""), "{}", r.text);
    let r = send(post(&s, w, "GetKeyValue").header("Accept", "text/xml").json(&key)).await;
    assert_eq!(r.content_type, "text/xml; charset=utf-8");
    assert!(r.text.starts_with("<string i:nil=\"true\""), "{}", r.text);
    // A found string, and a list.
    let key = with(
        d.named(),
        json!({"KeyName": "id", "TableName": "contact", "RecordId": 1}),
    );
    let r = send(
        post(&s, w, "GetKeyValue")
            .header("Accept", "application/xml")
            .json(&key),
    )
    .await;
    assert_eq!(
        r.text,
        "<string xmlns=\"http://schemas.microsoft.com/2003/10/Serialization/\">a&lt;b&amp;c</string>"
    );
    let r = send(
        post(&s, w, "GetDeviceKeys")
            .header("Accept", "application/xml")
            .json(&d.named()),
    )
    .await;
    assert!(r.text.starts_with("<ArrayOfForeignKey "), "{}", r.text);
    assert_eq!(r.text.matches("<ForeignKey>").count(), 1, "{}", r.text);
    // The rights of a reader in XML.
    s.create_user(&o.key, "xmlreader", "xmlreader-password", false).await;
    let reader = Who::Basic("xmlreader".into(), "xmlreader-password".into());
    let r = send(
        post(&s, &reader, "GetKey")
            .header("Accept", "application/xml")
            .json(&key),
    )
    .await;
    assert!(r.text.contains("<TableRight><Mask>Select</Mask>"), "{}", r.text);
    // Errors in XML too.
    let r = send(
        post(&s, &reader, "SaveForeignKey")
            .header("Accept", "application/xml")
            .json(&with(d.ident(), json!({"ForeignKey": fk("id", "x", "contact", 1)}))),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.text.contains("<ErrorType>SoAccessDeniedException</ErrorType>"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn xml_and_form_request_bodies_are_read() {
    let s = Server::start().await;
    let o = org(&s, "bodies").await;
    let w = &o.api;
    let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<SaveForeignKeyRequest>
  <ForeignKey>
    <Key>xk</Key>
    <Value>x &amp; value</Value>
    <RecordId>5</RecordId>
    <TableName>contact</TableName>
  </ForeignKey>
  <ApplicationName>ERP</ApplicationName>
  <DeviceName>desk</DeviceName>
  <DeviceIdentifier>serial</DeviceIdentifier>
</SaveForeignKeyRequest>"#;
    let r = send(
        post(&s, w, "SaveForeignKey")
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(xml),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["Value"], "x & value");
    assert_eq!(v["RecordId"], 5);
    let serial = at("ERP", "desk", "serial");
    assert_eq!(get(&s, w, serial, "xk", "contact", 5).await["Value"], "x & value");

    // A form body: `ForeignKey.Key=...` makes the carrier.
    let r = send(post(&s, w, "SaveForeignKey").form(&[
        ("ForeignKey.Key", "fk"),
        ("ForeignKey.Value", "form välue"),
        ("ForeignKey.RecordId", "6"),
        ("ForeignKey.TableName", "contact"),
        ("ApplicationName", "ERP"),
        ("DeviceName", "desk"),
        ("DeviceIdentifier", "serial"),
    ]))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["Value"], "form välue");
    assert_eq!(get(&s, w, serial, "fk", "contact", 6).await["Value"], "form välue");
    // Reads by form and by XML.
    let r = send(post(&s, w, "GetKeyValueOnDeviceIdentifier").form(&[
        ("ApplicationName", "ERP"),
        ("DeviceName", "desk"),
        ("DeviceIdentifier", "serial"),
        ("KeyName", "xk"),
        ("TableName", "contact"),
        ("RecordId", "5"),
    ]))
    .await;
    assert_eq!(r.json(), "x & value");
    let r = send(
        post(&s, w, "GetDeviceKeysOnDeviceIdentifier")
            .header("Content-Type", "text/xml")
            .body("<r><ApplicationName>ERP</ApplicationName><DeviceName>desk</DeviceName><DeviceIdentifier>serial</DeviceIdentifier></r>"),
    )
    .await;
    assert_eq!(values(&r.json()), ["x & value", "form välue"]);
}

#[tokio::test]
async fn so_timezone_leaves_the_utc_created_and_updated_dates_and_select_nulls_the_rest() {
    let s = Server::start().await;
    let o = org(&s, "zones").await;
    let w = &o.api;
    let d = at("ERP", "desk", "");
    let utc = save(&s, w, d, fk("id", "v", "contact", 1)).await;
    let at_utc = server_date(&utc["CreatedDate"]);
    let key = with(
        d.ident(),
        json!({"KeyName": "id", "TableName": "contact", "RecordId": 1}),
    );
    let plain = at_utc.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();

    // SuperOffice: "Created and updated date ... are always UTC, and so their values are not
    // affected by the TimeZone header. If you specify includeTZOffset they are always tagged
    // as UTC times." With a zone (id 261 or code NO, Oslo) the UTC value comes without a
    // zone specifier, as every date then does.
    for zone in ["261", "NO", "US-NY"] {
        let r = send(
            post(&s, w, "GetKeyOnDeviceIdentifier")
                .header("SO-TimeZone", zone)
                .json(&key),
        )
        .await;
        let v = r.json();
        assert_eq!(v["CreatedDate"], plain.as_str(), "{zone}");
        assert_eq!(v["UpdatedDate"], plain.as_str(), "{zone}");
    }
    // includeTZOffset tags them as UTC.
    for zone in ["261, includeTZOffset", "NO,includeTZOffset", "460, includetzoffset"] {
        let r = send(
            post(&s, w, "GetKeyOnDeviceIdentifier")
                .header("SO-TimeZone", zone)
                .json(&key),
        )
        .await;
        let v = r.json();
        assert_eq!(v["CreatedDate"], format!("{plain}Z").as_str(), "{zone}");
        assert_eq!(server_date(&v["UpdatedDate"]), at_utc);
    }
    // Over XML too.
    let r = send(
        post(&s, w, "GetKeyOnDeviceIdentifier")
            .header("SO-TimeZone", "261")
            .header("Accept", "application/xml")
            .json(&key),
    )
    .await;
    assert!(
        r.text.contains(&format!("<CreatedDate>{plain}</CreatedDate>")),
        "{}",
        r.text
    );
    // An unknown zone is a bad request.
    let r = send(
        post(&s, w, "GetKeyOnDeviceIdentifier")
            .header("SO-TimeZone", "Atlantis")
            .json(&key),
    )
    .await;
    assert!(invalid_detail("GetKeyOnDeviceIdentifier", &r).starts_with("SO-TimeZone: "));

    // $select keeps the listed properties and nulls the others.
    let v = ok(&s, w, "GetKeyOnDeviceIdentifier?$select=Key,Value", key.clone()).await;
    assert_eq!(v["Key"], "id");
    assert_eq!(v["Value"], "v");
    for gone in [
        "RecordId",
        "CreatedDate",
        "UpdatedDate",
        "UpdatedBy",
        "CreatedBy",
        "TableName",
        "TableRight",
        "FieldProperties",
    ] {
        assert_eq!(v[gone], Value::Null, "{gone}: {v}");
        assert!(v.as_object().unwrap().contains_key(gone), "{gone} is missing, not null");
    }
    let list = ok(&s, w, "GetDeviceKeysOnDeviceIdentifier?$select=value", d.ident()).await;
    assert_eq!(
        list,
        json!([{"Key": null, "Value": "v", "RecordId": null, "CreatedDate": null, "UpdatedDate": null, "UpdatedBy": null, "CreatedBy": null, "TableName": null, "TableRight": null, "FieldProperties": null}])
    );
}
