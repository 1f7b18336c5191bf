//! Bad input of every kind: a clear 400 naming the field (413 when too large, 415 for the
//! wrong media type), and nothing written.

use crate::common::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn expect_error(s: &Server, req: reqwest::RequestBuilder, status: u16, field: Option<&str>) -> Value {
    let before = s.snapshot().await;
    let r = req.send().await.unwrap();
    let got = r.status().as_u16();
    let v = json(r).await;
    assert_eq!(got, status, "{v}");
    if let Some(f) = field {
        assert_eq!(v["field"], f, "{v}");
    }
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(before, s.snapshot().await, "the database changed on a refused request");
    v
}

#[tokio::test]
async fn key_creation_rejects_bad_fields_and_writes_nothing() {
    let s = Server::start().await;
    let long = "x".repeat(201);
    let big_meta: Value = json!({"blob": "y".repeat(17 * 1024)});
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": long}), "name"),
        (json!({"name": "a\u{0007}b"}), "name"),
        (json!({"name": "k", "kind": "bogus"}), "kind"),
        (json!({"name": "k", "expires_at": "2024-13-45T00:00:00Z"}), "expires_at"),
        (json!({"name": "k", "expires_at": "tomorrow"}), "expires_at"),
        (
            json!({"name": "k", "expires_at": "+10000-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (json!({"name": "k", "expires_at": "2020-01-01T00:00:00Z"}), "expires_at"),
        (
            json!({"name": "k", "not_before": "2090-01-02T00:00:00Z", "expires_at": "2090-01-01T00:00:00Z"}),
            "not_before",
        ),
        (json!({"name": "k", "max_uses": 0}), "max_uses"),
        (json!({"name": "k", "max_uses": -3}), "max_uses"),
        (json!({"name": "k", "max_uses": 1_000_000_001i64}), "max_uses"),
        (json!({"name": "k", "max_uses": 1.5}), "max_uses"),
        (json!({"name": "k", "max_uses": "10"}), "max_uses"),
        (json!({"name": "k", "scopes": "read"}), "scopes"),
        (json!({"name": "k", "scopes": ["has space"]}), "scopes[0]"),
        (json!({"name": "k", "scopes": [""]}), "scopes[0]"),
        (
            json!({"name": "k", "allowed_users": ["not-a-uuid"]}),
            "allowed_users[0]",
        ),
        (
            json!({"name": "k", "allowed_users": ["00000000-0000-0000-0000-000000000001"]}),
            "allowed_users[0]",
        ),
        (
            json!({"name": "k", "owner": "00000000-0000-0000-0000-000000000001"}),
            "owner",
        ),
        (json!({"name": "k", "metadata": [1, 2]}), "metadata"),
        (json!({"name": "k", "metadata": big_meta}), "metadata"),
        (json!({"name": "k", "surprise": true}), "surprise"),
    ];
    for (body, field) in cases {
        let v = expect_error(&s, s.admin(Method::POST, "/v1/keys").json(&body), 400, Some(field)).await;
        assert_eq!(v["error"], "invalid_request", "{body}");
    }
    // Malformed JSON, trailing garbage, an empty body.
    for raw in ["{\"name\": ", "{\"name\": \"k\"} x", "", "[1,2]", "null"] {
        expect_error(
            &s,
            s.admin(Method::POST, "/v1/keys")
                .header("content-type", "application/json")
                .body(raw.to_string()),
            400,
            None,
        )
        .await;
    }
    // Invalid UTF-8.
    expect_error(
        &s,
        s.admin(Method::POST, "/v1/keys")
            .header("content-type", "application/json")
            .body(vec![b'{', 0xff, 0xfe, b'}']),
        400,
        Some("body"),
    )
    .await;
}

#[tokio::test]
async fn oversized_wrong_media_type_and_bad_params() {
    let s = Server::start().await;
    let huge = format!("{{\"name\": \"{}\"}}", "z".repeat(1024 * 1024 + 10));
    let v = expect_error(
        &s,
        s.admin(Method::POST, "/v1/keys")
            .header("content-type", "application/json")
            .body(huge.clone()),
        413,
        None,
    )
    .await;
    assert_eq!(v["error"], "payload_too_large");
    // Chunked (no Content-Length) is limited too.
    let stream = futures::stream::iter((0..40).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024])));
    let r = s
        .admin(Method::POST, "/v1/keys")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    expect_error(
        &s,
        s.admin(Method::POST, "/v1/keys")
            .header("content-type", "text/plain")
            .body("{\"name\":\"k\"}"),
        415,
        None,
    )
    .await;
    expect_error(&s, s.admin(Method::GET, "/v1/keys/not-a-uuid"), 400, Some("id")).await;
    expect_error(&s, s.admin(Method::POST, "/v1/keys/not-a-uuid/use"), 400, Some("id")).await;
    expect_error(&s, s.admin(Method::DELETE, "/v1/keys/12"), 400, Some("id")).await;
    expect_error(&s, s.admin(Method::GET, "/v1/keys?limit=0"), 400, Some("limit")).await;
    expect_error(&s, s.admin(Method::GET, "/v1/keys?limit=abc"), 400, Some("limit")).await;
    expect_error(&s, s.admin(Method::GET, "/v1/keys?cursor=zzz"), 400, Some("cursor")).await;
    expect_error(&s, s.admin(Method::GET, "/v1/keys?kind=nope"), 400, Some("kind")).await;
    expect_error(&s, s.admin(Method::GET, "/v1/keys?bogus=1"), 400, Some("bogus")).await;
    expect_error(&s, s.admin(Method::GET, "/v1/events?after=-1"), 400, Some("after")).await;
    expect_error(
        &s,
        s.admin(Method::POST, "/v1/keys/verify").json(&json!({"key": ""})),
        400,
        Some("key"),
    )
    .await;
    expect_error(
        &s,
        s.admin(Method::POST, "/v1/keys/verify")
            .json(&json!({"key": "k".repeat(2000)})),
        400,
        Some("key"),
    )
    .await;
    expect_error(
        &s,
        s.admin(Method::POST, "/v1/keys/verify").json(&json!({"scope": "x"})),
        400,
        Some("key"),
    )
    .await;
    expect_error(
        &s,
        s.admin(Method::POST, "/v1/keys/verify")
            .json(&json!({"key": "k", "user": "bob"})),
        400,
        Some("user"),
    )
    .await;
    // Unknown routes answer the native error shape.
    let v = expect_error(&s, s.admin(Method::GET, "/v1/nothing-here"), 404, None).await;
    assert_eq!(v["error"], "not_found");
}

