//! The REST agents: `POST /api/v1/Agents/Person/<method>` and
//! `POST /api/v1/Agents/ForeignSystem/<method>`, both driven by the operation table, and
//! `GET` on the same URLs, which describes the call.

use super::args::{Args, JsonBody};
use super::ops::{Agent, Operation};
use super::render::{self, Format};
use super::{Ctx, Lang, execute, ops, parse_time_zone};
use crate::api::AppState;
use crate::api::auth::authenticate_parts;
use crate::api::extract::{parse_json, read_body};
use crate::api::xml;
use crate::error::{Error, Result};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, header};
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};

const SO_TIMEZONE: HeaderName = HeaderName::from_static("so-timezone");
const SO_APPTOKEN: HeaderName = HeaderName::from_static("so-apptoken");

/// Build the request context from the agent headers, for a contract version (the REST agents
/// speak [`ops::LATEST`]; SOAP its service's version).
pub fn context(st: &AppState, h: &HeaderMap, lang: Lang, version: u8) -> Result<Ctx> {
    let (client_tz, include_offset) = match h
        .get(SO_TIMEZONE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(value) => {
            // A location id or code (`261`, `NO`), optionally `, includeTZOffset`.
            let mut parts = value.split(',').map(str::trim);
            let code = parts.next().unwrap_or_default();
            let mut include_offset = false;
            for flag in parts {
                if flag.eq_ignore_ascii_case("includeTZOffset") {
                    include_offset = true;
                } else {
                    return Err(Error::invalid("SO-TimeZone", format!("unknown option {flag:?}")));
                }
            }
            let tz = parse_time_zone(code).ok_or_else(|| Error::invalid("SO-TimeZone", "unknown time zone"))?;
            (Some(tz), include_offset)
        }
        None => (None, false),
    };
    let application = h
        .get(SO_APPTOKEN)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|t| st.svc.application_fingerprint(t));
    Ok(Ctx {
        lang,
        client_tz,
        server_tz: st.server_tz,
        application,
        include_offset,
        version,
    })
}

fn select_param(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case("$select"))
        .map(|(_, v)| v.into_owned())
}

/// More fields than any operation takes; a form body stops being read past it.
const MAX_FORM_FIELDS: usize = 100;

/// Read the body in any of the agent's request formats. JSON nests at most 128 deep (serde_json's
/// recursion limit), XML is capped by the reader, forms by [`MAX_FORM_FIELDS`]; each is read
/// in time linear in its size, which the body limit caps.
async fn read_args(st: &AppState, req: Request) -> Result<Args> {
    #[derive(Clone, Copy)]
    enum BodyKind {
        Json,
        Xml,
        Form,
    }
    const TYPES: [(&str, BodyKind); 7] = [
        ("application/json", BodyKind::Json),
        ("text/json", BodyKind::Json),
        ("application/json-patch+json", BodyKind::Json),
        ("application/merge-patch+json", BodyKind::Json),
        ("application/xml", BodyKind::Xml),
        ("text/xml", BodyKind::Xml),
        ("application/x-www-form-urlencoded", BodyKind::Form),
    ];
    let (parts, body) = req.into_parts();
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .unwrap_or_default();
    let kind = TYPES.iter().find(|(t, _)| t.eq_ignore_ascii_case(ct)).map(|(_, k)| *k);
    let bytes = read_body(body, st.settings.body_limit_bytes).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Args::default());
    }
    match kind {
        Some(BodyKind::Json) => parse_json::<JsonBody>(&bytes)?.0.ok_or_else(super::args::not_an_object),
        Some(BodyKind::Xml) => {
            let root = xml::parse(&bytes).map_err(|m| Error::invalid("request", m))?;
            Ok(Args::from_xml(&root))
        }
        Some(BodyKind::Form) => {
            let mut pairs = vec![];
            for (k, v) in form_urlencoded::parse(&bytes) {
                if pairs.len() >= MAX_FORM_FIELDS {
                    return Err(Error::invalid(
                        "request",
                        format!("too many fields (at most {MAX_FORM_FIELDS})"),
                    ));
                }
                pairs.push((k.into_owned(), v.into_owned()));
            }
            Ok(Args::from_form(pairs))
        }
        None => Err(Error::UnsupportedMediaType(if ct.is_empty() {
            "no Content-Type".into()
        } else {
            ct.to_ascii_lowercase()
        })),
    }
}

