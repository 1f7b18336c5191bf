//! The tenancy walk. Organization A gets one object of every kind (native key, organization API
//! key, user, lock, share key, collective key, personal key, SuperOffice temporary key, and a
//! ForeignSystem application with two devices and their keys);
//! organization B then drives every route of the server's route table, and every operation of
//! the SuperOffice operation table over REST and SOAP, against them, with each of its kinds of
//! credential (a user by Basic, an organization API key, a personal key holding every scope).
//! Nothing of A may be read, listed, changed, spent or revealed, and afterwards A's objects are
//! exactly as before. The walk reads `keygate::server::routes()` and the operation tables, so a
//! route or operation that it does not cover fails the test. It runs on SQLite and PostgreSQL.

use crate::pg;

use crate::common::*;
use chrono::{Duration, SecondsFormat, Utc};
use keygate::api::superoffice::ops::{FOREIGN_SYSTEM, PERSON, PRINCIPAL, SOAP_VERSIONS};
use keygate::service::personal::CATALOGUE;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

const TEDEE: &str = "/api/v37/my/personalaccesskey";
/// A's ForeignSystem mapping: application, device, identifier, key, value, table, record.
const FS_APP: &str = "alpha erp";
const FS_DEVICE: &str = "alpha sync";
const FS_IDENT: &str = "alpha-ident";
const FS_KEY: &str = "alpha customer no";
const FS_VALUE: &str = "alpha-value-7f3e";
const FS_TABLE: &str = "alpha_contact";
const FS_RECORD: i64 = 4242;

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Organization A's objects, and every string that identifies one of them.
struct Alpha {
    key: String,
    org_id: String,
    user: String,
    native_id: String,
    native_secret: String,
    api_key_id: String,
    lock: i64,
    share: String,
    collective: String,
    pin: String,
    personal_id: String,
    personal_secret: String,
    temp_id: String,
    temp_secret: String,
    /// A's ForeignSystem application and device (numeric wire ids).
    fs_app_id: i64,
    fs_device_id: i64,
    /// Ids, secrets and names of A's objects: none may appear in an answer to B unless B sent it.
    marks: Vec<String>,
}

#[derive(Clone)]
enum Cred {
    Basic(&'static str, &'static str),
    ApiKey(String),
    Personal(String),
}

impl Cred {
    fn apply(&self, r: RequestBuilder) -> RequestBuilder {
        match self {
            Cred::Basic(u, p) => r.basic_auth(u, Some(p)),
            Cred::ApiKey(k) => r.header("X-API-Key", k),
            Cred::Personal(k) => r.header("Authorization", format!("PersonalKey {k}")),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Cred::Basic(..) => "B's user by Basic",
            Cred::ApiKey(_) => "B's organization API key",
            Cred::Personal(_) => "B's personal key with every scope",
        }
    }
}

struct Bravo {
    key: String,
    lock: i64,
    creds: Vec<Cred>,
}

/// What B may get back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// A 4xx: the object is not B's.
    Refused,
    /// Any answer about B's own organization (lists, "who am I", creating in B).
    Own,
    /// `POST /v1/keys/verify`: 200 with NOT_FOUND, as for an unknown key.
    NotFound,
    /// SuperOffice CheckTemporaryKey: Domain Unknown, as for an unknown key.
    UnknownDomain,
    /// A page or document that holds nobody's data.
    Public,
    /// An agent lookup of something only A has: 200 with a null body (SOAP: a nil Response).
    Empty,
}

