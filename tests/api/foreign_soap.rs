//! The ForeignSystem agent over SOAP with a real client (zeep) loading the WSDL, and with
//! hand-written envelopes: the Services86 contract, faults, seed-style headers, rights and nils.

use crate::common::*;
use crate::pg;
use crate::superoffice::zeep_python;
use reqwest::Method;
use serde_json::{Value, json};

const NS: &str = "http://www.superoffice.net/ws/crm/NetServer/Services86";
const SVC: &str = "/Remote/Services86/ForeignSystem.svc";
const AGENT: &str = "/api/v1/Agents/ForeignSystem";
const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";

/// The value tests/soap/zeep_foreign.py saves: astral characters, a combining mark,
/// Cyrillic, tab, CR LF and spaces at both ends.
const VALUE: &str = " \u{1D11E} ключ e\u{301} \u{1F980}\tx\r\ny ";

/// The operations of Remote/Services86/ForeignSystem.svc (GetAllForeignKeysOnEntity is
/// Services88's).
const SERVICES86_OPS: [&str; 29] = [
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
    "GetDeviceKeys",
    "GetApplicationKeys",
    "GetDeviceKeysOnDeviceIdentifier",
    "GetDeviceKeysOnDeviceIdentifierTable",
    "GetDeviceKeysOnDeviceIdentifierTableRecordId",
];

