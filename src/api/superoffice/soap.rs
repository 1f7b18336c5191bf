//! SOAP at `Remote/Services86/Person.svc` and `Remote/Services86/SoPrincipal.svc`.
//! SOAP 1.1 (text/xml + SOAPAction) and SOAP 1.2 (application/soap+xml) are both accepted and
//! answered in the version asked. ApplicationToken, Credentials and TimeZone may be in the
//! Header or directly under the Envelope (as in the seed). Failures travel as
//! `Succeeded=false` + `ExceptionInfo` in the response header; a malformed envelope gets a Fault.

use super::args::Args;
use super::ops::{Agent, Operation, Returns, TEMPORARY_KEY_INFO_FIELDS};
use super::render::XSI;
use super::wsdl::{NS, wsdl};
use super::{Answer, Ctx, Lang, carrier, execute, info_json, parse_time_zone, rest};
use crate::api::AppState;
use crate::api::auth::authenticate;
use crate::api::extract::{ClientAddr, read_body};
use crate::api::xml::{self, Element, esc};
use crate::error::{Error, Result};
use crate::service::Principal;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

pub const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V11,
    V12,
}

impl Version {
    fn ns(self) -> &'static str {
        match self {
            Version::V11 => SOAP11,
            Version::V12 => SOAP12,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Version::V11 => "text/xml; charset=utf-8",
            Version::V12 => "application/soap+xml; charset=utf-8",
        }
    }
}

fn envelope(v: Version, header: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{}" xmlns:i="{XSI}"><s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"#,
        v.ns()
    )
}

fn respond(v: Version, status: StatusCode, xml: String) -> Response {
    let mut r = (status, xml).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(v.content_type()));
    r
}

/// A SOAP Fault: for messages that are not a usable SOAP request at all.
fn fault(v: Version, message: &str) -> Response {
    let m = esc(message);
    let body = match v {
        Version::V11 => {
            format!(r#"<s:Fault><faultcode>s:Client</faultcode><faultstring xml:lang="en">{m}</faultstring></s:Fault>"#)
        }
        Version::V12 => format!(
            r#"<s:Fault><s:Code><s:Value>s:Sender</s:Value></s:Code><s:Reason><s:Text xml:lang="en">{m}</s:Text></s:Reason></s:Fault>"#
        ),
    };
    // SOAP 1.1 over HTTP answers faults with 500; SOAP 1.2 answers a Sender fault with 400.
    let status = if v == Version::V11 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::BAD_REQUEST
    };
    respond(
        v,
        status,
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{}"><s:Body>{body}</s:Body></s:Envelope>"#,
            v.ns()
        ),
    )
}

fn exception_info(e: &Error, lang: Lang, source: &str) -> String {
    let (kind, message) = match e {
        Error::Invalid { field, message } => ("ArgumentException", format!("{field}: {message}")),
        Error::Unauthenticated => (
            "SoAuthenticationException",
            "The ticket is not valid; authentication required".to_string(),
        ),
        Error::Forbidden(m) => ("SoAccessDeniedException", m.clone()),
        Error::Internal(d) => {
            tracing::error!(detail = d.as_str(), "internal error");
            ("SoException", "Internal error".to_string())
        }
        Error::Unavailable(d) => {
            tracing::warn!(detail = d.as_str(), "database unavailable");
            (
                "SoDatabaseUnavailableException",
                "the database is unavailable; try again shortly".to_string(),
            )
        }
        other => ("SoException", other.to_string()),
    };
    let m = esc(&lang.tr(&message)).into_owned();
    format!(
        r#"<ExceptionInfo xmlns="{NS}"><Message>{m}</Message><StackTrace></StackTrace><FriendlyText>{m}</FriendlyText><ExceptionType>{kind}</ExceptionType><Source>{}</Source><InnerException i:nil="true"/><Parameters i:nil="true"/></ExceptionInfo><Succeeded xmlns="{NS}">false</Succeeded>"#,
        esc(source)
    )
}

