//! SuperOffice NetServer compatibility: the Person and ForeignSystem agents over REST
//! (`/api/v1/Agents/<agent>/<method>`) and SOAP (`/Remote/Services86/Person.svc`, and the
//! same at Services87 and Services88), and ticket login over SOAP (`.../SoPrincipal.svc`).
//!
//! Agent-wide behaviour (body formats, Accept negotiation, `$select`, languages, time
//! zones, the error shapes) lives here once, for reuse by other agents.

pub mod args;
pub mod carrier;
pub mod foreign;
pub mod ops;
pub mod render;
pub mod rest;
pub mod soap;
pub mod wsdl;

use crate::error::{Error, Result};
use crate::service::temporary::{Domain, TemporaryKeyInfo, TemporaryKeyRequest};
use crate::service::{Principal, Service};
use args::Args;
use axum::http::{HeaderMap, HeaderName, header};
use chrono_tz::Tz;
use ops::Operation;

/// The language of texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    No,
}

impl Lang {
    /// `SO-Language` overrides `Accept-Language`; `*` or `x` mean no translation.
    pub fn from_headers(h: &HeaderMap) -> Lang {
        const SO_LANGUAGE: HeaderName = HeaderName::from_static("so-language");
        let get = |n: HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let pick = |tag: &str| -> Option<Lang> {
            let primary = tag
                .split(';')
                .next()?
                .trim()
                .split(['-', '_'])
                .next()?
                .to_ascii_lowercase();
            match primary.as_str() {
                "no" | "nb" | "nn" => Some(Lang::No),
                "en" | "*" | "x" => Some(Lang::En),
                _ => None,
            }
        };
        if let Some(so) = get(SO_LANGUAGE) {
            return pick(&so).unwrap_or(Lang::En);
        }
        get(header::ACCEPT_LANGUAGE)
            .and_then(|al| {
                al.split(',')
                    .filter(|t| !t.contains("q=0") || t.contains("q=0."))
                    .find_map(|t| pick(t.trim()))
            })
            .unwrap_or(Lang::En)
    }

    /// Translate a message built from keygate's English phrases.
    pub fn tr(self, english: &str) -> String {
        if self == Lang::En {
            return english.to_string();
        }
        const PHRASES: &[(&str, &str)] = &[
            ("The request is invalid.", "Forespørselen er ugyldig."),
            ("authentication required", "autentisering kreves"),
            ("Authentication required", "Autentisering kreves"),
            ("is required", "er påkrevd"),
            ("must be a whole number between", "må være et heltall mellom"),
            (" and ", " og "),
            ("is not a valid date and time", "er ikke en gyldig dato og tid"),
            ("must be a date and time string", "må være en tekst med dato og tid"),
            (
                "must be between 1970-01-01 and 9999-12-31",
                "må være mellom 1970-01-01 og 9999-12-31",
            ),
            ("unknown TemporaryKeyDomain", "ukjent TemporaryKeyDomain"),
            ("its TemporaryKeyDomain", "dens TemporaryKeyDomain"),
            (" is not in Services", " finnes ikke i Services"),
            ("; use Services", "; bruk Services"),
            (" or later", " eller nyere"),
            ("\" in Services", "\" i Services"),
            (
                "must be a TemporaryKeyDomain name or number",
                "må være et TemporaryKeyDomain-navn eller -nummer",
            ),
            ("must not be negative", "kan ikke være negativ"),
            ("must be at most", "kan være maks"),
            ("characters", "tegn"),
            ("must be a string", "må være en tekst"),
            ("the body must be a JSON object", "innholdet må være et JSON-objekt"),
            ("malformed JSON", "ugyldig JSON"),
            ("malformed XML", "ugyldig XML"),
            (
                "DOCTYPE and entity declarations are not allowed",
                "DOCTYPE og entitetsdeklarasjoner er ikke tillatt",
            ),
            ("unsupported media type", "medietypen støttes ikke"),
            ("request body too large", "forespørselen er for stor"),
            ("unknown time zone", "ukjent tidssone"),
            (
                "too many failed attempts; retry after",
                "for mange mislykkede forsøk; prøv igjen om",
            ),
            ("not found", "ble ikke funnet"),
            ("No such agent method", "Ingen slik agentmetode"),
            (
                "the personal access key lacks the scope",
                "den personlige tilgangsnøkkelen mangler omfanget",
            ),
            (
                "the database is unavailable; try again shortly",
                "databasen er utilgjengelig; prøv igjen snart",
            ),
            ("Internal error", "Intern feil"),
            ("The ticket is not valid", "Billetten er ikke gyldig"),
            ("Unknown user name or password", "Ukjent brukernavn eller passord"),
        ];
        let mut s = english.to_string();
        for (en, no) in PHRASES {
            s = s.replace(en, no);
        }
        s
    }
}

