//! Password logins under load: concurrent correct logins are never refused, guessing still meets
//! the limits per (user, address), per address and per user.

use crate::common::*;
use reqwest::{Client, Method};
use serde_json::json;
use std::net::IpAddr;

/// A client whose connections come from `source` (another loopback address).
fn client_from(source: &str) -> Client {
    Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_fifty_six_concurrent_correct_logins_all_pass() {
    // 256 requests at once may take one connection more than 256 (the client pools a connection
    // it opened for a request that an earlier one's freed connection served first): room past
    // the per-address cap, which is not what this test is about.
    let s = Server::start_with(Options::default().env("KEYGATE_MAX_CONNECTIONS_PER_ADDRESS", "1024")).await;
    let k = create_key(&s, json!({"name": "k"})).await;
    let secret = k["key"].as_str().unwrap().to_string();
    let native = (0..256)
        .map(|_| s.admin(Method::POST, "/v1/keys/verify").json(&json!({"key": secret})))
        .collect();
    let statuses = statuses_at_once(native).await;
    assert_eq!(count(&statuses, 200), 256, "{statuses:?}");
    // SuperOffice clients send Basic on every call, many at once.
    let so = (0..256)
        .map(|_| {
            s.admin(Method::POST, "/api/v1/Agents/Person/CheckTemporaryKey")
                .json(&json!({"TemporaryKey": "nope"}))
        })
        .collect();
    let statuses = statuses_at_once(so).await;
    assert_eq!(count(&statuses, 200), 256, "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_from_one_address_lock_out_only_that_address() {
    let s = Server::start().await;
    let me = |c: &Client, pw: &str| c.get(s.url("/v1/me")).basic_auth("admin", Some(pw.to_string())).send();
    let guesser = client_from("127.0.0.2");
    for i in 0..5 {
        assert_eq!(me(&guesser, &format!("guess-{i}")).await.unwrap().status(), 401);
    }
    // That (user, address) is locked out, even with the right password...
    assert_eq!(me(&guesser, &s.admin_password).await.unwrap().status(), 429);
    // ...but the user, from another address, is not.
    let user = client_from("127.0.0.3");
    assert_eq!(me(&user, &s.admin_password).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_guesses_at_once_share_a_run_but_each_counts() {
    let s = Server::start().await;
    let c = client_from("127.0.0.4");
    let burst = (0..20)
        .map(|_| c.get(s.url("/v1/me")).basic_auth("admin", Some("the-same-guess")))
        .collect();
    let statuses = statuses_at_once(burst).await;
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
    // Every one of them counted: that address is locked out for the user now.
    let r = c
        .get(s.url("/v1/me"))
        .basic_auth("admin", Some(&s.admin_password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_guesser_meets_the_per_user_ceiling() {
    let s = Server::start_with(
        Options::default()
            .env("KEYGATE_LOGIN_MAX_FAILURES_PER_USER", "6")
            .env("KEYGATE_LOGIN_MAX_FAILURES_PER_USER_AND_SOURCE", "5"),
    )
    .await;
    for source in ["127.0.0.5", "127.0.0.6", "127.0.0.7"] {
        let c = client_from(source);
        for i in 0..2 {
            let r = c
                .get(s.url("/v1/me"))
                .basic_auth("admin", Some(format!("guess-{source}-{i}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401);
        }
    }
    // Six failures from three addresses: the user is locked, from anywhere, even with the
    // right password, until the window passes.
    let c = client_from("127.0.0.8");
    let r = c
        .get(s.url("/v1/me"))
        .basic_auth("admin", Some(&s.admin_password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    s.advance(901).await;
    let r = c
        .get(s.url("/v1/me"))
        .basic_auth("admin", Some(&s.admin_password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