fn succeeded() -> String {
    format!(r#"<Succeeded xmlns="{NS}">true</Succeeded>"#)
}

/// The body of a successful answer.
fn answer_body(op: &Operation, a: &Answer) -> String {
    let inner = match a {
        Answer::Void => String::new(),
        Answer::Str(s) => format!("<Response>{}</Response>", esc(s)),
        Answer::Info(info) => {
            let v = info_json(info);
            let mut s = String::from("<Response>");
            for f in TEMPORARY_KEY_INFO_FIELDS {
                match v.get(*f) {
                    Some(serde_json::Value::String(t)) => s.push_str(&format!("<{f}>{}</{f}>", esc(t))),
                    Some(serde_json::Value::Bool(b)) => s.push_str(&format!("<{f}>{b}</{f}>")),
                    Some(serde_json::Value::Number(n)) => s.push_str(&format!("<{f}>{n}</{f}>")),
                    _ => s.push_str(&format!(r#"<{f} i:nil="true"/>"#)),
                }
            }
            s.push_str("</Response>");
            s
        }
        Answer::Null => r#"<Response i:nil="true"/>"#.to_string(),
        Answer::Carrier(def, v) => {
            let mut s = String::from("<Response>");
            carrier::xml_members(def, v, &mut s);
            s.push_str("</Response>");
            s
        }
        Answer::List(def, items) => {
            let mut s = String::from("<Response>");
            for v in items {
                s.push_str(&format!("<{}>", def.name));
                carrier::xml_members(def, v, &mut s);
                s.push_str(&format!("</{}>", def.name));
            }
            s.push_str("</Response>");
            s
        }
        Answer::Dict(pairs) => {
            let mut s = String::from("<Response>");
            carrier::xml_dictionary_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), &mut s);
            s.push_str("</Response>");
            s
        }
    };
    format!(r#"<{0} xmlns="{NS}">{inner}</{0}>"#, op.response_element)
}

/// Header parts, from the Header or directly under the Envelope.
struct SoapHeaders {
    application_token: Option<String>,
    ticket: Option<String>,
    time_zone: Option<String>,
}

fn soap_headers(env: &Element) -> SoapHeaders {
    let mut parts: Vec<&Element> = vec![];
    for c in &env.children {
        if c.name == "Header" && c.ns == env.ns {
            parts.extend(c.children.iter());
        } else if c.name != "Body" {
            parts.push(c);
        }
    }
    let find = |n: &str| parts.iter().find(|e| e.name == n).copied();
    let text = |e: Option<&Element>| {
        e.filter(|e| !e.is_nil())
            .map(|e| e.text.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    SoapHeaders {
        application_token: text(find("ApplicationToken")),
        ticket: text(find("Credentials").and_then(|c| c.child("Ticket"))),
        time_zone: find("TimeZone").and_then(|tz| text(tz.child("SoTimeZoneLocationCode"))),
    }
}

/// The operations a service version offers.
fn offered(agent: Agent, version: u8) -> Vec<Operation> {
    agent
        .ops()
        .iter()
        .filter(|o| o.soap_since <= version)
        .copied()
        .collect()
}

/// `GET ...svc?wsdl`.
fn wsdl_response(st: &AppState, headers: &HeaderMap, uri: &Uri, agent: Agent) -> Response {
    let service = agent.name();
    let ops = offered(agent, SERVICES_VERSION);
    if !uri
        .query()
        .is_some_and(|q| q.eq_ignore_ascii_case("wsdl") || q.to_ascii_lowercase().starts_with("wsdl"))
    {
        let mut r = (StatusCode::OK, format!("The {service} service. Its WSDL is at ?wsdl.")).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return r;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)))
        .map(str::to_string)
        .unwrap_or_else(|| st.settings.listen.clone());
    let address = format!("http://{host}{}", uri.path());
    let mut r = (StatusCode::OK, wsdl(service, &ops, &address)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    r
}

/// The SOAP services' version: Remote/Services86.
const SERVICES_VERSION: u8 = 86;

pub async fn person_wsdl(State(st): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    wsdl_response(&st, &headers, &uri, Agent::Person)
}

pub async fn principal_wsdl(State(st): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    wsdl_response(&st, &headers, &uri, Agent::SoPrincipal)
}

pub async fn foreign_system_wsdl(State(st): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    wsdl_response(&st, &headers, &uri, Agent::ForeignSystem)
}

pub async fn person(State(st): State<AppState>, req: Request) -> Response {
    handle(st, req, Agent::Person).await
}

pub async fn principal(State(st): State<AppState>, req: Request) -> Response {
    handle(st, req, Agent::SoPrincipal).await
}

pub async fn foreign_system(State(st): State<AppState>, req: Request) -> Response {
    handle(st, req, Agent::ForeignSystem).await
}

async fn handle(st: AppState, req: Request, agent: Agent) -> Response {
    let service = agent.name();
    let (mut parts, body) = req.into_parts();
    let declared = match parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        Some(ct) if ct.to_ascii_lowercase().starts_with("application/soap+xml") => Version::V12,
        _ => Version::V11,
    };
    let bytes = match read_body(Body::new(body), st.settings.body_limit_bytes).await {
        Ok(b) => b,
        Err(Error::PayloadTooLarge) => {
            let mut r = fault(declared, "request body too large");
            *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return r;
        }
        Err(e) => return fault(declared, &e.to_string()),
    };
    let root = match xml::parse(&bytes) {
        Ok(r) => r,
        Err(m) => return fault(declared, &m),
    };
    let version = match (root.name.as_str(), root.ns.as_deref()) {
        ("Envelope", Some(SOAP11)) => Version::V11,
        ("Envelope", Some(SOAP12)) => Version::V12,
        _ => return fault(declared, "not a SOAP 1.1 or 1.2 Envelope"),
    };
    let Some(op_el) = root
        .children
        .iter()
        .find(|c| c.name == "Body" && c.ns == root.ns)
        .and_then(|b| b.children.first())
    else {
        return fault(version, "the Envelope has no Body with an operation");
    };
    let Some(op) = agent
        .ops()
        .iter()
        .find(|o| o.name == op_el.name && o.soap_since <= SERVICES_VERSION)
    else {
        return fault(version, &format!("{service} has no operation {}", op_el.name));
    };
    let hdrs = soap_headers(&root);
    let lang = Lang::from_headers(&parts.headers);
    let source = format!("{service}.{}", op.name);
    let ClientAddr(src) = match ClientAddr::from_request_parts(&mut parts, &st).await {
        Ok(c) => c,
        Err(never) => match never {},
    };
    let args = Args::from_xml(op_el);
    let result = if op.returns == Returns::Authenticate {
        authenticate_username_password(&st, op, &args, &src).await
    } else {
        match run(&st, &parts.headers, &parts.method, &src, &hdrs, lang, op, &args).await {
            Ok(a) => Ok(answer_body(op, &a)),
            Err(e) => Err(e),
        }
    };
    let xml = match result {
        Ok(body) => envelope(version, &succeeded(), &body),
        Err(e) => envelope(
            version,
            &exception_info(&e, lang, &source),
            &format!(r#"<{} xmlns="{NS}"/>"#, op.response_element),
        ),
    };
    respond(version, StatusCode::OK, xml)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    st: &AppState,
    http: &HeaderMap,
    method: &axum::http::Method,
    src: &str,
    h: &SoapHeaders,
    lang: Lang,
    op: &Operation,
    args: &Args,
) -> Result<Answer> {
    // The Credentials header's ticket, or else the HTTP Authorization schemes.
    let principal: Principal = match &h.ticket {
        Some(t) => st.svc.auth_ticket(t).await?,
        None => authenticate(st, http, method, src).await?,
    };
    let client_tz = match &h.time_zone {
        Some(code) => Some(parse_time_zone(code).ok_or_else(|| Error::invalid("TimeZone", "unknown time zone"))?),
        None => None,
    };
    let mut ctx: Ctx = rest::context(st, http, lang)?;
    if client_tz.is_some() {
        ctx.client_tz = client_tz;
    }
    if let Some(t) = &h.application_token {
        ctx.application = Some(st.svc.application_fingerprint(t));
    }
    execute(&st.svc, &principal, op, args, &ctx).await
}

/// SoPrincipal.AuthenticateUsernamePassword: a ticket for the Credentials header.
async fn authenticate_username_password(st: &AppState, op: &Operation, args: &Args, src: &str) -> Result<String> {
    let user = args.string(op, "UserName")?.unwrap_or_default();
    let password = args.string(op, "Password")?.unwrap_or_default();
    let inner = match st.svc.login(&user, &password, src).await {
        Ok(u) => {
            let (ticket, _) = st.svc.issue_ticket(&u).await?;
            format!(
                "<Response><UserName>{}</UserName><PersonId>{}</PersonId><UserId>{}</UserId><OrganizationId>{}</OrganizationId></Response><Credentials><Ticket>{}</Ticket></Credentials><AuthenticationSucceeded>true</AuthenticationSucceeded>",
                esc(&u.username),
                u.person_id.unwrap_or(0),
                u.id,
                u.org_id,
                esc(&ticket)
            )
        }
        Err(Error::Unauthenticated) => {
            r#"<Response i:nil="true"/><Credentials i:nil="true"/><AuthenticationSucceeded>false</AuthenticationSucceeded>"#.to_string()
        }
        Err(e) => return Err(e),
    };
    Ok(format!(r#"<{0} xmlns="{NS}">{inner}</{0}>"#, op.response_element))
}