pub async fn person(State(st): State<AppState>, Path(method): Path<String>, req: Request) -> Response {
    by_name(st, Agent::Person, &method, req).await
}

pub async fn foreign_system(State(st): State<AppState>, Path(method): Path<String>, req: Request) -> Response {
    by_name(st, Agent::ForeignSystem, &method, req).await
}

/// The agent paths of every operation in the table (`/api/v1/Agents/Person/CheckTemporaryKey`),
/// each routed to its operation: beside the `{method}` routes of the route table, which serve
/// the same operations by name (any case) and answer an unknown method, a path that names an
/// operation as the table spells it is matched without a path parameter (axum's parameters are
/// an allocation and a map insert per request; the agents are a hot path). The tenancy test's
/// walk of the `{method}` routes sends every operation to these paths.
pub fn operation_routes() -> Vec<(String, MethodRouter<AppState>)> {
    [Agent::Person, Agent::ForeignSystem]
        .into_iter()
        .flat_map(|agent| agent.ops().iter().map(move |op| (agent, op)))
        .map(|(agent, op)| {
            let path = format!("/api/v1/Agents/{}/{}", agent.name(), op.name);
            let run = post(move |State(st): State<AppState>, req: Request| operation(st, op, req));
            let describe =
                get(move |headers: HeaderMap| async move { render::description(op, Format::from_accept(&headers)) });
            (path, run.merge(describe))
        })
        .collect()
}

async fn by_name(st: AppState, agent: Agent, method: &str, req: Request) -> Response {
    match ops::find(agent.ops(), method) {
        Some(op) => operation(st, op, req).await,
        None => {
            let format = Format::from_accept(req.headers());
            let lang = Lang::from_headers(req.headers());
            render::error(Error::NotFound("agent method"), format, lang, &source(agent, method))
        }
    }
}

/// An error's `ErrorSource`: `Person.CheckTemporaryKey`.
fn source(agent: Agent, method: &str) -> String {
    format!("{}.{method}", agent.name())
}

async fn operation(st: AppState, op: &'static Operation, req: Request) -> Response {
    let format = Format::from_accept(req.headers());
    let lang = Lang::from_headers(req.headers());
    match run(&st, op, lang, req).await {
        Ok((answer, select)) => render::answer(op, answer, format, select.as_deref()),
        Err(e) => render::error(e, format, lang, &source(op.agent, op.name)),
    }
}

async fn run(
    st: &AppState,
    op: &'static Operation,
    lang: Lang,
    req: Request,
) -> Result<(super::Answer, Option<String>)> {
    let (parts, body) = req.into_parts();
    let principal = authenticate_parts(st, &parts).await?;
    let ctx = context(st, &parts.headers, lang, ops::LATEST)?;
    let select = select_param(parts.uri.query());
    let query = parts.uri.query().map(str::to_string);
    let mut args = read_args(st, Request::from_parts(parts, body)).await?;
    for p in op.params.iter().filter(|p| p.query) {
        args.set_from_query(p.name, query.as_deref());
    }
    let answer = execute(&st.svc, &principal, op, &args, &ctx).await?;
    Ok((answer, select))
}

pub async fn person_describe(Path(method): Path<String>, headers: HeaderMap) -> Response {
    describe(Agent::Person, &method, &headers)
}

pub async fn foreign_system_describe(Path(method): Path<String>, headers: HeaderMap) -> Response {
    describe(Agent::ForeignSystem, &method, &headers)
}

/// `GET /api/v1/Agents/<agent>/<method>`: a description of the call, from the operation table
/// (JSON or XML by Accept). It never runs the method, needs no credentials (it describes the
/// contract, as the WSDL does), and answers an unknown method with the agent's 404.
fn describe(agent: Agent, method: &str, headers: &HeaderMap) -> Response {
    let format = Format::from_accept(headers);
    let Some(op) = ops::find(agent.ops(), method) else {
        let lang = Lang::from_headers(headers);
        return render::error(Error::NotFound("agent method"), format, lang, &source(agent, method));
    };
    render::description(op, format)
}

#[cfg(test)]
mod tests {
    #[test]
    fn select_is_read_case_insensitively() {
        assert_eq!(
            super::select_param(Some("$select=name,department,category/id")).as_deref(),
            Some("name,department,category/id")
        );
        assert_eq!(super::select_param(Some("%24SELECT=Domain")).as_deref(), Some("Domain"));
        assert_eq!(super::select_param(None), None);
    }
}