#[tokio::test]
async fn admin_inputs_are_validated() {
    let s = Server::start().await;
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "bad/name"}), "name"),
        (json!({"name": " padded "}), "name"),
        (json!({}), "name"),
    ] {
        expect_error(&s, s.admin(Method::POST, "/v1/orgs").json(&body), 400, Some(field)).await;
    }
    s.create_org("dup").await;
    expect_error(
        &s,
        s.admin(Method::POST, "/v1/orgs").json(&json!({"name": "dup"})),
        409,
        None,
    )
    .await;
    for (body, field) in [
        (json!({"username": "x y", "password": "long-enough"}), "username"),
        (json!({"username": "", "password": "long-enough"}), "username"),
        (json!({"username": "shorty", "password": "short"}), "password"),
        (
            json!({"username": "pid", "password": "long-enough", "person_id": 0}),
            "person_id",
        ),
        (
            json!({"username": "pid", "password": "long-enough", "person_id": 3_000_000_000i64}),
            "person_id",
        ),
        (
            json!({"username": "t", "password": "long-enough", "admin": "yes"}),
            "admin",
        ),
    ] {
        expect_error(&s, s.admin(Method::POST, "/v1/users").json(&body), 400, Some(field)).await;
    }
    expect_error(
        &s,
        s.admin(Method::POST, "/v1/users")
            .json(&json!({"username": "admin", "password": "long-enough"})),
        409,
        None,
    )
    .await;
}