struct Req {
    method: Method,
    path: String,
    body: Option<(&'static str, String)>,
    soap_action: Option<String>,
    expect: Expect,
}

fn req(method: Method, path: impl Into<String>, json_body: Option<Value>, expect: Expect) -> Req {
    Req {
        method,
        path: path.into(),
        body: json_body.map(|b| ("application/json", b.to_string())),
        soap_action: None,
        expect,
    }
}

/// A SOAP 1.1 call to a service at a version (`/Remote/Services88/Person.svc`).
fn soap(version: u8, service: &str, op: &str, inner: &str, expect: Expect) -> Req {
    let ns = format!("http://www.superoffice.net/ws/crm/NetServer/Services{version}");
    Req {
        method: Method::POST,
        path: format!("/Remote/Services{version}/{service}.svc"),
        body: Some((
            "text/xml; charset=utf-8",
            format!(
                r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><{op} xmlns="{ns}">{inner}</{op}></s:Body></s:Envelope>"#
            ),
        )),
        soap_action: Some(format!("\"{ns}/{service}/{op}\"")),
        expect,
    }
}

async fn ok_json(r: RequestBuilder, status: u16) -> Value {
    let r = r.send().await.unwrap();
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

async fn make_alpha(s: &Server) -> Alpha {
    let (org_id, key) = s.create_org("alpha").await;
    let user = s.create_user(&key, "alpha_user", "alpha-user-password", false).await;
    s.create_user(&key, "alpha_admin", "alpha-admin-password", true).await;
    let k = |m: Method, p: &str| s.req(m, p).header("X-API-Key", &key);
    let native = ok_json(
        k(Method::POST, "/v1/keys").json(&json!({"name": "alpha native", "scopes": ["read"], "max_uses": 5})),
        201,
    )
    .await;
    let api_key = ok_json(k(Method::POST, "/v1/api-keys").json(&json!({"name": "alpha ci"})), 201).await;
    let lock = ok_json(
        k(Method::POST, "/v1/locks").json(&json!({
            "name": "alpha door", "owner": user, "doors": [{"id": 1, "name": "alpha main"}],
        })),
        201,
    )
    .await;
    let lock_id = lock["id"].as_i64().unwrap();
    let share = uuid::Uuid::new_v4().to_string();
    ok_json(
        k(Method::POST, &format!("/locks/{lock_id}/create-temp-key")).json(&json!({
            "tempKeyUuid": share, "accessMode": "user-whitelist", "allowedUserIds": [user],
            "validFrom": iso(Utc::now() - Duration::minutes(1)),
            "validUntil": iso(Utc::now() + Duration::days(1)),
            "maxUses": 5, "description": "alpha share",
        })),
        200,
    )
    .await;
    let coll = ok_json(
        k(Method::POST, "/temp-keys").json(&json!({
            "validFrom": iso(Utc::now() - Duration::minutes(1)),
            "validUntil": iso(Utc::now() + Duration::days(1)),
            "description": "alpha collective",
            "doors": [{"lockId": lock_id, "label": "alpha main", "accessMethod": "code"}],
        })),
        201,
    )
    .await;
    let personal = ok_json(
        s.req(Method::POST, TEDEE)
            .basic_auth("alpha_user", Some("alpha-user-password"))
            .json(&json!({"name": "alpha pk", "validTo": iso(Utc::now() + Duration::days(30)), "scopes": CATALOGUE})),
        201,
    )
    .await;
    let temp_secret = ok_json(
        s.req(Method::POST, "/api/v1/Agents/Person/CreateTemporaryKey")
            .basic_auth("alpha_admin", Some("alpha-admin-password"))
            .json(&json!({"Domain": "PublicFaq", "TargetId": 7, "PersonId": 0, "Expires": iso(Utc::now() + Duration::days(1))})),
        200,
    )
    .await
    .as_str()
    .unwrap()
    .to_string();
    let fs = |m: &str| {
        s.req(Method::POST, &format!("/api/v1/Agents/ForeignSystem/{m}"))
            .basic_auth("alpha_admin", Some("alpha-admin-password"))
    };
    for identifier in [FS_IDENT, ""] {
        ok_json(
            fs("SaveForeignKey").json(&json!({
                "ForeignKey": {"Key": FS_KEY, "Value": FS_VALUE, "TableName": FS_TABLE, "RecordId": FS_RECORD},
                "ApplicationName": FS_APP, "DeviceName": FS_DEVICE, "DeviceIdentifier": identifier,
            })),
            200,
        )
        .await;
    }
    let fs_app = ok_json(fs("GetAppByName").json(&json!({"ApplicationName": FS_APP})), 200).await;
    let temps = ok_json(k(Method::GET, "/v1/keys?kind=temporary"), 200).await;
    let s_ = |v: &Value| v.as_str().unwrap().to_string();
    let mut a = Alpha {
        org_id,
        user,
        native_id: s_(&native["id"]),
        native_secret: s_(&native["key"]),
        api_key_id: s_(&api_key["id"]),
        lock: lock_id,
        share,
        collective: s_(&coll["uuid"]),
        pin: s_(&coll["pin"]),
        personal_id: s_(&personal["result"]["id"]),
        personal_secret: s_(&personal["result"]["key"]),
        temp_id: s_(&temps["items"][0]["id"]),
        temp_secret,
        fs_app_id: fs_app["ForeignAppId"].as_i64().unwrap(),
        fs_device_id: fs_app["Devices"][0]["ForeignDeviceId"].as_i64().unwrap(),
        key,
        marks: vec![],
    };
    a.marks = vec![
        a.key.clone(),
        a.org_id.clone(),
        a.user.clone(),
        a.native_id.clone(),
        a.native_secret.clone(),
        a.api_key_id.clone(),
        s_(&api_key["apiKey"]),
        s_(&lock["uuid"]),
        a.share.clone(),
        a.collective.clone(),
        a.pin.clone(),
        a.personal_id.clone(),
        a.personal_secret.clone(),
        a.temp_id.clone(),
        a.temp_secret.clone(),
    ];
    for name in [
        "alpha_user",
        "alpha_admin",
        "alpha native",
        "alpha ci",
        "alpha door",
        "alpha main",
        "alpha share",
        "alpha collective",
        "alpha pk",
        // B writes under A's ForeignSystem names on purpose (making its own objects), so those
        // names are not marks; A's value is, and B never sends it but in the by-value lookups.
        FS_VALUE,
    ] {
        a.marks.push(name.to_string());
    }
    a
}

async fn make_bravo(s: &Server) -> Bravo {
    let (_, key) = s.create_org("bravo").await;
    s.create_user(&key, "bravo_admin", "bravo-admin-password", true).await;
    let pk = ok_json(
        s.req(Method::POST, TEDEE)
            .basic_auth("bravo_admin", Some("bravo-admin-password"))
            .json(&json!({"name": "bravo pk", "validTo": iso(Utc::now() + Duration::days(30)), "scopes": CATALOGUE})),
        201,
    )
    .await;
    let lock = ok_json(
        s.req(Method::POST, "/v1/locks")
            .header("X-API-Key", &key)
            .json(&json!({"name": "bravo door", "doors": [{"id": 1, "name": "bravo main"}]})),
        201,
    )
    .await;
    Bravo {
        creds: vec![
            Cred::Basic("bravo_admin", "bravo-admin-password"),
            Cred::ApiKey(key.clone()),
            Cred::Personal(pk["result"]["key"].as_str().unwrap().to_string()),
        ],
        lock: lock["id"].as_i64().unwrap(),
        key,
    }
}

/// Everything A can see of its own objects, through A's own credentials (reads only).
async fn fingerprint(s: &Server, a: &Alpha) -> Vec<Value> {
    let mut out = vec![];
    for path in [
        "/v1/keys?limit=500".to_string(),
        "/v1/users".into(),
        "/v1/api-keys".into(),
        "/v1/locks".into(),
        "/v1/events?limit=500".into(),
        format!("/locks/{}/temp-keys", a.lock),
        "/temp-keys".into(),
    ] {
        out.push(ok_json(s.req(Method::GET, &path).header("X-API-Key", &a.key), 200).await);
    }
    out.push(
        ok_json(
            s.req(Method::GET, TEDEE)
                .header("Authorization", format!("PersonalKey {}", a.personal_secret)),
            200,
        )
        .await,
    );
    for (op, body) in [
        ("GetAppByName", json!({"ApplicationName": FS_APP})),
        ("GetApplicationKeys", json!({"ApplicationName": FS_APP})),
        (
            "GetAllForeignKeysOnEntity",
            json!({"EntityType": FS_TABLE, "EntityId": FS_RECORD}),
        ),
    ] {
        out.push(
            ok_json(
                s.req(Method::POST, &format!("/api/v1/Agents/ForeignSystem/{op}"))
                    .header("X-API-Key", &a.key)
                    .json(&body),
                200,
            )
            .await,
        );
    }
    out
}

/// The requests that drive one route against A's objects; `None` when the walk does not know
/// the route (which fails the test).
fn cases(method: &str, path: &str, a: &Alpha, b: &Bravo) -> Option<Vec<Req>> {
    use Expect::*;
    let later = iso(Utc::now() + Duration::days(1));
    let earlier = iso(Utc::now() - Duration::minutes(1));
    let ids = [&a.native_id, &a.temp_id, &a.personal_id, &a.share, &a.collective];
    let m = |s: &str| Method::from_bytes(s.as_bytes()).unwrap();
    let by_id = |method: &str, tail: &str| -> Vec<Req> {
        ids.iter()
            .map(|id| req(m(method), format!("/v1/keys/{id}{tail}"), None, Refused))
            .collect()
    };
    let share_body = |uuid: &str| json!({"tempKeyUuid": uuid, "maxUses": 9});
    Some(match (method, path) {
        ("POST", "/v1/keys") => vec![
            req(
                m(method),
                path,
                Some(json!({"kind": "share", "name": "x", "subject": {"lock_id": a.lock}, "expires_at": later})),
                Refused,
            ),
            req(m(method), path, Some(json!({"name": "x", "owner": a.user})), Refused),
            req(
                m(method),
                path,
                Some(
                    json!({"kind": "personal", "name": "x", "owner": a.user, "scopes": ["Account.Read"], "expires_at": later}),
                ),
                Refused,
            ),
            req(
                m(method),
                path,
                Some(json!({"name": "x", "allowed_users": [a.user]})),
                Refused,
            ),
        ],
        ("GET", "/v1/keys") => vec![
            req(m(method), path, None, Own),
            req(m(method), format!("/v1/keys?owner={}", a.user), None, Own),
        ],
        ("POST", "/v1/keys/verify") => [
            &a.native_secret,
            &a.temp_secret,
            &a.personal_secret,
            &a.share,
            &format!("share:{}", a.share),
        ]
        .iter()
        .map(|k| req(m(method), path, Some(json!({"key": k, "consume": true})), NotFound))
        .collect(),
        ("GET", "/v1/keys/{id}") => by_id(method, ""),
        ("DELETE", "/v1/keys/{id}") => by_id(method, ""),
        ("POST", "/v1/keys/{id}/use") => by_id(method, "/use"),
        ("POST", "/v1/tickets") => vec![req(m(method), path, None, Own)],
        ("POST", "/v1/sessions") => vec![
            req(
                m(method),
                path,
                Some(json!({"username": "alpha_admin", "password": "not-the-password"})),
                Refused,
            ),
            req(
                m(method),
                path,
                Some(json!({"username": "bravo_admin", "password": "bravo-admin-password"})),
                Own,
            ),
        ],
        ("DELETE", "/v1/sessions") => vec![req(m(method), path, None, Own)],
        ("GET", "/v1/me") => vec![req(m(method), path, None, Own)],
        ("POST", "/v1/orgs") => vec![req(m(method), path, Some(json!({"name": "alpha"})), Refused)],
        ("GET", "/v1/orgs") => vec![req(m(method), path, None, Own)],
        ("GET", "/v1/orgs/{id}") => vec![req(m(method), format!("/v1/orgs/{}", a.org_id), None, Refused)],
        ("POST", "/v1/users") => vec![req(
            m(method),
            path,
            Some(json!({"username": "intruder", "password": "intruder-password", "org_id": a.org_id, "admin": true})),
            Refused,
        )],
        ("GET", "/v1/users") => vec![req(m(method), path, None, Own)],
        ("GET", "/v1/users/{id}") => vec![req(m(method), format!("/v1/users/{}", a.user), None, Refused)],
        ("PATCH", "/v1/users/{id}") => vec![
            req(
                m(method),
                format!("/v1/users/{}", a.user),
                Some(json!({"disabled": true})),
                Refused,
            ),
            req(
                m(method),
                format!("/v1/users/{}", a.user),
                Some(json!({"password": "taken-over-pw"})),
                Refused,
            ),
        ],
        ("POST", "/v1/users/{id}/unlock") => {
            vec![req(m(method), format!("/v1/users/{}/unlock", a.user), None, Refused)]
        }
        ("POST", "/v1/me/password") => vec![req(
            m(method),
            path,
            Some(json!({"current_password": "not-the-password", "new_password": "another-password"})),
            Refused,
        )],
        ("POST", "/v1/api-keys") => vec![req(m(method), path, Some(json!({"name": "bravo extra"})), Own)],
        ("GET", "/v1/api-keys") => vec![req(m(method), path, None, Own)],
        ("DELETE", "/v1/api-keys/{id}") => {
            vec![req(m(method), format!("/v1/api-keys/{}", a.api_key_id), None, Refused)]
        }
        ("GET", "/v1/events") => vec![req(m(method), "/v1/events?after=0&limit=500", None, Own)],
        ("POST", "/v1/locks") => vec![req(
            m(method),
            path,
            Some(json!({"name": "x", "owner": a.user})),
            Refused,
        )],
        ("GET", "/v1/locks") => vec![req(m(method), path, None, Own)],
        ("GET", "/v1/locks/{id}") => vec![req(m(method), format!("/v1/locks/{}", a.lock), None, Refused)],
        ("GET", "/openapi.json") => vec![req(m(method), path, None, Public)],
        // Tedee.
        ("POST", "/api/{version}/my/personalaccesskey") => vec![req(
            m(method),
            TEDEE,
            Some(
                json!({"name": "bravo more", "validTo": iso(Utc::now() + Duration::days(5)), "scopes": ["Account.Read"]}),
            ),
            Own,
        )],
        ("GET", "/api/{version}/my/personalaccesskey") => vec![req(m(method), TEDEE, None, Own)],
        ("PUT", "/api/{version}/my/personalaccesskey/{id}") => vec![req(
            m(method),
            format!("{TEDEE}/{}", a.personal_id),
            Some(json!({"name": "mine", "validTo": later, "scopes": ["Account.Read"]})),
            Refused,
        )],
        ("DELETE", "/api/{version}/my/personalaccesskey/{id}") => {
            vec![req(m(method), format!("{TEDEE}/{}", a.personal_id), None, Refused)]
        }
        ("ANY", "/api/{version}/my/{*rest}") => vec![
            req(Method::GET, format!("/api/v37/my/lock/{}", a.lock), None, Refused),
            req(
                Method::POST,
                format!("{TEDEE}/{}/anything", a.personal_id),
                None,
                Refused,
            ),
        ],
        // SuperOffice: every operation of the table, over REST and SOAP.
        ("POST", "/api/v1/Agents/Person/{method}") => PERSON
            .iter()
            .map(|op| {
                let (body, expect) = so_case(op.name, a, &later);
                req(
                    m(method),
                    format!("/api/v1/Agents/Person/{}", op.name),
                    Some(body),
                    expect,
                )
            })
            .collect(),
        ("POST", "/api/v1/Agents/ForeignSystem/{method}") => FOREIGN_SYSTEM
            .iter()
            .map(|op| {
                let (query, body, expect) = fs_case(op.name, a);
                let q = query.map(|(k, v)| format!("?{k}={v}")).unwrap_or_default();
                req(
                    m(method),
                    format!("/api/v1/Agents/ForeignSystem/{}{q}", op.name),
                    Some(body),
                    expect,
                )
            })
            .collect(),
        // SOAP: every service at every version (Remote/Services86, 87, 88), each with the
        // operations that version offers.
        (_, p) if soap_service(p).is_some() => {
            let (version, service) = soap_service(p).unwrap();
            match (method, service) {
                ("GET", _) => vec![req(m(method), format!("{path}?wsdl"), None, Public)],
                ("POST", "Person") => PERSON
                    .iter()
                    .filter(|op| op.soap_since <= version)
                    .map(|op| {
                        let (body, expect) = so_case(op.name, a, &later);
                        let inner: String = body
                            .as_object()
                            .unwrap()
                            .iter()
                            .map(|(k, v)| {
                                format!("<{k}>{}</{k}>", v.as_str().map(str::to_string).unwrap_or(v.to_string()))
                            })
                            .collect();
                        soap(version, "Person", op.name, &inner, expect)
                    })
                    .collect(),
                ("POST", "SoPrincipal") => PRINCIPAL
                    .iter()
                    .filter(|op| op.soap_since <= version)
                    .map(|op| match op.name {
                        // A's user without its password (once: failures count against the
                        // caller's address); at the later versions, B's own login, whose
                        // ticket must reveal nothing of A.
                        "AuthenticateUsernamePassword" if version == 86 => soap(
                            version,
                            "SoPrincipal",
                            op.name,
                            "<UserName>alpha_user</UserName><Password>not-the-password</Password>",
                            Refused,
                        ),
                        "AuthenticateUsernamePassword" => soap(
                            version,
                            "SoPrincipal",
                            op.name,
                            "<UserName>bravo_admin</UserName><Password>bravo-admin-password</Password>",
                            Own,
                        ),
                        other => panic!("the walk does not know SoPrincipal.{other}"),
                    })
                    .collect(),
                ("POST", "ForeignSystem") => FOREIGN_SYSTEM
                    .iter()
                    .filter(|op| op.soap_since <= version)
                    .map(|op| {
                        let (query, body, expect) = fs_case(op.name, a);
                        let mut inner = String::new();
                        if let Some((k, v)) = query {
                            // SOAP carries the REST query parameter as an element (capitalized).
                            let name = format!("{}{}", k[..1].to_uppercase(), &k[1..]);
                            inner.push_str(&format!("<{name}>{v}</{name}>"));
                        }
                        xml_members(&body, &mut inner);
                        soap(version, "ForeignSystem", op.name, &inner, expect)
                    })
                    .collect(),
                _ => return None,
            }
        }
        // GET on an agent method describes it: the contract only, nobody's data.
        ("GET", "/api/v1/Agents/Person/{method}") => PERSON
            .iter()
            .map(|op| req(m(method), format!("/api/v1/Agents/Person/{}", op.name), None, Public))
            .collect(),
        ("GET", "/api/v1/Agents/ForeignSystem/{method}") => FOREIGN_SYSTEM
            .iter()
            .map(|op| {
                req(
                    m(method),
                    format!("/api/v1/Agents/ForeignSystem/{}", op.name),
                    None,
                    Public,
                )
            })
            .collect(),
        // SmartphoneKey: A's lock, and A's keys through B's own lock.
        ("POST", "/locks/{id}/create-temp-key") => vec![req(
            m(method),
            format!("/locks/{}/create-temp-key", a.lock),
            Some(
                json!({"tempKeyUuid": uuid::Uuid::new_v4(), "accessMode": "public", "allowedUserIds": [],
                        "validFrom": earlier, "validUntil": later, "maxUses": null, "description": "x"}),
            ),
            Refused,
        )],
        ("POST", "/locks/{id}/update-temp-key") => vec![
            req(
                m(method),
                format!("/locks/{}/update-temp-key", a.lock),
                Some(share_body(&a.share)),
                Refused,
            ),
            req(
                m(method),
                format!("/locks/{}/update-temp-key", b.lock),
                Some(share_body(&a.share)),
                Refused,
            ),
        ],
        ("POST", "/locks/{id}/delete-temp-key") | ("POST", "/locks/{id}/use-temp-key") => {
            let verb = path.rsplit('/').next().unwrap();
            [a.lock, b.lock]
                .iter()
                .flat_map(|l| {
                    [&a.share, &a.collective].map(|u| {
                        req(
                            m(method),
                            format!("/locks/{l}/{verb}"),
                            Some(json!({"tempKeyUuid": u})),
                            Refused,
                        )
                    })
                })
                .collect()
        }
        ("GET", "/locks/{id}/temp-keys") => vec![req(m(method), format!("/locks/{}/temp-keys", a.lock), None, Refused)],
        ("POST", "/locks/{id}/open-with-pin") => vec![
            req(
                m(method),
                format!("/locks/{}/open-with-pin", a.lock),
                Some(json!({"pin": "00000000"})),
                Refused,
            ),
            // A's PIN at B's lock.
            req(
                m(method),
                format!("/locks/{}/open-with-pin", b.lock),
                Some(json!({"pin": a.pin})),
                Refused,
            ),
        ],
        // The collective routes, under both of SmartphoneKey's names.
        ("POST", "/temp-keys") | ("POST", "/collective-temp-keys") => vec![
            req(
                m(method),
                path,
                Some(json!({"validFrom": earlier, "validUntil": later, "description": "x",
                            "doors": [{"lockId": a.lock, "label": "x", "accessMethod": "both"}]})),
                Refused,
            ),
            req(
                m(method),
                path,
                Some(json!({"validFrom": earlier, "validUntil": later,
                            "doors": [{"lockId": a.lock.to_string(), "accessMethod": "key"}]})),
                Refused,
            ),
        ],
        ("GET", "/temp-keys") | ("GET", "/collective-temp-keys") => vec![
            req(m(method), path, None, Own),
            req(m(method), format!("{path}?lockId={}", a.lock), None, Refused),
        ],
        ("DELETE", "/temp-keys/{uuid}") | ("DELETE", "/collective-temp-keys/{uuid}") => {
            let base = path.trim_end_matches("/{uuid}");
            vec![
                req(m(method), format!("{base}/{}", a.collective), None, Refused),
                req(m(method), format!("{base}/{}", a.share), None, Refused),
            ]
        }
        // The guest side: A's whitelisted key and its code-only collective key (whose guest
        // page is public by design: its UUID is the link).
        ("GET", "/temp-keys/{uuid}") | ("GET", "/collective-temp-keys/{uuid}") => {
            let base = path.trim_end_matches("/{uuid}");
            vec![
                req(m(method), format!("{base}/{}", a.share), None, Refused),
                req(m(method), format!("{base}/{}", uuid::Uuid::new_v4()), None, Refused),
            ]
        }
        ("POST", "/temp-keys/{uuid}/doors/{doorId}/open")
        | ("POST", "/collective-temp-keys/{uuid}/doors/{doorId}/open") => {
            let base = path.trim_end_matches("/{uuid}/doors/{doorId}/open");
            vec![
                // A's collective key: its one door takes the PIN only; it has no door 2.
                req(
                    m(method),
                    format!("{base}/{}/doors/1/open", a.collective),
                    None,
                    Refused,
                ),
                req(
                    m(method),
                    format!("{base}/{}/doors/2/open", a.collective),
                    None,
                    Refused,
                ),
                // A's whitelisted key: B is on no whitelist of A's.
                req(m(method), format!("{base}/{}/doors/1/open", a.share), None, Refused),
            ]
        }
        ("GET", "/collective-temp-keys/{uuid}/confirmation") => {
            vec![req(
                m(method),
                format!("/collective-temp-keys/{}/confirmation", a.share),
                None,
                Public,
            )]
        }
        ("POST", "/temp-keys/{uuid}/open") => vec![
            req(m(method), format!("/temp-keys/{}/open", a.share), None, Refused),
            req(m(method), format!("/temp-keys/{}/open", a.collective), None, Refused),
        ],
        ("GET", "/temp-keys/{uuid}/confirmation") => {
            vec![req(
                m(method),
                format!("/temp-keys/{}/confirmation", a.share),
                None,
                Public,
            )]
        }
        ("GET", p) if p.starts_with("/account") => vec![req(m(method), p, None, Public)],
        ("GET", "/healthz") | ("GET", "/metrics") => vec![req(m(method), path, None, Public)],
        _ => return None,
    })
}

/// The version and service of a SOAP endpoint path (`/Remote/Services87/Person.svc`).
fn soap_service(path: &str) -> Option<(u8, &'static str)> {
    SOAP_VERSIONS.into_iter().find_map(|v| {
        ["Person", "SoPrincipal", "ForeignSystem"]
            .into_iter()
            .find(|svc| path == format!("/Remote/Services{v}/{svc}.svc"))
            .map(|svc| (v, svc))
    })
}

/// A Person agent operation's arguments against A, and what B must get.
fn so_case(op: &str, a: &Alpha, later: &str) -> (Value, Expect) {
    match op {
        // A domain every version knows (Services86 has 0-4).
        "CreateTemporaryKey" => (
            json!({"Domain": "LoginCustomerCenter", "TargetId": 7, "PersonId": 0, "Expires": later}),
            Expect::Own,
        ),
        "CreateTemporaryKeyWithPayload" => (
            json!({"Domain": "LoginCustomerCenter", "TargetId": 7, "PersonId": 0, "Expires": later, "Payload": "bravo"}),
            Expect::Own,
        ),
        "CheckTemporaryKey" => (json!({"TemporaryKey": a.temp_secret}), Expect::UnknownDomain),
        // B's delete of the same domain and person must leave A's key alone.
        "DeleteTemporaryKeysOfDomain" => (json!({"Domain": "PublicFaq", "PersonId": 0}), Expect::Own),
        other => panic!("the walk does not know Person.{other}: add it to so_case"),
    }
}

/// A JSON object as XML elements (objects nest), for a SOAP body.
fn xml_members(v: &Value, out: &mut String) {
    for (k, v) in v.as_object().unwrap() {
        match v {
            Value::Object(_) => {
                out.push_str(&format!("<{k}>"));
                xml_members(v, out);
                out.push_str(&format!("</{k}>"));
            }
            Value::String(t) => out.push_str(&format!("<{k}>{t}</{k}>")),
            other => out.push_str(&format!("<{k}>{other}</{k}>")),
        }
    }
}

/// A ForeignSystem operation against A's mapping: its query parameter (REST), body and what B
/// must get. B writes under A's names, which must make B's own objects; B looks up A's ids and
/// A's value, which must find nothing.
fn fs_case(op: &str, a: &Alpha) -> (Option<(&'static str, i64)>, Value, Expect) {
    use Expect::*;
    let path = json!({"ApplicationName": FS_APP, "DeviceName": FS_DEVICE, "DeviceIdentifier": FS_IDENT});
    let with = |extra: Value| {
        let mut v = path.clone();
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    };
    let key = json!({"Key": FS_KEY, "Value": "bravo-value", "TableName": FS_TABLE, "RecordId": FS_RECORD});
    let address = json!({"KeyName": FS_KEY, "TableName": FS_TABLE, "RecordId": FS_RECORD});
    match op {
        "CreateDefaultForeignAppEntity" => (None, json!({}), Own),
        // Renaming A's application by its id: not B's.
        "SaveForeignAppEntity" => (
            None,
            json!({"ForeignAppEntity": {"ForeignAppId": a.fs_app_id, "Name": "taken over"}}),
            Empty,
        ),
        "DeleteForeignAppEntity" => (Some(("foreignAppEntityId", a.fs_app_id)), json!({}), Own),
        "GetForeignAppEntity" => (Some(("foreignAppEntityId", a.fs_app_id)), json!({}), Empty),
        "GetForeignDevice" => (Some(("foreignDeviceId", a.fs_device_id)), json!({}), Empty),
        "SaveForeignDevice" => (
            None,
            json!({"ApplicationName": FS_APP, "ForeignDevice": {"ForeignDeviceId": a.fs_device_id, "Name": "taken over"}}),
            Empty,
        ),
        "DeleteForeignDevice" => (
            None,
            json!({"ApplicationName": FS_APP, "ForeignDevice": {"ForeignDeviceId": a.fs_device_id}}),
            Own,
        ),
        "GetKeyByValue" => (
            None,
            json!({"ApplicationName": FS_APP, "DeviceName": FS_DEVICE, "KeyName": FS_KEY, "KeyValue": FS_VALUE}),
            Empty,
        ),
        "GetKeyByValueAndIdentifier" => (None, with(json!({"KeyName": FS_KEY, "KeyValue": FS_VALUE})), Empty),
        "GetAllForeignKeysOnEntity" => (None, json!({"EntityType": FS_TABLE, "EntityId": FS_RECORD}), Own),
        "AddForeignKey" | "SaveForeignKey" => (None, with(json!({"ForeignKey": key})), Own),
        "DeleteForeignKey" => (
            None,
            with(json!({"ForeignKey": {"Key": FS_KEY}, "TableName": "", "RecordId": 0})),
            Own,
        ),
        "SaveDeviceByIdentifier" => (None, with(json!({"ForeignDevice": {"Name": "taken over"}})), Own),
        "GetAppByName" | "GetApplicationDevices" | "GetApplicationKeys" => {
            (None, json!({"ApplicationName": FS_APP}), Own)
        }
        "GetDeviceByName" | "GetDeviceKeys" => (None, json!({"ApplicationName": FS_APP, "DeviceName": FS_DEVICE}), Own),
        "GetDeviceByIdentifier"
        | "AddDeviceByIdentifier"
        | "DeleteDeviceByIdentifier"
        | "GetDeviceKeysOnDeviceIdentifier" => (None, path, Own),
        "GetDeviceKeysOnDeviceIdentifierTable" => (None, with(json!({"TableName": FS_TABLE})), Own),
        "GetDeviceKeysOnDeviceIdentifierTableRecordId" => {
            (None, with(json!({"TableName": FS_TABLE, "RecordId": FS_RECORD})), Own)
        }
        "GetKey" | "GetKeyValue" => (
            None,
            json!({"ApplicationName": FS_APP, "DeviceName": FS_DEVICE, "KeyName": FS_KEY, "TableName": FS_TABLE, "RecordId": FS_RECORD}),
            Own,
        ),
        "GetKeyOnDeviceIdentifier" | "GetKeyValueOnDeviceIdentifier" | "DeleteForeignKeyOnName" => {
            (None, with(address), Own)
        }
        other => panic!("the walk does not know ForeignSystem.{other}: add it to fs_case"),
    }
}

async fn walk(opts: Options) {
    let s = Server::start_with(opts).await;
    let a = make_alpha(&s).await;
    let b = make_bravo(&s).await;
    let before = fingerprint(&s, &a).await;

    let routes = keygate::server::routes();
    let uncovered: Vec<String> = routes
        .iter()
        .filter(|r| !r.test_only)
        .filter(|r| cases(&r.method, &r.path, &a, &b).is_none_or(|c| c.is_empty()))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        uncovered.is_empty(),
        "routes the tenancy walk does not cover: {uncovered:?}"
    );

    let mut sent = 0;
    for route in routes.iter().filter(|r| !r.test_only) {
        for case in cases(&route.method, &route.path, &a, &b).unwrap() {
            for cred in &b.creds {
                let mut r = cred.apply(s.req(case.method.clone(), &case.path));
                if let Some((ct, body)) = &case.body {
                    r = r.header("Content-Type", *ct).body(body.clone());
                }
                if let Some(action) = &case.soap_action {
                    r = r.header("SOAPAction", action);
                }
                let resp = r.send().await.unwrap();
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap();
                sent += 1;
                let what = format!(
                    "{} {} as {}: {status} {}",
                    case.method,
                    case.path,
                    cred.name(),
                    &text[..text.len().min(300)]
                );
                let asked = format!(
                    "{}{}",
                    case.path,
                    case.body.as_ref().map(|b| b.1.as_str()).unwrap_or("")
                );
                for mark in &a.marks {
                    assert!(
                        asked.contains(mark.as_str()) || !text.contains(mark.as_str()),
                        "reveals A's {mark:?}: {what}"
                    );
                }
                assert!(status < 500, "{what}");
                match case.expect {
                    Expect::Refused => match case.soap_action {
                        // SOAP answers 200 with Succeeded=false or a failed authentication.
                        Some(_) => assert!(
                            text.contains("<AuthenticationSucceeded>false") || text.contains(">false</Succeeded>"),
                            "{what}"
                        ),
                        None => assert!((400..500).contains(&status), "{what}"),
                    },
                    Expect::NotFound => {
                        assert_eq!(status, 200, "{what}");
                        let v: Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(v["code"], "NOT_FOUND", "{what}");
                        assert!(v["key"].is_null(), "{what}");
                    }
                    Expect::UnknownDomain => {
                        assert_eq!(status, 200, "{what}");
                        assert!(text.contains("Unknown") && !text.contains("PublicFaq"), "{what}");
                    }
                    Expect::Empty => match case.soap_action {
                        Some(_) => assert!(
                            text.contains(">true</Succeeded>") && text.contains(r#"<Response i:nil="true"/>"#),
                            "{what}"
                        ),
                        None => assert!(status == 200 && text.trim() == "null", "{what}"),
                    },
                    Expect::Own | Expect::Public => {}
                }
            }
        }
    }
    assert!(sent > 150, "the walk sent only {sent} requests");

    // A's objects are exactly as they were, and B's feed holds no event of A's objects.
    assert_eq!(fingerprint(&s, &a).await, before, "A changed under B's requests");
    let b_feed = ok_json(
        s.req(Method::GET, "/v1/events?limit=500").header("X-API-Key", &b.key),
        200,
    )
    .await;
    for e in b_feed["items"].as_array().unwrap() {
        let id = e["aggregate_id"].as_str().unwrap().to_string();
        assert!(!a.marks.contains(&id), "B's feed holds an event of A's object: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organization_reaches_nothing_on_sqlite() {
    walk(Options::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organization_reaches_nothing_on_postgres() {
    let Some(admin) = pg::admin_url("another_organization_reaches_nothing_on_postgres") else {
        return;
    };
    let url = pg::fresh_database(&admin).await;
    walk(
        Options::default()
            .env("KEYGATE_DATABASE_URL", &url)
            .env("KEYGATE_SECRET", "a-shared-server-secret-of-at-least-32-bytes"),
    )
    .await;
}
