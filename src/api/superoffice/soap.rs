//! SOAP at `Remote/Services86/`, `Services87/` and `Services88/`: `Person.svc`,
//! `SoPrincipal.svc` and `ForeignSystem.svc`. Every version runs the same code, driven by the
//! operation table: a version has its own namespace and SOAPActions and offers the operations
//! whose `soap_since` it has reached; any other operation is an unknown SOAP action there.
//! SOAP 1.1 (text/xml + SOAPAction) and SOAP 1.2 (application/soap+xml) are both accepted and
//! answered in the version asked. ApplicationToken, Credentials and TimeZone may be in the
//! Header or directly under the Envelope (as in the seed). Failures travel as
//! `Succeeded=false` + `ExceptionInfo` in the response header; a malformed envelope or an
//! unknown action gets a Fault.

use super::args::Args;
use super::ops::{Agent, Operation, Returns, Service};
use super::render::XSI;
use super::wsdl::wsdl;
use super::{Answer, Ctx, Lang, carrier, execute, info_json, info_xml_members, parse_time_zone, rest};
use crate::api::AppState;
use crate::api::auth::authenticate;
use crate::api::extract::{ClientAddr, read_body};
use crate::api::xml::{self, Element, esc};
use crate::error::{Error, Result};
use crate::service::Principal;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};

/// Every SOAP endpoint: its path, agent and service version. The route table serves each path
/// with [`endpoint`] (POST) and [`wsdl_endpoint`] (GET).
pub const ENDPOINTS: &[(&str, Agent, u8)] = &[
    ("/Remote/Services86/Person.svc", Agent::Person, 86),
    ("/Remote/Services86/SoPrincipal.svc", Agent::SoPrincipal, 86),
    ("/Remote/Services86/ForeignSystem.svc", Agent::ForeignSystem, 86),
    ("/Remote/Services87/Person.svc", Agent::Person, 87),
    ("/Remote/Services87/SoPrincipal.svc", Agent::SoPrincipal, 87),
    ("/Remote/Services87/ForeignSystem.svc", Agent::ForeignSystem, 87),
    ("/Remote/Services88/Person.svc", Agent::Person, 88),
    ("/Remote/Services88/SoPrincipal.svc", Agent::SoPrincipal, 88),
    ("/Remote/Services88/ForeignSystem.svc", Agent::ForeignSystem, 88),
];

/// `POST <endpoint>`: a SOAP call to one service at one version.
pub fn endpoint(agent: Agent, version: u8) -> MethodRouter<AppState> {
    let svc = Service { agent, version };
    post(move |State(st): State<AppState>, req: Request| handle(st, req, svc))
}

/// `GET <endpoint>?wsdl`: that version's WSDL.
pub fn wsdl_endpoint(agent: Agent, version: u8) -> MethodRouter<AppState> {
    let svc = Service { agent, version };
    get(
        move |State(st): State<AppState>, headers: HeaderMap, uri: Uri| async move {
            wsdl_response(&st, &headers, &uri, svc)
        },
    )
}

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

fn exception_info(e: &Error, lang: Lang, source: &str, ns: &str) -> String {
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
        r#"<ExceptionInfo xmlns="{ns}"><Message>{m}</Message><StackTrace></StackTrace><FriendlyText>{m}</FriendlyText><ExceptionType>{kind}</ExceptionType><Source>{}</Source><InnerException i:nil="true"/><Parameters i:nil="true"/></ExceptionInfo><Succeeded xmlns="{ns}">false</Succeeded>"#,
        esc(source)
    )
}