/// A REST call as the bootstrap admin (Basic); answers the JSON body of a 200.
async fn rest(s: &Server, method: &str, body: Value) -> Value {
    let r = s
        .admin(Method::POST, &format!("{AGENT}/{method}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v = json(r).await;
    assert_eq!(status, 200, "{method}: {v}");
    v
}

/// A REST call with an organization's API key.
async fn rest_key(s: &Server, api_key: &str, method: &str, body: Value) -> Value {
    let r = s
        .req(Method::POST, &format!("{AGENT}/{method}"))
        .header("X-API-Key", api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{method}");
    json(r).await
}

fn envelope11(op: &str, ticket: &str, body: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="{SOAP11}"><s:Header><Credentials xmlns="{NS}"><Ticket>{ticket}</Ticket></Credentials></s:Header><s:Body><{op} xmlns="{NS}">{body}</{op}></s:Body></s:Envelope>"#
    )
}

/// POST a SOAP 1.1 request with its SOAPAction; answers (status, body).
async fn post11(s: &Server, path: &str, service: &str, op: &str, envelope: String) -> (u16, String) {
    let r = s
        .req(Method::POST, path)
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", format!("\"{NS}/{service}/{op}\""))
        .body(envelope)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// A ForeignSystem call over SOAP 1.1 with a ticket; the 200 answer's text.
async fn soap(s: &Server, ticket: &str, op: &str, body: &str) -> String {
    let (status, text) = post11(s, SVC, "ForeignSystem", op, envelope11(op, ticket, body)).await;
    assert_eq!(status, 200, "{text}");
    text
}

/// A SoPrincipal ticket for a user.
async fn ticket(s: &Server, user: &str, password: &str) -> String {
    let body = format!(
        r#"<s:Envelope xmlns:s="{SOAP11}"><s:Body><AuthenticateUsernamePassword xmlns="{NS}"><UserName>{user}</UserName><Password>{password}</Password></AuthenticateUsernamePassword></s:Body></s:Envelope>"#
    );
    let (status, text) = post11(
        s,
        "/Remote/Services86/SoPrincipal.svc",
        "SoPrincipal",
        "AuthenticateUsernamePassword",
        body,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        text.contains("<AuthenticationSucceeded>true</AuthenticationSucceeded>"),
        "{text}"
    );
    between(&text, "<Ticket>", "</Ticket>").to_string()
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> &'a str {
    let start = s.find(a).unwrap_or_else(|| panic!("{a} not in {s}")) + a.len();
    &s[start..start + s[start..].find(b).unwrap_or_else(|| panic!("{b} not in {s}"))]
}

fn succeeded(text: &str) -> bool {
    text.contains(&format!(r#"<Succeeded xmlns="{NS}">true</Succeeded>"#))
}

/// Run tests/soap/zeep_foreign.py against a server; its JSON.
async fn run_zeep(py: std::path::PathBuf, s: &Server) -> Value {
    let base = s.base.clone();
    let pw = s.admin_password.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(py)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/soap/zeep_foreign.py"))
            .args([&base, "admin", &pw])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "zeep failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

/// What zeep answered, and that REST sees what zeep saved (byte for byte) and not what it
/// deleted.
async fn zeep_walk(s: &Server, py: std::path::PathBuf) {
    let v = run_zeep(py, s).await;

    // SaveForeignKey with a type-factory carrier: the value came back exactly, and every read
    // of it (GetKey, GetKeyByValue, GetDeviceKeys) answers the same key.
    let saved = &v["saved"];
    assert_eq!(saved["Value"], VALUE);
    assert_eq!(
        (&saved["Key"], &saved["RecordId"], &saved["TableName"]),
        (&json!("crm.id"), &json!(42), &json!("contact"))
    );
    assert_eq!(
        (&saved["CreatedBy"], &saved["UpdatedBy"]),
        (&json!("admin"), &json!("admin"))
    );
    assert!(saved["CreatedDate"].as_str().unwrap().ends_with("+00:00"), "{saved}");
    assert_eq!(saved["CreatedDate"], saved["UpdatedDate"]);
    assert_eq!(v["get_key"], *saved);
    assert_eq!(v["by_value"], *saved);
    assert_eq!(v["get_key_value"], VALUE);
    let by_ident = &v["by_value_and_identifier"];
    assert_eq!(
        (
            &by_ident["Key"],
            &by_ident["Value"],
            &by_ident["RecordId"],
            &by_ident["TableName"]
        ),
        (&json!("erp.no"), &json!("s2"), &json!(2), &json!("sale"))
    );
    // GetDeviceKeys: the device without identifier only (not the identified one's keys).
    let dk = v["device_keys"].as_array().unwrap();
    assert_eq!(dk.len(), 2, "{dk:?}");
    assert_eq!(dk[0], *saved);
    assert_eq!(
        (&dk[1]["Value"], &dk[1]["TableName"]),
        (&json!("second"), &json!("project"))
    );

    // zeep decodes the masks as the WSDL's xs:list of single flags, and FieldProperties as
    // FieldPropertyDictionaryKeyValuePair entries.
    let full = json!(["Select", "Update", "Insert", "Delete"]);
    let read_write = json!(["Read", "Write"]);
    let read_only = json!(["Read", "UIHintReadOnly"]);
    let r = &v["saved_rights"];
    assert_eq!(r["TableRight"], json!({"Mask": full, "Reason": null}));
    let fp = r["FieldProperties"].as_object().unwrap();
    let mut names: Vec<&str> = fp.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "CreatedBy",
            "CreatedDate",
            "Key",
            "RecordId",
            "TableName",
            "UpdatedBy",
            "UpdatedDate",
            "Value"
        ]
    );
    assert_eq!(
        fp["Value"],
        json!({"Mask": read_write, "FieldType": "System.String", "FieldLength": 4000})
    );
    assert_eq!(
        fp["Key"],
        json!({"Mask": read_write, "FieldType": "System.String", "FieldLength": 255})
    );
    assert_eq!(
        fp["RecordId"],
        json!({"Mask": read_write, "FieldType": "System.Int32", "FieldLength": 0})
    );
    for f in ["CreatedBy", "CreatedDate", "UpdatedBy", "UpdatedDate"] {
        assert_eq!(fp[f]["Mask"], read_only, "{f}");
    }

    // Devices and applications.
    let app_id = v["app_id"].as_i64().unwrap();
    assert!(app_id > 0);
    let added = &v["added_device"];
    assert_eq!(
        (
            &added["Name"],
            &added["DeviceIdentifier"],
            &added["ForeignAppId"],
            &added["CreatedBy"]
        ),
        (&json!("zeep-phone"), &json!("IMEI-1"), &json!(app_id), &json!("admin"))
    );
    let dr = &v["added_device_rights"];
    assert_eq!(dr["TableRight"]["Mask"], full);
    for f in ["ForeignDeviceId", "ForeignAppId", "CreatedDate", "AssociateFullName"] {
        assert_eq!(dr["FieldProperties"][f]["Mask"], read_only, "{f}");
    }
    for f in ["Name", "DeviceIdentifier"] {
        assert_eq!(dr["FieldProperties"][f]["Mask"], read_write, "{f}");
    }
    // The device without identifier has an empty DeviceIdentifier element: None to zeep.
    assert_eq!(
        v["devices"],
        json!([
            ["zeep-device", null],
            ["zeep-device", "zeep-ident"],
            ["zeep-phone", "IMEI-1"]
        ])
    );
    assert_eq!(
        v["app"],
        json!({"Name": "zeep-app", "CreatedBy": {"Name": "admin", "Type": "InternalAssociate"}, "Devices": 3})
    );
    let afp = &v["app_rights"]["FieldProperties"];
    assert_eq!(v["app_rights"]["TableRight"]["Mask"], full);
    assert_eq!(afp["Name"]["Mask"], read_write);
    assert_eq!(
        afp["Devices"],
        json!({"Mask": read_only, "FieldType": "SuperOffice.CRM.Services.ForeignDevice[]", "FieldLength": 0})
    );
    assert_eq!(afp["CreatedBy"]["FieldType"], "SuperOffice.CRM.Services.Associate");
    assert_eq!(
        v["app_by_id"],
        json!({"Name": "zeep-app", "Devices": ["zeep-device", "zeep-device", "zeep-phone"]})
    );
    assert_eq!(v["unknown_app"], Value::Null);

    // The deletes: the blank TableName took the key name from both tables, RecordId 0 took
    // both records of "sale"; the "other" table's key is left.
    let gone = &v["after_delete"];
    for k in ["contact", "project", "value", "sale", "device_keys"] {
        assert_eq!(gone[k], Value::Null, "{k}: {gone}");
    }
    assert_eq!(
        (&gone["other"]["Value"], &gone["other"]["RecordId"]),
        (&json!("o3"), &json!(3))
    );
    // Which answers were `<Response i:nil="true"/>` on the wire (checked in the envelope zeep
    // received): the not-found single answers, never the lists.
    assert_eq!(
        v["nil_answers"],
        json!([
            "GetForeignAppEntity",
            "GetKey",
            "GetKey",
            "GetKeyValue",
            "GetKeyOnDeviceIdentifier",
            "GetKey"
        ])
    );

    // SOAP 1.2 binding: answered in a SOAP 1.2 envelope, the value intact.
    let s12 = &v["soap12"];
    assert_eq!(s12["envelope"], format!("{{{SOAP12}}}Envelope"));
    assert_eq!(s12["saved"]["Value"], VALUE);
    assert_eq!(s12["got"], s12["saved"]);
    assert_eq!(s12["mask"], full);

    // Services87 has Services86's 29 operations; Services88 adds GetAllForeignKeysOnEntity,
    // whose StringDictionary zeep decodes as key/value pairs ("app.device.key": value).
    assert_eq!(
        (&v["operations87"], &v["has_all_on_entity87"]),
        (&json!(29), &json!(false))
    );
    assert_eq!(
        (&v["operations88"], &v["has_all_on_entity88"]),
        (&json!(30), &json!(true))
    );
    assert_eq!(
        v["all_on_entity88"],
        json!({"zeep-app.zeep-device.erp.no": "o3"}),
        "{}",
        v["all_on_entity88"]
    );
    assert_eq!(v["got88"], json!({"Value": VALUE, "mask": full}));

    // Failures travel in the header: Succeeded false + ExceptionInfo, no Response.
    let cc = &v["control_char"];
    assert!(
        cc.as_str()
            .is_some_and(|m| m.starts_with("refused by the client: All strings must be XML compatible"))
            || cc["ExceptionType"] == "ArgumentException",
        "{cc}"
    );
    assert_eq!(
        v["too_long"],
        json!({
            "Succeeded": false,
            "ExceptionType": "ArgumentException",
            "Message": "ForeignKey.Value: must be at most 4000 characters",
            "Source": "ForeignSystem.SaveForeignKey",
            "Response": null,
        })
    );
    assert_eq!(v["bad_ticket"]["ExceptionType"], "SoAuthenticationException");
    assert_eq!(v["bad_ticket"]["Succeeded"], false);
    assert_eq!(v["bad_not_stored"], Value::Null);

    // Over REST: what zeep saved is there byte for byte ...
    let (a, d) = ("zeep-app", "zeep-device");
    let k = rest(
        s,
        "GetKeyByValue",
        json!({"ApplicationName": a, "DeviceName": d, "KeyName": "soap12", "KeyValue": VALUE, "TableName": "person"}),
    )
    .await;
    assert_eq!(k["Value"].as_str().unwrap().as_bytes(), VALUE.as_bytes());
    assert_eq!((&k["RecordId"], &k["CreatedBy"]), (&json!(5), &json!("admin")));
    let other = rest(
        s,
        "GetKeyByValueAndIdentifier",
        json!({"ApplicationName": a, "DeviceName": d, "DeviceIdentifier": "zeep-ident", "KeyName": "erp.no", "KeyValue": "o3", "TableName": "other"}),
    )
    .await;
    assert_eq!(other["RecordId"], 3);
    let devices = rest(s, "GetApplicationDevices", json!({"ApplicationName": a})).await;
    let mut pairs: Vec<(String, String)> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["Name"].as_str().unwrap().to_string(),
                d["DeviceIdentifier"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            ("zeep-device".to_string(), String::new()),
            ("zeep-device".to_string(), "zeep-ident".to_string()),
            ("zeep-phone".to_string(), "IMEI-1".to_string())
        ]
    );
    // ... and what it deleted (or the server refused) is gone.
    let bad = json!({"ApplicationName": a, "DeviceName": d, "KeyName": "bad"});
    assert_eq!(rest(s, "GetKey", bad).await, Value::Null);
    for (key, value, table) in [("crm.id", VALUE, "contact"), ("crm.id", "second", "project")] {
        let body =
            json!({"ApplicationName": a, "DeviceName": d, "KeyName": key, "KeyValue": value, "TableName": table});
        assert_eq!(rest(s, "GetKeyByValue", body).await, Value::Null, "{key} {table}");
    }
    for value in ["s1", "s2"] {
        let body = json!({"ApplicationName": a, "DeviceName": d, "DeviceIdentifier": "zeep-ident", "KeyName": "erp.no", "KeyValue": value, "TableName": "sale"});
        assert_eq!(
            rest(s, "GetKeyByValueAndIdentifier", body).await,
            Value::Null,
            "{value}"
        );
    }
    let left = rest(s, "GetDeviceKeys", json!({"ApplicationName": a, "DeviceName": d})).await;
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
    assert_eq!(left[0]["Key"], "soap12");
    let all = rest(s, "GetApplicationKeys", json!({"ApplicationName": a})).await;
    let mut keys: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["Key"].as_str().unwrap())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["erp.no", "soap12"]);
}

