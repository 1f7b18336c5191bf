//! The OpenAPI document is generated from the code and lists every /v1 route.

use crate::common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/keys"),
    ("post", "/v1/keys"),
    ("post", "/v1/keys/verify"),
    ("get", "/v1/keys/{id}"),
    ("delete", "/v1/keys/{id}"),
    ("post", "/v1/keys/{id}/use"),
    ("post", "/v1/tickets"),
    ("post", "/v1/sessions"),
    ("delete", "/v1/sessions"),
    ("get", "/v1/me"),
    ("get", "/v1/orgs"),
    ("post", "/v1/orgs"),
    ("get", "/v1/orgs/{id}"),
    ("get", "/v1/users"),
    ("post", "/v1/users"),
    ("get", "/v1/users/{id}"),
    ("patch", "/v1/users/{id}"),
    ("post", "/v1/users/{id}/unlock"),
    ("post", "/v1/me/password"),
    ("get", "/v1/api-keys"),
    ("post", "/v1/api-keys"),
    ("delete", "/v1/api-keys/{id}"),
    ("get", "/v1/events"),
    ("get", "/v1/locks"),
    ("post", "/v1/locks"),
    ("get", "/v1/locks/{id}"),
];

#[tokio::test]
async fn openapi_lists_every_v1_route_and_each_documented_route_exists() {
    let s = Server::start().await;
    let doc = json(s.req(Method::GET, "/openapi.json").send().await.unwrap()).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.insert((method.to_string(), path.clone()));
            }
        }
    }
    let expected: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, expected);
    // Every documented operation is served: anonymous calls reach the route (401 from the
    // authenticator, or 400/415 from parsing) rather than the no-such-route 404 or a 405.
    for (method, path) in &documented {
        let id = if path.starts_with("/v1/locks") {
            "1"
        } else {
            "01900000-0000-7000-8000-000000000000"
        };
        let concrete = path.replace("{id}", id);
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = s.req(m, &concrete).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert!(
            status != 405 && !body.contains("route not found"),
            "{method} {path}: {status} {body}"
        );
    }
    // Security schemes are described.
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for name in ["basic", "bearer", "ticket", "api_key", "session"] {
        assert!(schemes.contains_key(name), "{name}");
    }
}

/// The operations of the document: (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = vec![];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            if let Some(op) = item.get(method) {
                out.push((method.to_string(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// A response of an operation, with a `$ref` to a shared response followed.
fn response<'a>(doc: &'a Value, op: &'a Value, status: &str) -> Option<&'a Value> {
    let r = op["responses"].get(status)?;
    match r.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            doc["components"]["responses"].get(name)
        }
        None => Some(r),
    }
}

#[tokio::test]
async fn openapi_documents_every_status_and_the_error_body() {
    let s = Server::start().await;
    let doc = json(s.req(Method::GET, "/openapi.json").send().await.unwrap()).await;
    let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
        let secured = op
            .get("security")
            .map(|s| !s.as_array().unwrap().is_empty())
            .unwrap_or(true);
        let mut expected = vec![];
        if secured {
            expected.extend(["401", "403", "429", "503"]);
        } else {
            // Only the cookie login takes no credential; a wrong password is its 401.
            assert_eq!((method.as_str(), path.as_str()), ("post", "/v1/sessions"));
            expected.extend(["401", "429", "503"]);
        }
        if op.get("requestBody").is_some() {
            expected.extend(["400", "413", "415"]);
        }
        if op.get("parameters").is_some_and(|p| !p.as_array().unwrap().is_empty()) {
            expected.push("400");
        }
        for status in expected {
            let r = response(&doc, &op, status).unwrap_or_else(|| panic!("{method} {path}: no {status}"));
            assert_eq!(
                r["content"]["application/json"]["schema"], error_body,
                "{method} {path} {status}"
            );
            let header = match status {
                "401" => Some("WWW-Authenticate"),
                "429" | "503" => Some("Retry-After"),
                _ => None,
            };
            if let Some(h) = header {
                assert!(r["headers"].get(h).is_some(), "{method} {path} {status}: no {h}");
            }
        }
    }
    assert_eq!(ids.len(), ROUTES.len());
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["ErrorBody"]["required"], json!(["error", "message"]));
    // A key view's subject is null when the key is bound to nothing; its metadata is an object.
    let key_view = &schemas["KeyView"];
    assert_eq!(key_view["properties"]["subject"]["type"], json!(["object", "null"]));
    assert_eq!(key_view["properties"]["metadata"]["type"], json!("object"));
    // One schema per kind for POST /v1/keys.
    let kinds: Vec<&str> = schemas["CreateKeyRequest"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["title"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["api", "personal", "temporary", "share"]);
    // The limits the server enforces.
    let api = &schemas["CreateKeyRequest"]["oneOf"][0]["properties"];
    assert_eq!(api["name"]["maxLength"], 200);
    assert_eq!(api["scopes"]["maxItems"], 100);
    assert_eq!(api["scopes"]["items"]["maxLength"], 128);
    assert_eq!(api["max_uses"]["minimum"], 1);
    assert_eq!(api["max_uses"]["maximum"], 1_000_000_000);
    assert_eq!(api["allowed_users"]["maxItems"], 1000);
    assert_eq!(schemas["VerifyRequest"]["properties"]["key"]["maxLength"], 1024);
    assert_eq!(schemas["CreateUserRequest"]["properties"]["username"]["maxLength"], 64);
    assert_eq!(schemas["CreateUserRequest"]["properties"]["password"]["minLength"], 8);
    assert_eq!(schemas["CreateOrgRequest"]["properties"]["name"]["maxLength"], 100);
    let limit = doc["paths"]["/v1/keys"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
        (&json!(1), &json!(500))
    );
    // use's body is optional.
    assert_ne!(
        doc["paths"]["/v1/keys/{id}/use"]["post"]["requestBody"]["required"],
        json!(true)
    );
}

