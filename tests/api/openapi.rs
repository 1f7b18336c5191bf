//! The OpenAPI document is generated from the code and lists every /v1 route.

use crate::common::*;
use reqwest::Method;
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