#[tokio::test]
async fn zeep_consumes_the_foreign_system_wsdl_and_calls_the_operations() {
    let Some(py) = zeep_python() else { return };
    let s = Server::start().await;
    zeep_walk(&s, py).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeep_consumes_the_foreign_system_wsdl_on_postgres() {
    let Some(py) = zeep_python() else { return };
    let Some(admin) = pg::admin_url("zeep_consumes_the_foreign_system_wsdl_on_postgres") else {
        return;
    };
    let url = pg::fresh_database(&admin).await;
    let s = Server::start_with(
        Options::default()
            .env("KEYGATE_DATABASE_URL", &url)
            .env("KEYGATE_SECRET", "a-shared-server-secret-of-at-least-32-bytes"),
    )
    .await;
    zeep_walk(&s, py).await;
}

#[tokio::test]
async fn the_services86_wsdl_lists_its_29_operations_at_the_servers_address() {
    let s = Server::start().await;
    let r = s.req(Method::GET, &format!("{SVC}?wsdl")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/xml"));
    let w = r.text().await.unwrap();
    for op in SERVICES86_OPS {
        assert!(w.contains(&format!(r#"<xs:element name="{op}">"#)), "{op}");
        assert!(w.contains(&format!(r#"<wsdl:message name="{op}Request">"#)), "{op}");
        // In the portType and in both bindings, each with its SOAPAction.
        assert_eq!(
            w.matches(&format!(r#"<wsdl:operation name="{op}">"#)).count(),
            3,
            "{op}"
        );
        assert_eq!(
            w.matches(&format!(r#"soapAction="{NS}/ForeignSystem/{op}""#)).count(),
            2,
            "{op}"
        );
    }
    assert_eq!(w.matches("<wsdl:operation ").count(), 29 * 3);
    assert!(!w.contains("GetAllForeignKeysOnEntity"));
    // The rights masks are flags: xs:lists of their single flags.
    assert!(w.contains(
        r#"<xs:simpleType name="ETableRight"><xs:list><xs:simpleType><xs:restriction base="xs:string"><xs:enumeration value="Select"/><xs:enumeration value="Update"/><xs:enumeration value="Insert"/><xs:enumeration value="Delete"/>"#
    ));
    assert!(w.contains(
        r#"<xs:simpleType name="EFieldRight"><xs:list><xs:simpleType><xs:restriction base="xs:string"><xs:enumeration value="Read"/><xs:enumeration value="Write"/>"#
    ));
    assert!(!w.contains(r#"<xs:enumeration value="FULL"/>"#));
    assert!(w.contains(r#"<xs:element minOccurs="0" name="Mask" type="tns:ETableRight"/>"#));
    assert!(w.contains(r#"<xs:element minOccurs="0" name="Mask" type="tns:EFieldRight"/>"#));
    // Both ports at this server's address.
    let address = format!("{}{SVC}", s.base);
    assert!(w.contains(&format!(r#"<soap:address location="{address}"/>"#)), "{w}");
    assert!(w.contains(&format!(r#"<soap12:address location="{address}"/>"#)), "{w}");
    assert!(w.contains(r#"<wsdl:port name="Soap12Binding_ForeignSystem" binding="tns:Soap12Binding_ForeignSystem">"#));
}

/// The namespace of a service version.
fn ns(version: u8) -> String {
    format!("http://www.superoffice.net/ws/crm/NetServer/Services{version}")
}

/// POST a SOAP 1.1 call to a version's ForeignSystem.svc: the operation element in `body_ns`,
/// with `action` as the SOAPAction; answers (status, body).
async fn call_version(
    s: &Server,
    t: &str,
    version: u8,
    body_ns: &str,
    action: &str,
    op: &str,
    inner: &str,
) -> (u16, String) {
    let envelope = format!(
        r#"<s:Envelope xmlns:s="{SOAP11}"><s:Header><Credentials xmlns="{body_ns}"><Ticket>{t}</Ticket></Credentials></s:Header><s:Body><{op} xmlns="{body_ns}">{inner}</{op}></s:Body></s:Envelope>"#
    );
    let r = s
        .req(Method::POST, &format!("/Remote/Services{version}/ForeignSystem.svc"))
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", format!("\"{action}\""))
        .body(envelope)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn each_version_has_its_namespace_actions_operations_and_rights_types() {
    let s = Server::start().await;
    for (version, count) in [(86, 29), (87, 29), (88, 30)] {
        let path = format!("/Remote/Services{version}/ForeignSystem.svc");
        let r = s.req(Method::GET, &format!("{path}?wsdl")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let w = r.text().await.unwrap();
        let ns = ns(version);
        assert!(w.contains(&format!(r#"targetNamespace="{ns}""#)), "{version}");
        for other in [86, 87, 88].into_iter().filter(|v| *v != version) {
            assert!(
                !w.contains(&format!("Services{other}")),
                "{version} names Services{other}"
            );
        }
        assert_eq!(w.matches("<wsdl:operation ").count(), count * 3, "{version}");
        assert_eq!(
            w.matches(&format!(r#"soapAction="{ns}/ForeignSystem/GetKey""#)).count(),
            2
        );
        assert_eq!(w.contains("GetAllForeignKeysOnEntity"), version >= 88);
        assert!(w.contains(&format!(r#"<soap:address location="{}{path}"/>"#, s.base)));
        // The rights masks: xs:lists of single flags, as each version's published WSDL.
        let enumeration = |name: &str| -> Vec<String> {
            let start = w.find(&format!(r#"<xs:simpleType name="{name}"><xs:list>"#)).unwrap();
            let end = start + w[start..].find("</xs:list>").unwrap();
            w[start..end]
                .split(r#"<xs:enumeration value=""#)
                .skip(1)
                .map(|v| v[..v.find('"').unwrap()].to_string())
                .collect()
        };
        let mut table = vec!["Select", "Update", "Insert", "Delete", "Filtering", "RestrictedUpdate"];
        let mut field = vec![
            "Read",
            "Write",
            "Unused1",
            "Unused2",
            "Unused3",
            "Unused4",
            "UIHintMandatory",
            "UIHintReadOnly",
            "UndefinedValue256",
        ];
        if version >= 88 {
            table.extend(["Unused1", "Uninitialized", "R", "F"]);
            field.push("Nullable");
        }
        assert_eq!(enumeration("ETableRight"), table, "{version}");
        assert_eq!(enumeration("EFieldRight"), field, "{version}");
    }
}

#[tokio::test]
async fn services88_answers_get_all_foreign_keys_on_entity_as_a_string_dictionary() {
    let s = Server::start().await;
    for (table, record, value) in [("contact", 5, "c5"), ("contact", 6, "c6")] {
        rest(
            &s,
            "SaveForeignKey",
            json!({"ForeignKey": {"Key": "erp.id", "Value": value, "TableName": table, "RecordId": record},
                   "ApplicationName": "ERP", "DeviceName": "sync"}),
        )
        .await;
    }
    let t = ticket(&s, "admin", &s.admin_password).await;
    let op = "GetAllForeignKeysOnEntity";
    let ns88 = ns(88);
    let (status, text) = call_version(
        &s,
        &t,
        88,
        &ns88,
        &format!("{ns88}/ForeignSystem/{op}"),
        op,
        "<EntityType>contact</EntityType><EntityId>5</EntityId>",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(&format!(
            r#"<Succeeded xmlns="{ns88}">true</Succeeded></s:Header><s:Body><GetAllForeignKeysOnEntityResponse xmlns="{ns88}"><Response><StringKeyValuePair><Key>ERP.sync.erp.id</Key><Value>c5</Value></StringKeyValuePair></Response></GetAllForeignKeysOnEntityResponse>"#
        )),
        "{text}"
    );
    // Services87 lacks it: an unknown SOAP action there, as in Services86.
    let ns87 = ns(87);
    let (status, text) = call_version(
        &s,
        &t,
        87,
        &ns87,
        &format!("{ns87}/ForeignSystem/{op}"),
        op,
        "<EntityType>contact</EntityType><EntityId>5</EntityId>",
    )
    .await;
    assert_eq!(status, 500);
    assert!(
        text.contains("<faultcode>s:Client</faultcode>")
            && text.contains("ForeignSystem has no operation GetAllForeignKeysOnEntity in Services87"),
        "{text}"
    );
}

#[tokio::test]
async fn a_call_in_another_versions_namespace_or_action_is_an_unknown_action() {
    let s = Server::start().await;
    let t = ticket(&s, "admin", &s.admin_password).await;
    let before = s.snapshot().await;
    let op = "AddDeviceByIdentifier";
    let inner = "<ApplicationName>ERP</ApplicationName><DeviceName>sync</DeviceName>";
    let (ns86, ns88) = (ns(86), ns(88));
    // Services88's action at Services86.
    let (status, text) = call_version(&s, &t, 86, &ns86, &format!("{ns88}/ForeignSystem/{op}"), op, inner).await;
    assert_eq!(status, 500);
    assert!(text.contains("no operation for the SOAP action"), "{text}");
    // Services86's body at Services88 (with no SOAPAction to go by).
    let (status, text) = call_version(&s, &t, 88, &ns86, "", op, inner).await;
    assert_eq!(status, 500);
    assert!(
        text.contains(&format!("ForeignSystem has no operation {op} in namespace {ns86}")),
        "{text}"
    );
    // An action that names another operation than the body.
    let (status, text) = call_version(&s, &t, 88, &ns88, &format!("{ns88}/ForeignSystem/GetKey"), op, inner).await;
    assert_eq!(status, 500);
    assert!(
        text.contains("does not match the operation in the Body, AddDeviceByIdentifier"),
        "{text}"
    );
    assert_eq!(before, s.snapshot().await, "nothing was written");
    // The same call, right: Services88's namespace and action.
    let (status, text) = call_version(&s, &t, 88, &ns88, &format!("{ns88}/ForeignSystem/{op}"), op, inner).await;
    assert_eq!(status, 200);
    assert!(succeeded88(&text), "{text}");
}

fn succeeded88(text: &str) -> bool {
    text.contains(&format!(r#"<Succeeded xmlns="{}">true</Succeeded>"#, ns(88)))
}

#[tokio::test]
async fn get_all_foreign_keys_on_entity_is_not_a_services86_operation() {
    let s = Server::start().await;
    let t = ticket(&s, "admin", &s.admin_password).await;
    let op = "GetAllForeignKeysOnEntity";
    let body = "<EntityType>contact</EntityType><EntityId>1</EntityId>";
    let (status, text) = post11(&s, SVC, "ForeignSystem", op, envelope11(op, &t, body)).await;
    assert_eq!(status, 500);
    assert!(
        text.contains("<s:Fault><faultcode>s:Client</faultcode>")
            && text.contains("ForeignSystem has no operation GetAllForeignKeysOnEntity"),
        "{text}"
    );
    // In SOAP 1.2: a Sender fault.
    let env12 = format!(
        r#"<s:Envelope xmlns:s="{SOAP12}"><s:Header><Credentials xmlns="{NS}"><Ticket>{t}</Ticket></Credentials></s:Header><s:Body><{op} xmlns="{NS}">{body}</{op}></s:Body></s:Envelope>"#
    );
    let r = s
        .req(Method::POST, SVC)
        .header("Content-Type", "application/soap+xml; charset=utf-8")
        .body(env12)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("<s:Value>s:Sender</s:Value>")
            && text.contains("ForeignSystem has no operation GetAllForeignKeysOnEntity"),
        "{text}"
    );
    // Over REST it exists.
    assert_eq!(
        rest(&s, op, json!({"EntityType": "contact", "EntityId": 1})).await,
        json!({})
    );
}

#[tokio::test]
async fn a_seed_style_soap12_envelope_saves_a_foreign_key() {
    let s = Server::start().await;
    let t = ticket(&s, "admin", &s.admin_password).await;
    // As seed 001: ApplicationToken and Credentials directly under the Envelope, prefixed
    // elements, xsi:type attributes. The value has a CR (written as a character reference).
    let envelope = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope
 xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
 xmlns:xsd="http://www.w3.org/2001/XMLSchema"
 xmlns:ForeignSystem="http://www.superoffice.net/ws/crm/NetServer/Services86">
  <ForeignSystem:ApplicationToken>1234567-1234-9876</ForeignSystem:ApplicationToken>
  <ForeignSystem:Credentials>
    <ForeignSystem:Ticket>{t}</ForeignSystem:Ticket>
  </ForeignSystem:Credentials>
 <SOAP-ENV:Body>
   <ForeignSystem:SaveForeignKey>
    <ForeignSystem:ForeignKey xsi:type="ForeignSystem:ForeignKey">
     <ForeignSystem:Key xsi:type="xsd:string">erp.id</ForeignSystem:Key>
     <ForeignSystem:Value xsi:type="xsd:string">line1&#xD;
line2 &#x1F980;</ForeignSystem:Value>
     <ForeignSystem:RecordId xsi:type="xsd:int">12</ForeignSystem:RecordId>
     <ForeignSystem:TableName xsi:type="xsd:string">contact</ForeignSystem:TableName>
    </ForeignSystem:ForeignKey>
    <ForeignSystem:ApplicationName xsi:type="xsd:string">ERP</ForeignSystem:ApplicationName>
    <ForeignSystem:DeviceName xsi:type="xsd:string">server</ForeignSystem:DeviceName>
    <ForeignSystem:DeviceIdentifier xsi:type="xsd:string">node-1</ForeignSystem:DeviceIdentifier>
   </ForeignSystem:SaveForeignKey>
 </SOAP-ENV:Body>
</SOAP-ENV:Envelope>
"#
    );
    let r = s
        .req(Method::POST, SVC)
        .header("Content-Type", "application/soap+xml; charset=utf-8")
        .body(envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/soap+xml")
    );
    let text = r.text().await.unwrap();
    assert!(text.contains(&format!(r#"<s:Envelope xmlns:s="{SOAP12}""#)), "{text}");
    assert!(succeeded(&text), "{text}");
    // The CR travels back as a character reference: an XML parser would read a raw CR as LF.
    assert!(
        text.contains("<Key>erp.id</Key><Value>line1&#xD;\nline2 \u{1F980}</Value><RecordId>12</RecordId>"),
        "{text}"
    );
    let k = rest(
        &s,
        "GetKeyOnDeviceIdentifier",
        json!({"ApplicationName": "ERP", "DeviceName": "server", "DeviceIdentifier": "node-1", "KeyName": "erp.id", "TableName": "contact", "RecordId": 12}),
    )
    .await;
    assert_eq!(k["Value"], "line1\r\nline2 \u{1F980}");
    assert_eq!(k["CreatedBy"], "admin");
    // GetKeyValue's string answer escapes the CR the same way.
    let text = soap(
        &s,
        &t,
        "GetKeyValueOnDeviceIdentifier",
        "<ApplicationName>ERP</ApplicationName><DeviceName>server</DeviceName><DeviceIdentifier>node-1</DeviceIdentifier><KeyName>erp.id</KeyName>",
    )
    .await;
    assert!(
        text.contains("<Response>line1&#xD;\nline2 \u{1F980}</Response>"),
        "{text}"
    );
}

#[tokio::test]
async fn a_non_administrator_reads_but_may_not_save_over_soap() {
    let s = Server::start().await;
    let (_, api_key) = s.create_org("acme").await;
    s.create_user(&api_key, "clerk", "password-long-enough", false).await;
    // The organization's API key (an administrator) maps a key.
    rest_key(
        &s,
        &api_key,
        "SaveForeignKey",
        json!({"ForeignKey": {"Key": "k", "Value": "v", "RecordId": 1, "TableName": "contact"}, "ApplicationName": "App", "DeviceName": "Dev"}),
    )
    .await;
    let t = ticket(&s, "clerk", "password-long-enough").await;
    let before = s.snapshot().await;
    for (app, key) in [("App", "k2"), ("NewApp", "k")] {
        let text = soap(
            &s,
            &t,
            "SaveForeignKey",
            &format!("<ForeignKey><Key>{key}</Key><Value>w</Value><RecordId>2</RecordId><TableName>contact</TableName></ForeignKey><ApplicationName>{app}</ApplicationName><DeviceName>Dev</DeviceName>"),
        )
        .await;
        assert!(
            text.contains(&format!(r#"<Succeeded xmlns="{NS}">false</Succeeded>"#))
                && text.contains("<ExceptionType>SoAccessDeniedException</ExceptionType>")
                && text.contains("<Source>ForeignSystem.SaveForeignKey</Source>")
                && text.contains(&format!(r#"<SaveForeignKeyResponse xmlns="{NS}"/>"#))
                && !text.contains("<Response"),
            "{text}"
        );
    }
    // Nothing stored: no event, no key, not even the new application.
    assert_eq!(before, s.snapshot().await);
    assert_eq!(
        rest_key(&s, &api_key, "GetAppByName", json!({"ApplicationName": "NewApp"})).await,
        Value::Null
    );
    let keys = rest_key(
        &s,
        &api_key,
        "GetDeviceKeys",
        json!({"ApplicationName": "App", "DeviceName": "Dev"}),
    )
    .await;
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(keys[0]["Key"], "k");
    // The clerk reads, with Select rights and the reason in the XML.
    let text = soap(
        &s,
        &t,
        "GetKey",
        "<ApplicationName>App</ApplicationName><DeviceName>Dev</DeviceName><KeyName>k</KeyName><TableName>contact</TableName><RecordId>1</RecordId>",
    )
    .await;
    assert!(succeeded(&text), "{text}");
    assert!(
        text.contains("<Response><TableRight><Mask>Select</Mask><Reason>only an administrator may change the foreign system mappings</Reason></TableRight>")
            && text.contains("<Key>Value</Key><Value><FieldRight><Mask>Read</Mask><Reason>only an administrator may change the foreign system mappings</Reason></FieldRight>")
            && text.contains("<Key>k</Key><Value>v</Value>"),
        "{text}"
    );
    // The clerk's ticket reaches the clerk's organization only: the bootstrap org's keys
    // are not there.
    rest(
        &s,
        "SaveForeignKey",
        json!({"ForeignKey": {"Key": "k", "Value": "default-org", "RecordId": 1, "TableName": "contact"}, "ApplicationName": "Other", "DeviceName": "Dev"}),
    )
    .await;
    let text = soap(
        &s,
        &t,
        "GetKey",
        "<ApplicationName>Other</ApplicationName><DeviceName>Dev</DeviceName><KeyName>k</KeyName>",
    )
    .await;
    assert!(text.contains(r#"<Response i:nil="true"/>"#), "{text}");
}

#[tokio::test]
async fn not_found_answers_succeeded_with_a_nil_response() {
    let s = Server::start().await;
    let t = ticket(&s, "admin", &s.admin_password).await;
    let text = soap(
        &s,
        &t,
        "GetKey",
        "<ApplicationName>Nope</ApplicationName><DeviceName>Dev</DeviceName><KeyName>k</KeyName><TableName>contact</TableName><RecordId>1</RecordId>",
    )
    .await;
    assert!(
        text.contains(&format!(
            r#"<s:Header><Succeeded xmlns="{NS}">true</Succeeded></s:Header><s:Body><GetKeyResponse xmlns="{NS}"><Response i:nil="true"/></GetKeyResponse></s:Body>"#
        )),
        "{text}"
    );
    assert!(text.contains(r#"xmlns:i="http://www.w3.org/2001/XMLSchema-instance""#));
    // A not-found list is an empty Response, not a nil one.
    let text = soap(
        &s,
        &t,
        "GetDeviceKeys",
        "<ApplicationName>Nope</ApplicationName><DeviceName>Dev</DeviceName>",
    )
    .await;
    assert!(
        text.contains(&format!(
            r#"<GetDeviceKeysResponse xmlns="{NS}"><Response></Response></GetDeviceKeysResponse>"#
        )),
        "{text}"
    );
    // The Gets created nothing.
    assert_eq!(
        rest(&s, "GetAppByName", json!({"ApplicationName": "Nope"})).await,
        Value::Null
    );
}

#[tokio::test]
async fn xml_answers_name_the_masks_as_single_flags() {
    let s = Server::start().await;
    let t = ticket(&s, "admin", &s.admin_password).await;
    let text = soap(
        &s,
        &t,
        "SaveForeignKey",
        "<ForeignKey><Key>k</Key><Value>v</Value><RecordId>1</RecordId><TableName>contact</TableName></ForeignKey><ApplicationName>App</ApplicationName><DeviceName>Dev</DeviceName>",
    )
    .await;
    assert!(succeeded(&text), "{text}");
    // TableRight and FieldProperties first (the base class's members), masks as xs:lists.
    assert!(
        text.contains("<Response><TableRight><Mask>Select Update Insert Delete</Mask><Reason></Reason></TableRight><FieldProperties><FieldPropertyDictionaryKeyValuePair><Key>CreatedBy</Key><Value><FieldRight><Mask>Read UIHintReadOnly</Mask><Reason>set by the server</Reason></FieldRight><FieldType>System.String</FieldType><FieldLength>255</FieldLength></Value></FieldPropertyDictionaryKeyValuePair>"),
        "{text}"
    );
    assert!(
        text.contains("<Key>Value</Key><Value><FieldRight><Mask>Read Write</Mask><Reason></Reason></FieldRight><FieldType>System.String</FieldType><FieldLength>4000</FieldLength></Value>"),
        "{text}"
    );
    assert!(!text.contains("FULL"), "{text}");
    // The REST agent's XML says the same; its JSON uses the .NET names.
    let body = json!({"ApplicationName": "App", "DeviceName": "Dev", "KeyName": "k"});
    let r = s
        .admin(Method::POST, &format!("{AGENT}/GetKey"))
        .header("Accept", "application/xml")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let xml = r.text().await.unwrap();
    assert!(
        xml.contains("<TableRight><Mask>Select Update Insert Delete</Mask><Reason></Reason></TableRight>")
            && xml.contains("<Mask>Read Write</Mask>")
            && xml.contains("<Mask>Read UIHintReadOnly</Mask>"),
        "{xml}"
    );
    let k = rest(&s, "GetKey", body).await;
    assert_eq!(k["TableRight"], json!({"Mask": "FULL", "Reason": ""}));
    assert_eq!(
        k["FieldProperties"]["CreatedDate"]["FieldRight"]["Mask"],
        "Read, UIHintReadOnly"
    );
}