pub use crate::core::tz::parse_time_zone;

/// What a request asks of the agent beyond its arguments.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub lang: Lang,
    /// The client's time zone (SO-TimeZone / SOAP TimeZone header): dates without an offset are
    /// read in it and returned dates are converted to it.
    pub client_tz: Option<Tz>,
    /// The server's local time zone (setting `time_zone`).
    pub server_tz: Tz,
    /// Fingerprint of SO-AppToken / ApplicationToken.
    pub application: Option<String>,
    /// `SO-TimeZone: <zone>, includeTZOffset`: dates in answers carry their offset.
    pub include_offset: bool,
    /// The contract the caller speaks: the SOAP service version (86, 87, 88); the REST agents
    /// speak the newest ([`ops::LATEST`]).
    pub version: u8,
}

impl Ctx {
    /// Where "local time" is for this request.
    pub fn local_tz(&self) -> Tz {
        self.client_tz.unwrap_or(self.server_tz)
    }
}

/// An operation's result, before a surface renders it.
#[derive(Debug, Clone)]
pub enum Answer {
    Str(String),
    Info(TemporaryKeyInfo),
    Void,
    /// A carrier (a JSON map; see `carrier`).
    Carrier(&'static ops::CarrierDef, serde_json::Value),
    List(&'static ops::CarrierDef, Vec<serde_json::Value>),
    /// A string-to-string dictionary, in order.
    Dict(Vec<(String, String)>),
    /// Nothing found: 200 with a null body (SOAP: a nil Response).
    Null,
}

/// Run one agent operation. REST and SOAP both come here.
pub async fn execute(svc: &Service, p: &Principal, op: &Operation, args: &Args, ctx: &Ctx) -> Result<Answer> {
    match op.agent {
        ops::Agent::ForeignSystem => foreign::execute(svc, p, op, args, ctx).await,
        ops::Agent::Person => person(svc, p, op, args, ctx).await,
        ops::Agent::SoPrincipal => Err(Error::internal("SoPrincipal runs before authentication")),
    }
}

/// Run one Person agent operation.
async fn person(svc: &Service, p: &Principal, op: &Operation, args: &Args, ctx: &Ctx) -> Result<Answer> {
    match op.name {
        "CreateTemporaryKey" | "CreateTemporaryKeyWithPayload" => {
            let payload = if op.param("Payload").is_some() {
                args.string(op, "Payload")?
            } else {
                None
            };
            let req = TemporaryKeyRequest {
                domain: domain_arg(op, args, ctx)?,
                target_id: args.int(op, "TargetId")?,
                person_id: args.int(op, "PersonId")?,
                expires: args.datetime(op, "Expires", ctx.local_tz())?,
                payload,
                application: ctx.application.clone(),
                name: None,
            };
            Ok(Answer::Str(svc.create_temporary_key(p, req).await?.1))
        }
        "CheckTemporaryKey" => {
            let key = args.str(op, "TemporaryKey")?.unwrap_or_default();
            let info = svc.check_temporary_key(p, key.trim()).await?;
            if !ops::domains_in(ctx.version).contains(&info.domain) {
                // The caller's contract cannot carry this domain; say so rather than answer a
                // value its enumeration lacks (or pretend the key is not valid).
                return Err(Error::invalid(
                    "TemporaryKey",
                    format!(
                        "its TemporaryKeyDomain {} is not in Services{}; use Services{} or later",
                        info.domain.name(),
                        ctx.version,
                        first_version_with(info.domain)
                    ),
                ));
            }
            Ok(Answer::Info(info))
        }
        "DeleteTemporaryKeysOfDomain" => {
            let domain: Domain = domain_arg(op, args, ctx)?;
            let person = args.int(op, "PersonId")?;
            svc.delete_temporary_keys_of_domain(p, domain, person).await?;
            Ok(Answer::Void)
        }
        other => Err(Error::internal(format!("operation {other} has no implementation"))),
    }
}

/// A TemporaryKeyDomain argument, limited to the values of the caller's contract version.
fn domain_arg(op: &Operation, args: &Args, ctx: &Ctx) -> Result<Domain> {
    let d = args.domain(op, "Domain")?;
    if ops::domains_in(ctx.version).contains(&d) {
        Ok(d)
    } else {
        Err(Error::invalid(
            "Domain",
            format!("unknown TemporaryKeyDomain {:?} in Services{}", d.name(), ctx.version),
        ))
    }
}

/// The first SOAP version whose TemporaryKeyDomain has `d`.
fn first_version_with(d: Domain) -> u8 {
    ops::SOAP_VERSIONS
        .into_iter()
        .find(|v| ops::domains_in(*v).contains(&d))
        .unwrap_or(ops::LATEST)
}

/// TemporaryKeyInfo's XML members in contract order for a contract version, from its JSON
/// form (after `$select`): the Carrier base's TableRight (null: the Person agent reports no
/// rights) and FieldProperties (empty), then the version's own fields (Payload from
/// Services88 on). Null is `i:nil`.
pub fn info_xml_members(v: &serde_json::Value, version: u8, out: &mut String) {
    use serde_json::Value;
    let base = ["TableRight", "FieldProperties"].into_iter();
    let own = ops::TEMPORARY_KEY_INFO_FIELDS
        .iter()
        .filter(|(_, since)| *since <= version)
        .map(|(f, _)| *f);
    for f in base.chain(own) {
        match v.get(f) {
            None | Some(Value::Null) => out.push_str(&format!(r#"<{f} i:nil="true"/>"#)),
            Some(Value::String(t)) => out.push_str(&format!("<{f}>{}</{f}>", crate::api::xml::esc(t))),
            // The only object member is the empty FieldProperties dictionary.
            Some(Value::Object(_)) => out.push_str(&format!("<{f}/>")),
            Some(other) => out.push_str(&format!("<{f}>{other}</{f}>")),
        }
    }
}

/// The TemporaryKeyInfo carrier as JSON (DataContract member names, alphabetical).
pub fn info_json(i: &TemporaryKeyInfo) -> serde_json::Value {
    serde_json::json!({
        "Domain": i.domain.name(),
        "FieldProperties": {},
        "IsExpired": i.is_expired,
        "Payload": i.payload,
        "PersonId": i.person_id,
        "TableRight": null,
        "TargetId": i.target_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn language_choice() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::from_headers(&h), Lang::En);
        h.insert("accept-language", HeaderValue::from_static("fr,de,ru,zh"));
        assert_eq!(Lang::from_headers(&h), Lang::En);
        h.insert("accept-language", HeaderValue::from_static("fr;q=0.9, nb-NO;q=0.8"));
        assert_eq!(Lang::from_headers(&h), Lang::No);
        h.insert("so-language", HeaderValue::from_static("x"));
        assert_eq!(Lang::from_headers(&h), Lang::En);
        h.insert("so-language", HeaderValue::from_static("no"));
        assert_eq!(Lang::from_headers(&h), Lang::No);
        assert_eq!(Lang::No.tr("Domain: is required"), "Domain: er påkrevd");
        assert_eq!(
            Lang::No.tr("Domain: unknown TemporaryKeyDomain \"PublicFaq\" in Services86"),
            "Domain: ukjent TemporaryKeyDomain \"PublicFaq\" i Services86"
        );
        assert_eq!(
            Lang::No.tr("TemporaryKey: its TemporaryKeyDomain PublicFaq is not in Services86; use Services87 or later"),
            "TemporaryKey: dens TemporaryKeyDomain PublicFaq finnes ikke i Services86; bruk Services87 eller nyere"
        );
    }
}