#[tokio::test]
async fn the_server_answers_what_its_document_says() {
    let s = Server::start().await;
    let (_, key) = s.create_org("wire").await;
    let post = |path: &str, body: Value| s.req(Method::POST, path).header("X-API-Key", &key).json(&body).send();
    // A key with no metadata shows `{}`, and one bound to nothing a null subject.
    let k = json(post("/v1/keys", json!({"name": "k"})).await.unwrap()).await;
    assert_eq!(k["metadata"], json!({}));
    assert_eq!(k["subject"], Value::Null);
    // Integers may be written as whole floats, as JSON Schema's `integer` admits.
    let r = post("/v1/keys", json!({"name": "n", "max_uses": 5.0})).await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(json(r).await["max_uses"], 5);
    let r = post("/v1/keys", json!({"name": "n", "max_uses": 5.5})).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = post(
        "/v1/locks",
        json!({"name": "l", "doors": [{"id": 3.0, "name": "front"}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(json(r).await["doors"][0]["id"], 3);
    // A subject is an object (or null), as the document says.
    let r = post("/v1/keys", json!({"name": "s", "subject": "lock 1"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(json(r).await["field"], "subject");
    // Lengths count characters, as JSON Schema's maxLength does.
    let long = "é".repeat(1024);
    let r = post("/v1/keys/verify", json!({"key": long})).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["code"], "NOT_FOUND");
    let r = post("/v1/keys/verify", json!({"key": "é".repeat(1025)})).await.unwrap();
    assert_eq!(r.status(), 400);
    let name = "ü".repeat(120);
    let r = post("/v1/locks", json!({"name": "m", "doors": [{"id": 1, "name": name}]}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let password = "ö".repeat(1024);
    let r = post("/v1/users", json!({"username": "longpw", "password": password}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = s
        .req(Method::GET, "/v1/me")
        .basic_auth("longpw", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = post(
        "/v1/users",
        json!({"username": "toolong", "password": "ö".repeat(1025)}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    // use's optional body may be empty or null.
    let id = k["id"].as_str().unwrap();
    let r = post(&format!("/v1/keys/{id}/use"), Value::Null).await.unwrap();
    assert_eq!(r.status(), 200);
    // After DELETE (revoke) the key is gone from its URL; the list still shows it, revoked.
    let r = s
        .req(Method::DELETE, &format!("/v1/keys/{id}"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .req(Method::GET, &format!("/v1/keys/{id}"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(json(r).await["error"], "not_found");
    let page = json(
        s.req(Method::GET, "/v1/keys")
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let listed = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap();
    assert!(listed["revoked_at"].is_string());
    // Logging out of a session without one is forbidden, not malformed.
    let r = s
        .req(Method::DELETE, "/v1/sessions")
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Every error answers the ErrorBody shape; a 401 says how to authenticate.
    let r = s
        .req(Method::GET, "/v1/keys")
        .header("X-API-Key", "kg_nosuch.key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let e = json(r).await;
    assert_eq!(e["error"], "unauthenticated");
    assert!(e["message"].is_string());
}