fn succeeded(ns: &str) -> String {
    format!(r#"<Succeeded xmlns="{ns}">true</Succeeded>"#)
}

/// The body of a successful answer, in the service version's namespace and contract.
fn answer_body(svc: Service, op: &Operation, a: &Answer) -> String {
    let inner = match a {
        Answer::Void => String::new(),
        Answer::Str(s) => format!("<Response>{}</Response>", esc(s)),
        Answer::Info(info) => {
            let mut s = String::from("<Response>");
            info_xml_members(&info_json(info), svc.version, &mut s);
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
    format!(r#"<{0} xmlns="{1}">{inner}</{0}>"#, op.response_element, svc.ns())
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
    let time_zone = find("TimeZone").and_then(|tz| {
        // SoTimeZoneId (0 when not set) or else SoTimeZoneLocationCode.
        text(tz.child("SoTimeZoneId"))
            .filter(|id| id != "0")
            .or_else(|| text(tz.child("SoTimeZoneLocationCode")))
    });
    SoapHeaders {
        application_token: text(find("ApplicationToken")),
        ticket: text(find("Credentials").and_then(|c| c.child("Ticket"))),
        time_zone,
    }
}

/// `GET ...svc?wsdl` (the query's name in any case).
fn wsdl_response(st: &AppState, headers: &HeaderMap, uri: &Uri, svc: Service) -> Response {
    let service = svc.agent.name();
    if !uri
        .query()
        .is_some_and(|q| q.eq_ignore_ascii_case("wsdl") || q.to_ascii_lowercase().starts_with("wsdl"))
    {
        let mut r = (
            StatusCode::OK,
            format!("The {service} service (Services{}). Its WSDL is at ?wsdl.", svc.version),
        )
            .into_response();
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
    let mut r = (StatusCode::OK, wsdl(svc, &address)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    r
}

const SOAP_ACTION: HeaderName = HeaderName::from_static("soapaction");

/// The SOAP action a request names: the SOAPAction header (SOAP 1.1) or the `action`
/// parameter of its Content-Type (SOAP 1.2); `None` when absent or empty.
fn requested_action(h: &HeaderMap) -> Option<String> {
    let unquote = |v: &str| v.trim().trim_matches('"').trim().to_string();
    if let Some(a) = h.get(SOAP_ACTION).and_then(|v| v.to_str().ok()).map(unquote) {
        return Some(a).filter(|a| !a.is_empty());
    }
    let ct = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())?;
    ct.split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("action"))
        .map(|(_, v)| unquote(v))
        .filter(|a| !a.is_empty())
}

/// The operation a request calls in this service version: the body's operation element, which
/// must be in the version's namespace, be offered by the version, and match the SOAP action
/// when one is named. Anything else is an unknown action here (a Fault's text).
fn dispatch(svc: Service, op_el: &Element, action: Option<&str>) -> std::result::Result<&'static Operation, String> {
    let service = svc.agent.name();
    let ns = svc.ns();
    let prefix = format!("{ns}/{service}/");
    if let Some(a) = action {
        let Some(name) = a.strip_prefix(&prefix) else {
            return Err(format!(
                "{service} has no operation for the SOAP action \"{a}\" in Services{} (its actions are {prefix}<operation>)",
                svc.version
            ));
        };
        if svc.op(name).is_none() {
            return Err(format!(
                "{service} has no operation {name} in Services{} (SOAP action \"{a}\")",
                svc.version
            ));
        }
        if name != op_el.name {
            return Err(format!(
                "the SOAP action \"{a}\" does not match the operation in the Body, {}",
                op_el.name
            ));
        }
    }
    if op_el.ns.as_deref() != Some(ns.as_str()) {
        return Err(format!(
            "{service} has no operation {} in namespace {}; Services{} uses {ns}",
            op_el.name,
            op_el.ns.as_deref().unwrap_or("(none)"),
            svc.version
        ));
    }
    svc.op(&op_el.name)
        .ok_or_else(|| format!("{service} has no operation {} in Services{}", op_el.name, svc.version))
}

async fn handle(st: AppState, req: Request, svc: Service) -> Response {
    let service = svc.agent.name();
    let ns = svc.ns();
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
    let op = match dispatch(svc, op_el, requested_action(&parts.headers).as_deref()) {
        Ok(op) => op,
        Err(m) => return fault(version, &m),
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
        authenticate_username_password(&st, svc, op, &args, &src).await
    } else {
        match run(&st, &parts.headers, &parts.method, &src, &hdrs, lang, svc, op, &args).await {
            Ok(a) => Ok(answer_body(svc, op, &a)),
            Err(e) => Err(e),
        }
    };
    let xml = match result {
        Ok(body) => envelope(version, &succeeded(&ns), &body),
        Err(e) => envelope(
            version,
            &exception_info(&e, lang, &source, &ns),
            &format!(r#"<{} xmlns="{ns}"/>"#, op.response_element),
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
    svc: Service,
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
    let mut ctx: Ctx = rest::context(st, http, lang, svc.version)?;
    if client_tz.is_some() {
        ctx.client_tz = client_tz;
    }
    if let Some(t) = &h.application_token {
        ctx.application = Some(st.svc.application_fingerprint(t));
    }
    execute(&st.svc, &principal, op, args, &ctx).await
}

/// SoPrincipal.AuthenticateUsernamePassword: a ticket for the Credentials header.
async fn authenticate_username_password(
    st: &AppState,
    svc: Service,
    op: &Operation,
    args: &Args,
    src: &str,
) -> Result<String> {
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
    Ok(format!(
        r#"<{0} xmlns="{1}">{inner}</{0}>"#,
        op.response_element,
        svc.ns()
    ))
}
