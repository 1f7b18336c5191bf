//! SuperOffice Person agent temporary keys over REST and SOAP, and SoPrincipal tickets
//! (seeds 000 and 001).

use crate::common::*;
use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};

const AGENT: &str = "/api/v1/Agents/Person";
const NS: &str = "http://www.superoffice.net/ws/crm/NetServer/Services86";

fn agent(s: &Server, method: &str) -> reqwest::RequestBuilder {
    s.admin(Method::POST, &format!("{AGENT}/{method}"))
}

async fn create(s: &Server, body: Value) -> String {
    let r = agent(s, "CreateTemporaryKey").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    json(r).await.as_str().unwrap().to_string()
}

async fn check(s: &Server, key: &str) -> Value {
    let r = agent(s, "CheckTemporaryKey")
        .json(&json!({"TemporaryKey": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    json(r).await
}

fn in_hours(h: i64) -> String {
    (Utc::now() + Duration::hours(h)).to_rfc3339()
}

/// The SOAP 1.2 sample of seed 001, verbatim but for the ticket.
fn seed_soap(ticket: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope
 xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"
 xmlns:SOAP-ENC="http://www.w3.org/2003/05/soap-encoding"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
 xmlns:xsd="http://www.w3.org/2001/XMLSchema"
 xmlns:NetServerServices862="http://schemas.microsoft.com/2003/10/Serialization/Arrays"
 xmlns:NetServerServices861="http://schemas.microsoft.com/2003/10/Serialization/"
 xmlns:Person="http://www.superoffice.net/ws/crm/NetServer/Services86">
  <Person:ApplicationToken>1234567-1234-9876</Person:ApplicationToken>
  <Person:Credentials>
    <Person:Ticket>{ticket}</Person:Ticket>
  </Person:Credentials>
 <SOAP-ENV:Body>
   <Person:CreateTemporaryKey>
    <Person:Domain xsi:type="Person:TemporaryKeyDomain">Unknown</Person:Domain>
    <Person:TargetId xsi:type="xsd:int">0</Person:TargetId>
    <Person:PersonId xsi:type="xsd:int">0</Person:PersonId>
    <Person:Expires xsi:type="xsd:dateTime">2021-11-30T13:22:59Z</Person:Expires>
   </Person:CreateTemporaryKey>

 </SOAP-ENV:Body>
</SOAP-ENV:Envelope>
"#
    )
}

fn soap11(op: &str, header: &str, body: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>{header}</s:Header><s:Body><{op} xmlns="{NS}">{body}</{op}></s:Body></s:Envelope>"#
    )
}

async fn soap_ticket(s: &Server) -> String {
    let body = soap11(
        "AuthenticateUsernamePassword",
        "",
        &format!("<UserName>admin</UserName><Password>{}</Password>", s.admin_password),
    );
    let r = s
        .req(Method::POST, "/Remote/Services86/SoPrincipal.svc")
        .header("Content-Type", "text/xml; charset=utf-8")
        .header(
            "SOAPAction",
            format!("\"{NS}/SoPrincipal/AuthenticateUsernamePassword\""),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("<AuthenticationSucceeded>true</AuthenticationSucceeded>"),
        "{text}"
    );
    between(&text, "<Ticket>", "</Ticket>").to_string()
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> &'a str {
    let start = s.find(a).unwrap_or_else(|| panic!("{a} not in {s}")) + a.len();
    &s[start..start + s[start..].find(b).unwrap()]
}

#[tokio::test]
async fn the_rest_seed_sample_answers_a_key_that_checks_as_expired() {
    let s = Server::start().await;
    // The seed's request, with a valid Basic login in place of its example credentials.
    let r = s
        .req(Method::POST, &format!("{AGENT}/CreateTemporaryKey"))
        .basic_auth("admin", Some(&s.admin_password))
        .header("Accept", "application/json; charset=utf-8")
        .header("Accept-Language", "en")
        .header("Content-Type", "application/json; charset=utf-8")
        .body(
            r#"{
  "Domain": "ChangePasswordCustomerCenter",
  "TargetId": 98,
  "PersonId": 798,
  "Expires": "2005-09-18T11:10:27.4874598+02:00"
}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json; charset=utf-8");
    let key = json(r).await.as_str().unwrap().to_string();
    assert!(
        key.len() >= 43 && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{key}"
    );
    let info = check(&s, &key).await;
    insta::assert_json_snapshot!("superoffice_check_seed_key", info);
    assert_eq!(info["Domain"], "ChangePasswordCustomerCenter");
    assert_eq!(info["TargetId"], 98);
    assert_eq!(info["PersonId"], 798);
    assert_eq!(info["IsExpired"], true);
}

#[tokio::test]
async fn the_soap_seed_sample_with_a_soprincipal_ticket() {
    let s = Server::start().await;
    let ticket = soap_ticket(&s).await;
    let r = s
        .req(Method::POST, "/Remote/Services86/Person.svc")
        .header("Content-Type", "application/soap+xml; charset=utf-8")
        .body(seed_soap(&ticket))
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
    assert!(
        text.contains(r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope""#),
        "answered in SOAP 1.2: {text}"
    );
    assert!(
        text.contains("<Succeeded xmlns=\"http://www.superoffice.net/ws/crm/NetServer/Services86\">true</Succeeded>")
    );
    let key = between(&text, "<CreateTemporaryKeyResponse", "</CreateTemporaryKeyResponse>");
    let key = between(key, "<Response>", "</Response>").to_string();
    assert!(key.len() >= 43, "{text}");
    // Recognised: Domain Unknown with ids 0 is what it was made for, and it has expired.
    let info = check(&s, &key).await;
    assert_eq!(info["Domain"], "Unknown");
    assert_eq!(info["IsExpired"], true);
    // A key that does not exist differs: IsExpired stays false.
    assert_eq!(check(&s, "no-such-key").await["IsExpired"], false);
    // The application token was recorded as a fingerprint, never as given.
    let feed = s
        .admin(Method::GET, "/v1/events?limit=500")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let feed_json: Value = serde_json::from_str(&feed).unwrap();
    let created = feed_json["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["type"] == "KeyCreated")
        .unwrap()
        .clone();
    assert!(
        created["data"]["application"].as_str().is_some_and(|a| a.len() == 16),
        "{created}"
    );
    assert_eq!(created["data"]["kind"], "temporary");
    assert!(!feed.contains("1234567-1234-9876"));
    assert!(!feed.contains(&key));
}

#[tokio::test]
async fn a_future_key_is_not_expired_until_the_clock_passes_it() {
    let s = Server::start().await;
    let key = create(
        &s,
        json!({"Domain": "PublicFaq", "TargetId": 5, "PersonId": null, "Expires": in_hours(1)}),
    )
    .await;
    let info = check(&s, &key).await;
    assert_eq!(info["IsExpired"], false);
    assert_eq!(info["PersonId"], 0);
    assert_eq!(info["Domain"], "PublicFaq");
    s.advance(3601).await;
    assert_eq!(check(&s, &key).await["IsExpired"], true);
}

#[tokio::test]
async fn every_content_type_in_and_out() {
    let s = Server::start().await;
    let exp = in_hours(2);
    let bodies: Vec<(&str, String)> = vec![
        (
            "application/json",
            json!({"Domain": "MailingRecipient", "TargetId": 1, "PersonId": 2, "Expires": exp}).to_string(),
        ),
        (
            "text/json",
            json!({"domain": 1, "targetid": "1", "personid": 2, "expires": exp}).to_string(),
        ),
        (
            "application/json-patch+json",
            json!({"Domain": "1", "TargetId": 1, "PersonId": 2, "Expires": exp}).to_string(),
        ),
        (
            "application/merge-patch+json",
            json!({"Domain": "MailingRecipient", "TargetId": 1, "PersonId": 2, "Expires": exp}).to_string(),
        ),
        (
            "application/xml",
            format!(
                "<CreateTemporaryKey><Domain>MailingRecipient</Domain><TargetId>1</TargetId><PersonId>2</PersonId><Expires>{exp}</Expires></CreateTemporaryKey>"
            ),
        ),
        (
            "text/xml",
            format!(
                r#"<request xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><Domain>1</Domain><TargetId>1</TargetId><PersonId>2</PersonId><Expires>{exp}</Expires></request>"#
            ),
        ),
        (
            "application/x-www-form-urlencoded",
            format!(
                "Domain=MailingRecipient&TargetId=1&PersonId=2&Expires={}",
                exp.replace('+', "%2B")
            ),
        ),
    ];
    for (ct, body) in bodies {
        let r = agent(&s, "CreateTemporaryKey")
            .header("Content-Type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{ct}");
        let key = json(r).await.as_str().unwrap().to_string();
        let info = check(&s, &key).await;
        assert_eq!(
            (
                info["Domain"].as_str().unwrap(),
                info["TargetId"].as_i64().unwrap(),
                info["PersonId"].as_i64().unwrap()
            ),
            ("MailingRecipient", 1, 2),
            "{ct}"
        );
    }
    // Out: XML by Accept.
    for accept in ["application/xml", "text/xml"] {
        let r = agent(&s, "CreateTemporaryKey")
            .header("Accept", accept)
            .json(&json!({"Domain": "PublicFaq", "Expires": exp}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-type"], format!("{accept}; charset=utf-8").as_str());
        let text = r.text().await.unwrap();
        assert!(
            text.starts_with(r#"<string xmlns="http://schemas.microsoft.com/2003/10/Serialization/">"#),
            "{text}"
        );
        let key = between(&text, "\">", "</string>").to_string();
        let r = agent(&s, "CheckTemporaryKey")
            .header("Accept", accept)
            .json(&json!({"TemporaryKey": key}))
            .send()
            .await
            .unwrap();
        let xml = r.text().await.unwrap();
        insta::assert_snapshot!(format!("superoffice_check_xml_{}", accept.replace('/', "_")), xml);
    }
    for accept in [
        "text/json",
        "application/json-patch+json",
        "application/merge-patch+json",
    ] {
        let r = agent(&s, "CheckTemporaryKey")
            .header("Accept", accept)
            .json(&json!({"TemporaryKey": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-type"], format!("{accept}; charset=utf-8").as_str());
        assert_eq!(json(r).await["Domain"], "Unknown");
    }
}

#[tokio::test]
async fn select_nulls_out_unlisted_properties() {
    let s = Server::start().await;
    let key = create(
        &s,
        json!({"Domain": "PublicFaq", "TargetId": 3, "PersonId": 4, "Expires": in_hours(1)}),
    )
    .await;
    let r = s
        .admin(
            Method::POST,
            &format!("{AGENT}/CheckTemporaryKey?$select=domain,PersonId"),
        )
        .json(&json!({"TemporaryKey": key}))
        .send()
        .await
        .unwrap();
    let v = json(r).await;
    assert_eq!(v["Domain"], "PublicFaq");
    assert_eq!(v["PersonId"], 4);
    assert_eq!(v["TargetId"], Value::Null);
    assert_eq!(v["IsExpired"], Value::Null);
    assert!(v.as_object().unwrap().contains_key("TargetId"), "nulled, not removed");
}

#[tokio::test]
async fn payloads_travel_with_the_key() {
    let s = Server::start().await;
    let r = agent(&s, "CreateTemporaryKeyWithPayload")
        .json(&json!({"Domain": "FormSubmitterRecipient", "TargetId": 9, "PersonId": 1, "Expires": in_hours(1), "Payload": "subscriptions=1,2"}))
        .send()
        .await
        .unwrap();
    let key = json(r).await.as_str().unwrap().to_string();
    assert_eq!(check(&s, &key).await["Payload"], "subscriptions=1,2");
    let before = s.snapshot().await;
    let r = agent(&s, "CreateTemporaryKeyWithPayload")
        .json(&json!({"Domain": "PublicFaq", "Expires": in_hours(1), "Payload": "x".repeat(4001)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(json(r).await["MessageDetail"].as_str().unwrap().starts_with("Payload:"));
    assert_eq!(before, s.snapshot().await);
}

#[tokio::test]
async fn every_auth_scheme_and_anonymous() {
    let s = Server::start().await;
    let body = json!({"TemporaryKey": "x"});
    let url = s.url(&format!("{AGENT}/CheckTemporaryKey"));
    let c = reqwest::Client::new();
    // Anonymous.
    let r = c.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"SuperOffice Username or Ticket\""
    );
    let v = json(r).await;
    assert_eq!(v["Error"], true);
    assert_eq!(v["ErrorType"], "UnauthorizedAccessException");
    assert_eq!(v["ErrorSource"], "Person.CheckTemporaryKey");
    // Basic good and bad.
    assert_eq!(
        c.post(&url)
            .basic_auth("admin", Some(&s.admin_password))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.post(&url)
            .basic_auth("admin", Some("nope-nope"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Tickets, both spellings; a bad ticket.
    let ticket = soap_ticket(&s).await;
    for scheme in ["SOTicket", "SoTicket"] {
        let r = c
            .post(&url)
            .header("Authorization", format!("{scheme} {ticket}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    assert_eq!(
        c.post(&url)
            .header("Authorization", "SoTicket 7T:1234abcxyzExample==")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Bearer.
    let me = json(s.admin(Method::GET, "/v1/me").send().await.unwrap()).await;
    let jwt = hs256(json!({"sub": me["user_id"], "exp": now_ts() + 600}));
    assert_eq!(
        c.post(&url)
            .bearer_auth(&jwt)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Cookie session: writes need X-XSRF-TOKEN.
    let r = c
        .post(s.url("/v1/sessions"))
        .json(&json!({"username": "admin", "password": s.admin_password}))
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect();
    let xsrf = json(r).await["xsrf_token"].as_str().unwrap().to_string();
    let jar = cookies.join("; ");
    assert_eq!(
        c.post(&url)
            .header("Cookie", &jar)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let r = c
        .post(&url)
        .header("Cookie", &jar)
        .header("X-XSRF-TOKEN", &xsrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn organizations_are_isolated() {
    let s = Server::start().await;
    let (_, a) = s.create_org("org-a").await;
    let (_, b) = s.create_org("org-b").await;
    let call = |key: &str, method: &str, body: Value| {
        s.req(Method::POST, &format!("{AGENT}/{method}"))
            .header("X-API-Key", key)
            .json(&body)
            .send()
    };
    let r = call(
        &a,
        "CreateTemporaryKey",
        json!({"Domain": "LoginCustomerCenter", "TargetId": 1, "PersonId": 1, "Expires": in_hours(1)}),
    )
    .await
    .unwrap();
    let key = json(r).await.as_str().unwrap().to_string();
    let info = json(
        call(&b, "CheckTemporaryKey", json!({"TemporaryKey": key}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (
            info["Domain"].as_str().unwrap(),
            info["TargetId"].as_i64().unwrap(),
            info["PersonId"].as_i64().unwrap()
        ),
        ("Unknown", 0, 0)
    );
    // B deleting that domain and person leaves A's key alone.
    let r = call(
        &b,
        "DeleteTemporaryKeysOfDomain",
        json!({"Domain": "LoginCustomerCenter", "PersonId": 1}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    let info = json(
        call(&a, "CheckTemporaryKey", json!({"TemporaryKey": key}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(info["Domain"], "LoginCustomerCenter");
}

#[tokio::test]
async fn delete_of_domain_removes_only_that_domain_and_person() {
    let s = Server::start().await;
    let k1 = create(
        &s,
        json!({"Domain": "LoginCustomerCenter", "TargetId": 1, "PersonId": 7, "Expires": in_hours(1)}),
    )
    .await;
    let k2 = create(
        &s,
        json!({"Domain": "LoginCustomerCenter", "TargetId": 2, "PersonId": 7, "Expires": in_hours(1)}),
    )
    .await;
    let other_person = create(
        &s,
        json!({"Domain": "LoginCustomerCenter", "TargetId": 1, "PersonId": 8, "Expires": in_hours(1)}),
    )
    .await;
    let other_domain = create(
        &s,
        json!({"Domain": "PublicFaq", "TargetId": 1, "PersonId": 7, "Expires": in_hours(1)}),
    )
    .await;
    let r = agent(&s, "DeleteTemporaryKeysOfDomain")
        .json(&json!({"Domain": 4, "PersonId": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.text().await.unwrap().is_empty());
    assert_eq!(check(&s, &k1).await["Domain"], "Unknown");
    assert_eq!(check(&s, &k2).await["Domain"], "Unknown");
    assert_eq!(check(&s, &other_person).await["Domain"], "LoginCustomerCenter");
    assert_eq!(check(&s, &other_domain).await["Domain"], "PublicFaq");
}

#[tokio::test]
async fn so_timezone_reads_local_times_in_the_clients_zone() {
    let s = Server::start().await;
    // Thirty minutes from now, as a wall-clock time with no offset.
    // .NET writes 7 fractional digits.
    let t = (Utc::now() + Duration::minutes(30)).naive_utc();
    let naive = format!(
        "{}.{:07}",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.and_utc().timestamp_subsec_nanos() / 100
    );
    let body = json!({"Domain": "PublicFaq", "Expires": naive});
    // Read as server local time (UTC by default): not expired.
    let key = create(&s, body.clone()).await;
    assert_eq!(check(&s, &key).await["IsExpired"], false);
    // Read in UTC+14: that wall-clock time was 13.5 hours ago.
    let r = agent(&s, "CreateTemporaryKey")
        .header("SO-TimeZone", "Pacific/Kiritimati")
        .json(&body)
        .send()
        .await
        .unwrap();
    let key = json(r).await.as_str().unwrap().to_string();
    assert_eq!(check(&s, &key).await["IsExpired"], true);
    // The Norwegian code NO is Europe/Oslo (UTC+1 or +2): also already past.
    let r = agent(&s, "CreateTemporaryKey")
        .header("SO-TimeZone", "NO")
        .json(&body)
        .send()
        .await
        .unwrap();
    let key = json(r).await.as_str().unwrap().to_string();
    assert_eq!(check(&s, &key).await["IsExpired"], true);
    // Explicit offsets are exact whatever the zone.
    let r = agent(&s, "CreateTemporaryKey")
        .header("SO-TimeZone", "Pacific/Kiritimati")
        .json(&json!({"Domain": "PublicFaq", "Expires": in_hours(1)}))
        .send()
        .await
        .unwrap();
    assert_eq!(check(&s, json(r).await.as_str().unwrap()).await["IsExpired"], false);
    // An unknown zone is a bad request; SO-Culture is accepted.
    let r = agent(&s, "CreateTemporaryKey")
        .header("SO-TimeZone", "Mars/Olympus")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(json(r).await["MessageDetail"].as_str().unwrap().contains("SO-TimeZone"));
    let r = agent(&s, "CheckTemporaryKey")
        .header("SO-Culture", "nb")
        .json(&json!({"TemporaryKey": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_server_time_zone_setting_applies_without_so_timezone() {
    let s = Server::start_with(Options::default().env("KEYGATE_TIME_ZONE", "Pacific/Kiritimati")).await;
    let naive = (Utc::now() + Duration::minutes(30))
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let key = create(&s, json!({"Domain": "PublicFaq", "Expires": naive})).await;
    assert_eq!(check(&s, &key).await["IsExpired"], true);
}

#[tokio::test]
async fn bad_input_is_refused_in_the_agent_error_shapes_and_changes_nothing() {
    let s = Server::start().await;
    let exp = in_hours(1);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "application/json",
            json!({"Domain": "Nope", "Expires": exp}).to_string(),
            400,
            "Domain:",
        ),
        (
            "application/json",
            json!({"Domain": 99, "Expires": exp}).to_string(),
            400,
            "Domain:",
        ),
        ("application/json", json!({"Expires": exp}).to_string(), 400, "Domain:"),
        (
            "application/json",
            json!({"Domain": "PublicFaq"}).to_string(),
            400,
            "Expires:",
        ),
        (
            "application/json",
            json!({"Domain": "PublicFaq", "Expires": "2021-13-40T00:00:00Z"}).to_string(),
            400,
            "Expires:",
        ),
        (
            "application/json",
            json!({"Domain": "PublicFaq", "Expires": "soon"}).to_string(),
            400,
            "Expires:",
        ),
        (
            "application/json",
            json!({"Domain": "PublicFaq", "Expires": "+10000-01-01T00:00:00Z"}).to_string(),
            400,
            "Expires:",
        ),
        (
            "application/json",
            json!({"Domain": "PublicFaq", "Expires": exp, "TargetId": "abc"}).to_string(),
            400,
            "TargetId:",
        ),
        (
            "application/json",
            json!({"Domain": "PublicFaq", "Expires": exp, "TargetId": 3_000_000_000i64}).to_string(),
            400,
            "TargetId:",
        ),
        (
            "application/json",
            json!({"Domain": "PublicFaq", "Expires": exp, "PersonId": -1}).to_string(),
            400,
            "PersonId:",
        ),
        ("application/json", "{\"Domain\": ".to_string(), 400, "body:"),
        ("application/json", "[1]".to_string(), 400, "request:"),
        (
            "application/xml",
            "<CreateTemporaryKey><Domain>PublicFaq</Domain>".to_string(),
            400,
            "request:",
        ),
        (
            "text/xml",
            r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r><Domain>&x;</Domain></r>"#
                .to_string(),
            400,
            "request: DOCTYPE",
        ),
    ];
    let before = s.snapshot().await;
    for (ct, body, status, detail) in cases {
        let r = agent(&s, "CreateTemporaryKey")
            .header("Content-Type", ct)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
        let v = json(r).await;
        assert_eq!(v["Message"], "The request is invalid.", "{v}");
        assert!(
            v["MessageDetail"].as_str().unwrap().starts_with(detail),
            "{body} -> {v}"
        );
    }
    // Wrong media type and unknown method: the entity error shape.
    let r = agent(&s, "CreateTemporaryKey")
        .header("Content-Type", "text/plain")
        .body("Domain=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let v = json(r).await;
    assert_eq!(v["Error"], true);
    assert_eq!(v["ErrorType"], "SoUnsupportedMediaTypeException");
    let r = agent(&s, "LaunchRockets").json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(json(r).await["ErrorType"], "SoNotFoundException");
    assert_eq!(before, s.snapshot().await);
    // Norwegian by Accept-Language, overridden by SO-Language.
    let r = agent(&s, "CreateTemporaryKey")
        .header("Accept-Language", "nb-NO")
        .json(&json!({"Expires": exp}))
        .send()
        .await
        .unwrap();
    let v = json(r).await;
    assert_eq!(v["Message"], "Forespørselen er ugyldig.");
    assert_eq!(v["MessageDetail"], "Domain: er påkrevd");
    let r = agent(&s, "CreateTemporaryKey")
        .header("Accept-Language", "nb-NO")
        .header("SO-Language", "en")
        .json(&json!({"Expires": exp}))
        .send()
        .await
        .unwrap();
    assert_eq!(json(r).await["Message"], "The request is invalid.");
    // Errors follow Accept too.
    let r = agent(&s, "CreateTemporaryKey")
        .header("Accept", "application/xml")
        .json(&json!({"Expires": exp}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(
        text.starts_with("<Error ") && text.contains("<Message>The request is invalid.</Message>"),
        "{text}"
    );
}

#[tokio::test]
async fn soap_versions_faults_and_failures() {
    let s = Server::start().await;
    let ticket = soap_ticket(&s).await;
    let exp = in_hours(1);
    let post = |ct: &str, body: String| {
        s.req(Method::POST, "/Remote/Services86/Person.svc")
            .header("Content-Type", ct.to_string())
            .body(body)
            .send()
    };
    // SOAP 1.1 with the credentials in the Header and a SOAPAction.
    let creds = format!(r#"<Credentials xmlns="{NS}"><Ticket>{ticket}</Ticket></Credentials>"#);
    let r = s
        .req(Method::POST, "/Remote/Services86/Person.svc")
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", format!("\"{NS}/Person/CreateTemporaryKey\""))
        .body(soap11(
            "CreateTemporaryKey",
            &creds,
            &format!("<Domain>LoginCustomerCenter</Domain><TargetId>3</TargetId><PersonId>0</PersonId><Expires>{exp}</Expires>"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/xml"));
    let text = r.text().await.unwrap();
    assert!(text.contains("http://schemas.xmlsoap.org/soap/envelope/"), "{text}");
    let key = between(&text, "<Response>", "</Response>").to_string();
    let r = post(
        "text/xml",
        soap11(
            "CheckTemporaryKey",
            &creds,
            &format!("<TemporaryKey>{key}</TemporaryKey>"),
        ),
    )
    .await
    .unwrap();
    let text = r.text().await.unwrap();
    insta::assert_snapshot!("soap11_check_response", text);
    // A bad ticket: Succeeded false + ExceptionInfo, HTTP 200, nothing written.
    let before = s.snapshot().await;
    let bad = format!(r#"<Credentials xmlns="{NS}"><Ticket>7T:1234abcxyzExample==</Ticket></Credentials>"#);
    let r = post(
        "text/xml",
        soap11(
            "CreateTemporaryKey",
            &bad,
            &format!("<Domain>PublicFaq</Domain><Expires>{exp}</Expires>"),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains(">false</Succeeded>")
            && text.contains("<ExceptionInfo")
            && text.contains("SoAuthenticationException"),
        "{text}"
    );
    // Bad arguments: also an exception, not a fault.
    let r = post(
        "text/xml",
        soap11(
            "CreateTemporaryKey",
            &creds,
            "<Domain>Nope</Domain><Expires>2021-11-30T13:22:59Z</Expires>",
        ),
    )
    .await
    .unwrap();
    let text = r.text().await.unwrap();
    assert!(
        text.contains(">false</Succeeded>") && text.contains("Domain: unknown TemporaryKeyDomain"),
        "{text}"
    );
    // Malformed envelopes get Faults in the version asked.
    let r = post(
        "text/xml",
        "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>".into(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 500);
    let t = r.text().await.unwrap();
    assert!(t.contains("<faultcode>s:Client</faultcode>"), "{t}");
    let r = post("application/soap+xml", "<notsoap/>".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("<s:Value>s:Sender</s:Value>"));
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&x;</s:Body></s:Envelope>"#;
    let r = post("text/xml", xxe.into()).await.unwrap();
    assert_eq!(r.status(), 500);
    let t = r.text().await.unwrap();
    assert!(t.contains("DOCTYPE") && !t.contains("root:"), "{t}");
    let r = post("text/xml", soap11("LaunchRockets", &creds, "")).await.unwrap();
    assert!(r.text().await.unwrap().contains("has no operation LaunchRockets"));
    assert_eq!(before, s.snapshot().await);
    // SoPrincipal with a wrong password: AuthenticationSucceeded false.
    let r = s
        .req(Method::POST, "/Remote/Services86/SoPrincipal.svc")
        .header("Content-Type", "text/xml")
        .body(soap11(
            "AuthenticateUsernamePassword",
            "",
            "<UserName>admin</UserName><Password>wrong-one</Password>",
        ))
        .send()
        .await
        .unwrap();
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<AuthenticationSucceeded>false</AuthenticationSucceeded>")
    );
}

#[tokio::test]
async fn wsdl_is_served_for_both_services() {
    let s = Server::start().await;
    for (svc, op) in [
        ("Person", "CheckTemporaryKey"),
        ("SoPrincipal", "AuthenticateUsernamePassword"),
    ] {
        let r = s
            .req(Method::GET, &format!("/Remote/Services86/{svc}.svc?wsdl"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/xml"));
        let w = r.text().await.unwrap();
        assert!(w.contains(&format!(r#"<xs:element name="{op}">"#)), "{w}");
        assert!(
            w.contains(&format!("location=\"{}/Remote/Services86/{svc}.svc\"", s.base)),
            "{w}"
        );
    }
}

pub(crate) fn zeep_python() -> Option<std::path::PathBuf> {
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/soap/.venv/bin/python");
    if py.exists() {
        return Some(py);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "zeep is missing; scripts/test.sh installs it"
    );
    eprintln!("skipped: tests/soap/.venv missing (scripts/setup-soap.sh installs zeep)");
    None
}

#[tokio::test]
async fn a_real_soap_client_consumes_the_wsdl_and_calls_the_operations() {
    let Some(py) = zeep_python() else { return };
    let s = Server::start().await;
    let base = s.base.clone();
    let pw = s.admin_password.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(py)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/soap/zeep_client.py"))
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
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["ticket_issued"], true);
    assert_eq!(v["bad_login_succeeded"], false);
    // Each version's WSDL gives the client exactly that version's operations.
    assert_eq!(
        v["operations"],
        json!({
            "86": ["CheckTemporaryKey", "CreateTemporaryKey"],
            "87": ["CheckTemporaryKey", "CreateTemporaryKey", "DeleteTemporaryKeysOfDomain"],
            "88": ["CheckTemporaryKey", "CreateTemporaryKey", "CreateTemporaryKeyWithPayload", "DeleteTemporaryKeysOfDomain"],
        })
    );
    assert_eq!(v["check86_has_payload"], false);
    assert_eq!(
        v["check86_of_a_newer_domain"],
        json!({"Succeeded": false, "ExceptionType": "ArgumentException"})
    );
    assert_eq!(
        v["check"],
        json!({"Domain": "LoginCustomerCenter", "TargetId": 42, "PersonId": 7, "IsExpired": false})
    );
    assert_eq!(
        v["check12"],
        json!({"Domain": "PublicFaq", "IsExpired": true, "Payload": "hello"})
    );
    assert_eq!(v["after_delete"], json!({"Domain": "Unknown", "TargetId": 0}));
    assert_eq!(
        v["bad_ticket"],
        json!({"Succeeded": false, "ExceptionType": "SoAuthenticationException"})
    );
    // The key zeep made works over REST too.
    assert_eq!(
        check(&s, v["key"].as_str().unwrap()).await["Domain"],
        "Unknown",
        "deleted by zeep"
    );
}

/// The namespace of a service version.
fn ns_of(version: u8) -> String {
    format!("http://www.superoffice.net/ws/crm/NetServer/Services{version}")
}

/// A SOAP 1.1 call to a version's Person.svc with a ticket: (status, body).
async fn person_soap(s: &Server, version: u8, ticket: &str, op: &str, inner: &str) -> (u16, String) {
    let ns = ns_of(version);
    let r = s
        .req(Method::POST, &format!("/Remote/Services{version}/Person.svc"))
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", format!("\"{ns}/Person/{op}\""))
        .body(format!(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><Credentials xmlns="{ns}"><Ticket>{ticket}</Ticket></Credentials></s:Header><s:Body><{op} xmlns="{ns}">{inner}</{op}></s:Body></s:Envelope>"#
        ))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn each_services_version_lists_and_serves_its_own_person_operations() {
    let s = Server::start().await;
    // The WSDLs: each version's namespace, operations, domains and TemporaryKeyInfo.
    let all = [
        "CreateTemporaryKey",
        "CreateTemporaryKeyWithPayload",
        "CheckTemporaryKey",
        "DeleteTemporaryKeysOfDomain",
    ];
    for (version, ops, domains, payload) in [
        (86, vec!["CreateTemporaryKey", "CheckTemporaryKey"], 5, false),
        (
            87,
            vec!["CreateTemporaryKey", "CheckTemporaryKey", "DeleteTemporaryKeysOfDomain"],
            7,
            false,
        ),
        (88, all.to_vec(), 8, true),
    ] {
        let ns = ns_of(version);
        let w = s
            .req(Method::GET, &format!("/Remote/Services{version}/Person.svc?wsdl"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(w.contains(&format!(r#"targetNamespace="{ns}""#)), "{version}");
        for op in all {
            let listed = ops.contains(&op);
            assert_eq!(
                w.contains(&format!(r#"<xs:element name="{op}">"#)),
                listed,
                "{op} in {version}"
            );
            assert_eq!(
                w.matches(&format!(r#"soapAction="{ns}/Person/{op}""#)).count(),
                if listed { 2 } else { 0 },
                "{op} in {version}"
            );
        }
        assert_eq!(w.matches("<wsdl:operation ").count(), ops.len() * 3, "{version}");
        let dom = &w[w.find(r#"<xs:simpleType name="TemporaryKeyDomain">"#).unwrap()..];
        let dom = &dom[..dom.find("</xs:simpleType>").unwrap()];
        assert_eq!(dom.matches("<xs:enumeration ").count(), domains, "{version}");
        assert_eq!(dom.contains("RegisterCustomerCenterEmailVerification"), version >= 88);
        assert_eq!(dom.contains("PublicFaq"), version >= 87);
        // TemporaryKeyInfo is a Carrier (TableRight, FieldProperties) with its fields in order.
        let info = &w[w.find(r#"<xs:complexType name="TemporaryKeyInfo">"#).unwrap()..];
        let info = &info[..info.find("</xs:complexType>").unwrap()];
        assert!(info.contains(r#"<xs:extension base="tns:Carrier">"#), "{info}");
        let fields: Vec<&str> = info
            .split(r#" name=""#)
            .skip(2)
            .map(|f| &f[..f.find('"').unwrap()])
            .collect();
        let mut want = vec!["Domain", "TargetId", "PersonId", "IsExpired"];
        if payload {
            want.push("Payload");
        }
        assert_eq!(fields, want, "{version}");
        // The rights masks are xs:lists of single flags in every version.
        assert!(w.contains(r#"<xs:simpleType name="ETableRight"><xs:list>"#));
        assert!(w.contains(r#"<xs:simpleType name="EFieldRight"><xs:list>"#));
        assert!(!w.contains(r#"value="FULL""#));
    }

    // The calls. A ticket from any version's SoPrincipal works with every version.
    let ns88 = ns_of(88);
    let r = s
        .req(Method::POST, "/Remote/Services88/SoPrincipal.svc")
        .header("Content-Type", "text/xml")
        .header("SOAPAction", format!("\"{ns88}/SoPrincipal/AuthenticateUsernamePassword\""))
        .body(format!(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><AuthenticateUsernamePassword xmlns="{ns88}"><UserName>admin</UserName><Password>{}</Password></AuthenticateUsernamePassword></s:Body></s:Envelope>"#,
            s.admin_password
        ))
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(
        text.contains(&format!(r#"<AuthenticateResponse xmlns="{ns88}">"#))
            && text.contains("<AuthenticationSucceeded>true</AuthenticationSucceeded>"),
        "{text}"
    );
    let t = between(&text, "<Ticket>", "</Ticket>").to_string();
    let exp = in_hours(1);
    let args = |domain: &str| {
        format!("<Domain>{domain}</Domain><TargetId>9</TargetId><PersonId>3</PersonId><Expires>{exp}</Expires>")
    };

    // Services86 lacks CreateTemporaryKeyWithPayload and DeleteTemporaryKeysOfDomain: unknown
    // SOAP actions there (a Fault), and nothing is written.
    let before = s.snapshot().await;
    for (version, op, inner) in [
        (
            86,
            "CreateTemporaryKeyWithPayload",
            args("LoginCustomerCenter") + "<Payload>p</Payload>",
        ),
        (
            87,
            "CreateTemporaryKeyWithPayload",
            args("LoginCustomerCenter") + "<Payload>p</Payload>",
        ),
        (
            86,
            "DeleteTemporaryKeysOfDomain",
            "<Domain>LoginCustomerCenter</Domain><PersonId>3</PersonId>".into(),
        ),
    ] {
        let (status, text) = person_soap(&s, version, &t, op, &inner).await;
        assert_eq!(status, 500, "{text}");
        assert!(
            text.contains("<faultcode>s:Client</faultcode>")
                && text.contains(&format!("Person has no operation {op} in Services{version}")),
            "{text}"
        );
    }
    // A domain the version does not know is a bad argument there.
    for (version, domain) in [
        (86, "PublicFaq"),
        (86, "5"),
        (86, "ChangePasswordCustomerCenter"),
        (87, "RegisterCustomerCenterEmailVerification"),
        (87, "7"),
    ] {
        let (status, text) = person_soap(&s, version, &t, "CreateTemporaryKey", &args(domain)).await;
        assert_eq!(status, 200);
        assert!(
            text.contains(">false</Succeeded>")
                && text.contains("<ExceptionType>ArgumentException</ExceptionType>")
                && text.contains(&format!("in Services{version}")),
            "{version} {domain}: {text}"
        );
    }
    assert_eq!(before, s.snapshot().await);

    // Services88: a payload and domain 7; its answers are in its namespace.
    let (_, text) = person_soap(
        &s,
        88,
        &t,
        "CreateTemporaryKeyWithPayload",
        &(args("RegisterCustomerCenterEmailVerification") + "<Payload>p &amp; q</Payload>"),
    )
    .await;
    assert!(
        text.contains(&format!(r#"<Succeeded xmlns="{ns88}">true</Succeeded>"#))
            && text.contains(&format!(r#"<CreateTemporaryKeyWithPayloadResponse xmlns="{ns88}">"#)),
        "{text}"
    );
    let k88 = between(&text, "<Response>", "</Response>").to_string();
    let (_, text) = person_soap(
        &s,
        88,
        &t,
        "CheckTemporaryKey",
        &format!("<TemporaryKey>{k88}</TemporaryKey>"),
    )
    .await;
    assert!(
        text.contains(r#"<Response><TableRight i:nil="true"/><FieldProperties/><Domain>RegisterCustomerCenterEmailVerification</Domain><TargetId>9</TargetId><PersonId>3</PersonId><IsExpired>false</IsExpired><Payload>p &amp; q</Payload></Response>"#),
        "{text}"
    );
    // Services86 and 87 cannot carry domain 7: an ArgumentException, not a value outside
    // their enumeration.
    for version in [86, 87] {
        let (_, text) = person_soap(
            &s,
            version,
            &t,
            "CheckTemporaryKey",
            &format!("<TemporaryKey>{k88}</TemporaryKey>"),
        )
        .await;
        assert!(
            text.contains(">false</Succeeded>")
                && text.contains("<ExceptionType>ArgumentException</ExceptionType>")
                && text.contains(&format!("is not in Services{version}; use Services88 or later")),
            "{text}"
        );
    }
    // Services87: PublicFaq, and no Payload in TemporaryKeyInfo.
    let ns87 = ns_of(87);
    let (_, text) = person_soap(&s, 87, &t, "CreateTemporaryKey", &args("PublicFaq")).await;
    let k87 = between(&text, "<Response>", "</Response>").to_string();
    let (_, text) = person_soap(
        &s,
        87,
        &t,
        "CheckTemporaryKey",
        &format!("<TemporaryKey>{k87}</TemporaryKey>"),
    )
    .await;
    assert!(
        text.contains(&format!(r#"<CheckTemporaryKeyResponse xmlns="{ns87}"><Response><TableRight i:nil="true"/><FieldProperties/><Domain>PublicFaq</Domain><TargetId>9</TargetId><PersonId>3</PersonId><IsExpired>false</IsExpired></Response></CheckTemporaryKeyResponse>"#)),
        "{text}"
    );
    // DeleteTemporaryKeysOfDomain from Services87 on: an empty response element.
    let (_, text) = person_soap(
        &s,
        87,
        &t,
        "DeleteTemporaryKeysOfDomain",
        "<Domain>PublicFaq</Domain><PersonId>3</PersonId>",
    )
    .await;
    assert!(
        text.contains(&format!(r#"<Succeeded xmlns="{ns87}">true</Succeeded>"#))
            && text.contains(&format!(
                r#"<DeleteTemporaryKeysOfDomainResponse xmlns="{ns87}"></DeleteTemporaryKeysOfDomainResponse>"#
            )),
        "{text}"
    );
    assert_eq!(check(&s, &k87).await["Domain"], "Unknown");
    assert_eq!(
        check(&s, &k88).await["Domain"],
        "RegisterCustomerCenterEmailVerification"
    );
    // The REST agent has no version: every operation and domain.
    let key = create(&s, json!({"Domain": 7, "Expires": exp})).await;
    assert_eq!(
        check(&s, &key).await["Domain"],
        "RegisterCustomerCenterEmailVerification"
    );
}

#[tokio::test]
async fn paths_and_query_names_match_without_regard_to_case() {
    let s = Server::start().await;
    // The REST agents, any spelling of the path; the method name and query names too.
    let key = create(&s, json!({"Domain": "PublicFaq", "Expires": in_hours(1)})).await;
    for path in [
        "/api/v1/agents/person/checktemporarykey",
        "/API/V1/AGENTS/PERSON/CHECKTEMPORARYKEY",
        "/Api/v1/Agents/Person/CheckTemporaryKey",
    ] {
        let r = s
            .admin(Method::POST, path)
            .json(&json!({"TemporaryKey": key}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(json(r).await["Domain"], "PublicFaq", "{path}");
    }
    // An operation spelled as the table spells it has a route of its own (no path parameter);
    // other spellings reach it through `{method}`. Both are counted, each under its route.
    let m = s.metrics().await;
    for route in [
        "/api/v1/Agents/Person/CheckTemporaryKey",
        "/api/v1/Agents/Person/{method}",
    ] {
        assert!(
            m.lines().any(|l| l.starts_with("keygate_http_requests_total")
                && l.contains(&format!("route=\"{route}\""))
                && l.contains("status=\"200\"")),
            "{route}: {m}"
        );
    }
    for path in [
        "/api/v1/Agents/Person/CheckTemporaryKey",
        "/api/v1/Agents/Person/checktemporarykey",
    ] {
        let r = s.admin(Method::PUT, path).send().await.unwrap();
        assert_eq!(r.status(), 405, "{path}");
    }
    let r = s
        .admin(Method::POST, "/api/v1/agents/person/CheckTemporaryKey?$SELECT=domain")
        .json(&json!({"TemporaryKey": key}))
        .send()
        .await
        .unwrap();
    let v = json(r).await;
    assert_eq!((&v["Domain"], &v["TargetId"]), (&json!("PublicFaq"), &Value::Null));
    let r = s
        .admin(
            Method::POST,
            "/api/v1/agents/foreignsystem/getforeignappentity?FOREIGNAPPENTITYID=12345",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "null");
    // GET on a method, in any case, describes it.
    let r = s
        .req(Method::GET, "/API/v1/agents/PERSON/createtemporarykey")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["Method"], "CreateTemporaryKey");

    // SOAP: the WSDL at any spelling of the path and of `wsdl`, addressed at the canonical path.
    for path in [
        "/remote/services86/person.svc?WSDL",
        "/REMOTE/SERVICES88/PERSON.SVC?wsdl",
        "/remote/Services87/foreignsystem.svc?Wsdl",
    ] {
        let r = s.req(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let w = r.text().await.unwrap();
        assert!(w.contains("<wsdl:definitions"), "{path}");
        let canonical = if path.contains("86") {
            "/Remote/Services86/Person.svc"
        } else if path.contains("88") {
            "/Remote/Services88/Person.svc"
        } else {
            "/Remote/Services87/ForeignSystem.svc"
        };
        assert!(
            w.contains(&format!(r#"<soap:address location="{}{canonical}"/>"#, s.base)),
            "{path}"
        );
    }
    // A SOAP call at a lower-case path.
    let ticket = soap_ticket(&s).await;
    let ns = ns_of(88);
    let r = s
        .req(Method::POST, "/remote/services88/person.svc")
        .header("Content-Type", "text/xml")
        .header("SOAPAction", format!("\"{ns}/Person/CheckTemporaryKey\""))
        .body(format!(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><Credentials xmlns="{ns}"><Ticket>{ticket}</Ticket></Credentials></s:Header><s:Body><CheckTemporaryKey xmlns="{ns}"><TemporaryKey>{key}</TemporaryKey></CheckTemporaryKey></s:Body></s:Envelope>"#
        ))
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains("<Domain>PublicFaq</Domain>"), "{text}");

    // Tedee's paths too (its version segment and key ids pass as sent).
    let r = s
        .req(Method::GET, "/API/V37/My/PersonalAccessKey")
        .basic_auth("admin", Some(&s.admin_password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(json(r).await["result"].is_array());
    let r = s
        .req(Method::POST, "/Api/v37/MY/personalAccessKey")
        .basic_auth("admin", Some(&s.admin_password))
        .json(&json!({"name": "any case", "validTo": in_hours(24), "scopes": ["Organization.Read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = json(r).await["result"]["id"].as_str().unwrap().to_string();
    let r = s
        .req(Method::DELETE, &format!("/API/V37/MY/PERSONALACCESSKEY/{id}"))
        .basic_auth("admin", Some(&s.admin_password))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    // keygate's own routes stay case-sensitive.
    for path in ["/V1/keys", "/v1/Keys", "/OpenAPI.json"] {
        let r = s
            .req(Method::GET, path)
            .basic_auth("admin", Some(&s.admin_password))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn get_on_an_agent_method_describes_the_call_and_never_runs_it() {
    let s = Server::start().await;
    let before = s.snapshot().await;
    // Authenticated or not, GET never invokes the method.
    for r in [
        s.req(Method::GET, &format!("{AGENT}/CreateTemporaryKey")),
        s.admin(Method::GET, &format!("{AGENT}/CreateTemporaryKey")),
    ] {
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json; charset=utf-8");
        let v = json(r).await;
        assert_eq!(v["Agent"], "Person");
        assert_eq!(v["Method"], "CreateTemporaryKey");
        assert_eq!(v["HttpMethod"], "POST");
        assert_eq!(v["Url"], "/api/v1/Agents/Person/CreateTemporaryKey");
        assert_eq!(
            v["Description"],
            "Create a temporary key in the database from the given parameters and return the key string."
        );
        assert_eq!((&v["Returns"], &v["Status"]), (&json!("String"), &json!(200)));
        let params: Vec<(String, String, bool, String)> = v["Parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["Name"].as_str().unwrap().into(),
                    p["Type"].as_str().unwrap().into(),
                    p["Required"].as_bool().unwrap(),
                    p["In"].as_str().unwrap().into(),
                )
            })
            .collect();
        let p = |n: &str, t: &str, r: bool| (n.to_string(), t.to_string(), r, "body".to_string());
        assert_eq!(
            params,
            vec![
                p("Domain", "TemporaryKeyDomain", true),
                p("TargetId", "Int32", false),
                p("PersonId", "Int32", false),
                p("Expires", "DateTime", true),
            ]
        );
        assert_eq!(
            v["Parameters"][0]["Values"][7],
            "RegisterCustomerCenterEmailVerification"
        );
    }
    let v = json(
        s.req(Method::GET, &format!("{AGENT}/DeleteTemporaryKeysOfDomain"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((&v["Returns"], &v["Status"]), (&json!("Void"), &json!(204)));
    // ForeignSystem: query parameters and carriers.
    let v = json(
        s.req(Method::GET, "/api/v1/Agents/ForeignSystem/GetForeignAppEntity")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["Returns"], "ForeignAppEntity");
    assert_eq!(
        v["Parameters"],
        json!([{"Name": "ForeignAppEntityId", "Type": "Int32", "Required": true, "In": "query"}])
    );
    let v = json(
        s.req(Method::GET, "/api/v1/Agents/ForeignSystem/getdevicekeys")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (&v["Method"], &v["Returns"]),
        (&json!("GetDeviceKeys"), &json!("ForeignKey[]"))
    );
    // XML by Accept.
    let r = s
        .req(Method::GET, "/api/v1/Agents/ForeignSystem/SaveForeignKey")
        .header("Accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/xml; charset=utf-8");
    let x = r.text().await.unwrap();
    assert!(
        x.starts_with(r#"<AgentMethodDescription xmlns="http://schemas.datacontract.org/2004/07/SuperOffice.CRM.Services""#)
            && x.contains("<Method>SaveForeignKey</Method>")
            && x.contains("<Parameters><Parameter><In>body</In><Name>ForeignKey</Name><Required>true</Required><Type>ForeignKey</Type></Parameter>")
            && x.contains("<Returns>ForeignKey</Returns>"),
        "{x}"
    );
    // An unknown method: the agent's 404, in JSON or XML.
    let r = s
        .req(Method::GET, &format!("{AGENT}/LaunchRockets"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v = json(r).await;
    assert_eq!(
        (&v["Error"], &v["ErrorType"]),
        (&json!(true), &json!("SoNotFoundException"))
    );
    assert_eq!(v["ErrorSource"], "Person.LaunchRockets");
    let r = s
        .req(Method::GET, "/api/v1/Agents/ForeignSystem/Nope")
        .header("Accept", "text/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().starts_with("<Error "));
    assert_eq!(before, s.snapshot().await, "GET ran nothing");
}

#[tokio::test]
async fn so_timezone_takes_superoffice_zone_ids_and_codes() {
    let s = Server::start().await;
    let naive =
        |t: chrono::DateTime<Utc>, tz: chrono_tz::Tz| t.with_timezone(&tz).format("%Y-%m-%dT%H:%M:%S").to_string();
    let soon = Utc::now() + Duration::minutes(30);
    let past = Utc::now() - Duration::minutes(30);
    let ny = chrono_tz::America::New_York;
    let oslo = chrono_tz::Europe::Oslo;
    let make = |zone: Option<&'static str>, expires: String| {
        let mut r = agent(&s, "CreateTemporaryKey").json(&json!({"Domain": "PublicFaq", "Expires": expires}));
        if let Some(z) = zone {
            r = r.header("SO-TimeZone", z);
        }
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 200);
            json(r).await.as_str().unwrap().to_string()
        }
    };
    // New York's wall clock half an hour from now: not expired when read in New York (id 460,
    // code US-NY), but hours past when read as UTC (New York is behind it).
    for zone in ["460", "US-NY", "us-ny", "460, includeTZOffset", "460,includetzoffset"] {
        let key = make(Some(zone), naive(soon, ny)).await;
        assert_eq!(check(&s, &key).await["IsExpired"], false, "{zone}");
    }
    let key = make(None, naive(soon, ny)).await;
    assert_eq!(check(&s, &key).await["IsExpired"], true);
    // Oslo's wall clock half an hour ago: past in Oslo (id 261, code NO), ahead as UTC.
    for zone in ["261", "NO"] {
        let key = make(Some(zone), naive(past, oslo)).await;
        assert_eq!(check(&s, &key).await["IsExpired"], true, "{zone}");
    }
    let key = make(None, naive(past, oslo)).await;
    assert_eq!(check(&s, &key).await["IsExpired"], false);
    // An explicit offset wins over the zone.
    let key = make(Some("261"), soon.to_rfc3339()).await;
    assert_eq!(check(&s, &key).await["IsExpired"], false);
    // Ids and options that do not exist are bad requests.
    for zone in ["262", "99999", "NO, shout", "Mars/Olympus"] {
        let r = agent(&s, "CreateTemporaryKey")
            .header("SO-TimeZone", zone)
            .json(&json!({"Domain": "PublicFaq", "Expires": naive(soon, ny)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{zone}");
        assert!(
            json(r).await["MessageDetail"]
                .as_str()
                .unwrap()
                .starts_with("SO-TimeZone: ")
        );
    }
    // SOAP's TimeZone header: SoTimeZoneId, or SoTimeZoneLocationCode.
    let t = soap_ticket(&s).await;
    for tz in [
        "<SoTimeZoneId>460</SoTimeZoneId>",
        "<SoTimeZoneId>0</SoTimeZoneId><SoTimeZoneLocationCode>US-NY</SoTimeZoneLocationCode>",
    ] {
        let header = format!(
            r#"<Credentials xmlns="{NS}"><Ticket>{t}</Ticket></Credentials><TimeZone xmlns="{NS}">{tz}</TimeZone>"#
        );
        let r = s
            .req(Method::POST, "/Remote/Services86/Person.svc")
            .header("Content-Type", "text/xml")
            .body(soap11(
                "CreateTemporaryKey",
                &header,
                &format!(
                    "<Domain>LoginCustomerCenter</Domain><Expires>{}</Expires>",
                    naive(soon, ny)
                ),
            ))
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        let key = between(&text, "<Response>", "</Response>").to_string();
        assert_eq!(check(&s, &key).await["IsExpired"], false, "{tz}");
    }
}
