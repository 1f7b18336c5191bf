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
            &format!("<Domain>PublicFaq</Domain><TargetId>3</TargetId><PersonId>0</PersonId><Expires>{exp}</Expires>"),
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
