//! The OpenAPI document of the native API (`GET /openapi.json`): the document's frame, its
//! security schemes, and the answers every operation shares. Each operation's own answers are
//! in its `#[utoipa::path]`; the answers that follow from how it is reached (its credentials,
//! its body, its parameters) are added here from the operation itself, so none is forgotten.
//! `scripts/schemathesis.sh` checks the document against the server in CI.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "keygate", description = "Issue, verify, use up and revoke access keys."),
    modifiers(&SecurityAddon),
    security(("basic" = []), ("ticket" = []), ("bearer" = []), ("personal_key" = []), ("api_key" = []), ("session" = [])),
    tags((name = "keys"), (name = "auth"), (name = "admin"), (name = "events"), (name = "locks"))
)]
pub struct ApiDoc;

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        c.add_security_scheme(
            "ticket",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "SOTicket 7T:...",
            ))),
        );
        c.add_security_scheme(
            "personal_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "PersonalKey <personal access key>",
            ))),
        );
        c.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "keygate_session",
                "plus X-XSRF-TOKEN on non-GET requests",
            ))),
        );
    }
}

/// A header of a shared answer: (name, description).
type SharedHeader = Option<(&'static str, &'static str)>;

/// The shared answers, by status: (status, component name, description, header).
const SHARED: &[(&str, &str, &str, SharedHeader)] = &[
    (
        "400",
        "BadRequest",
        "The request is malformed or breaks a rule: malformed JSON, a missing or unknown member, a value of \
         the wrong type or out of range, or a parameter that does not parse. `field` names the offending input.",
        None,
    ),
    (
        "401",
        "Unauthenticated",
        "No credential, or a credential that is not valid. Every credential sent must be valid: one bad \
         credential refuses the request even beside a good one.",
        Some(("WWW-Authenticate", "`Basic realm=\"keygate\", Bearer`")),
    ),
    (
        "403",
        "Forbidden",
        "Authenticated, but not allowed: the caller's role or a personal access key's scopes do not allow \
         this, or a cookie session's unsafe request lacks a matching `X-XSRF-TOKEN`.",
        None,
    ),
    (
        "413",
        "PayloadTooLarge",
        "The body is larger than the server's `body_limit_bytes` (1 MiB by default).",
        None,
    ),
    (
        "415",
        "UnsupportedMediaType",
        "The body is not JSON: send `Content-Type: application/json`.",
        None,
    ),
    (
        "429",
        "TooManyRequests",
        "Too many failed logins from this client address or for this user; nothing was done. Retry after \
         `Retry-After` seconds.",
        Some(("Retry-After", "Seconds to wait before trying again.")),
    ),
    (
        "503",
        "Unavailable",
        "Too busy (password hashing) or the database cannot be reached; nothing was done. Retry after \
         `Retry-After` seconds.",
        Some(("Retry-After", "Seconds to wait before trying again.")),
    ),
];

fn shared_response(description: &str, header: Option<(&str, &str)>) -> Response {
    let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
    let mut r = ResponseBuilder::new()
        .description(description)
        .content("application/json", body);
    if let Some((name, what)) = header {
        let schema = if name == "Retry-After" {
            ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0))
        } else {
            ObjectBuilder::new().schema_type(Type::String)
        };
        r = r.header(
            name,
            HeaderBuilder::new().schema(schema).description(Some(what)).build(),
        );
    }
    r.build()
}

/// The document as served: utoipa's model, with the schemas that model cannot hold (`oneOf`
/// alternatives with `const`-like members) written as JSON in their place.
pub fn to_json(openapi: &utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut v = serde_json::to_value(openapi).unwrap_or_default();
    if let Some(schemas) = v
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    {
        schemas.insert("CreateKeyRequest".into(), super::keys::create_key_schema());
    }
    v
}

/// Completes the document once the routes are in it: adds to every operation the answers that
/// follow from how it is reached, unless the operation documents that status itself:
/// - an operation that takes credentials: 401, 403, 429 and 503;
/// - one with a JSON body: 400, 413 and 415;
/// - one with parameters: 400.
pub fn complete(openapi: &mut utoipa::openapi::OpenApi) {
    {
        let c = openapi.components.get_or_insert_with(Default::default);
        for (_, name, description, header) in SHARED {
            c.responses
                .insert((*name).to_string(), RefOr::T(shared_response(description, *header)));
        }
        let global_security = openapi.security.clone().unwrap_or_default();
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                let secured = match &op.security {
                    Some(s) => !s.is_empty(),
                    None => !global_security.is_empty(),
                };
                let mut statuses: Vec<&str> = vec![];
                if secured {
                    statuses.extend(["401", "403", "429", "503"]);
                }
                if op.request_body.is_some() {
                    statuses.extend(["400", "413", "415"]);
                }
                if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    statuses.push("400");
                }
                add_shared(op, &statuses);
            }
        }
    }
}

fn add_shared(op: &mut Operation, statuses: &[&str]) {
    for status in statuses {
        if op.responses.responses.contains_key(*status) {
            continue;
        }
        if let Some((_, name, _, _)) = SHARED.iter().find(|(s, ..)| s == status) {
            op.responses
                .responses
                .insert((*status).to_string(), RefOr::Ref(Ref::from_response_name(*name)));
        }
    }
}

/// Schemas of inputs whose rules a type alone does not say; each states exactly what the server
/// accepts (`src/service/validate.rs`), so a request valid by the document is never refused as
/// malformed, and one the document refuses is never accepted.
pub mod schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    use utoipa::openapi::{Object, RefOr, Schema};

    /// Control characters (Unicode category Cc), which no name may hold.
    const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";
    /// Unicode White_Space outside Cc: a name must hold something else.
    const SPACE: &str = r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

    fn string(min: usize, max: usize, pattern: Option<String>, description: &str) -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(min))
            .max_length(Some(max))
            .pattern(pattern)
            .description(Some(description))
            .build()
    }

    /// A display name (of a key, an organization API key, a lock): 1 to 200 characters, not all
    /// white space, no control characters.
    pub fn name() -> Object {
        string(
            1,
            crate::service::MAX_NAME_LEN,
            Some(format!("^[^{CONTROL}]*[^{CONTROL}{SPACE}][^{CONTROL}]*$")),
            "1 to 200 characters, not only white space, without control characters.",
        )
    }

    /// A door's name: 1 to 120 characters, not only white space.
    pub fn door_name() -> Object {
        string(
            1,
            120,
            Some(format!(r"[^\t-\r\x85{SPACE}]")),
            "1 to 120 characters, not only white space.",
        )
    }

    /// A scope a native key carries: 1 to 128 characters without white space or control characters.
    pub fn scopes() -> RefOr<Schema> {
        let item = string(
            1,
            crate::service::MAX_SCOPE_LEN,
            Some(format!("^[^{CONTROL}{SPACE}]*$")),
            "1 to 128 characters without white space or control characters.",
        );
        ArrayBuilder::new()
            .items(item)
            .max_items(Some(crate::service::MAX_SCOPES))
            .description(Some("At most 100 scopes."))
            .into()
    }

    /// A username: 1 to 64 of letters, digits, `.`, `_`, `@` and `-`.
    pub fn username() -> Object {
        string(
            1,
            64,
            Some(r"^[A-Za-z0-9._@-]*$".into()),
            "1 to 64 characters of ASCII letters, digits, '.', '_', '@' or '-'.",
        )
    }

    /// An organization's name: 1 to 100 of letters, digits, space, `.`, `_` and `-`, not starting
    /// or ending with a space.
    pub fn org_name() -> Object {
        string(
            1,
            100,
            Some(r"^[A-Za-z0-9._-]([A-Za-z0-9._ -]*[A-Za-z0-9._-])?$".into()),
            "1 to 100 characters of ASCII letters, digits, space, '.', '_' or '-', not starting or ending \
             with a space.",
        )
    }

    /// A new password: 8 to 1024 characters.
    pub fn new_password() -> Object {
        string(
            crate::service::password::MIN_PASSWORD_LEN,
            crate::service::password::MAX_PASSWORD_LEN,
            None,
            "8 to 1024 characters.",
        )
    }

    /// A new password, or null for no change.
    pub fn new_password_or_null() -> Object {
        let mut o = new_password();
        o.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
        o.description = Some("8 to 1024 characters; ends the user's tickets and sessions. Null: no change.".into());
        o
    }

    /// An instant as keygate takes it (RFC 3339), from year 1970 to 9999.
    pub fn date_time_json(nullable: bool) -> serde_json::Value {
        let ty = if nullable {
            serde_json::json!(["string", "null"])
        } else {
            serde_json::json!("string")
        };
        serde_json::json!({
            "type": ty,
            "format": "date-time",
            "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-",
            "description": "RFC 3339, from 1970-01-01 to 9999-12-31 (UTC).",
        })
    }

    /// A pattern for one of `words`, in any letter case.
    fn any_case(words: &[&str]) -> String {
        words
            .iter()
            .map(|w| {
                w.chars()
                    .map(|c| {
                        if c.is_ascii_alphabetic() {
                            format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                        } else if c.is_ascii_alphanumeric() {
                            c.to_string()
                        } else {
                            format!("\\{c}")
                        }
                    })
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("|")
    }

    /// White space as Rust's `str::trim` removes it.
    const TRIMMED: &str = r"\t-\r \x85\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

    /// A TemporaryKeyDomain as a string: its name in any case, or its number, with white space
    /// around it (`service::temporary::Domain::parse`).
    pub fn domain_pattern() -> String {
        let names: Vec<&str> = crate::service::temporary::Domain::ALL
            .iter()
            .map(|d| d.name())
            .collect();
        format!("^[{TRIMMED}]*(\\+?0*[0-7]|-0+|{})[{TRIMMED}]*$", any_case(&names))
    }

    /// A personal access key's scope: one of the catalogue's, in any letter case.
    pub fn personal_scope_pattern() -> String {
        format!("^({})$", any_case(crate::service::personal::CATALOGUE))
    }

    /// A share key's weekly schedule (`core::share::Schedule::parse`), or null for none.
    pub fn schedule_json() -> serde_json::Value {
        let days = any_case(&[
            "mon",
            "tue",
            "wed",
            "thu",
            "fri",
            "sat",
            "sun",
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ]);
        // chrono's `%H:%M`: one or two digits each, white space allowed before either.
        let time = format!("^[{TRIMMED}]*([01]?[0-9]|2[0-3]):[{TRIMMED}]*[0-5]?[0-9]$");
        let zones: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect();
        serde_json::json!({
            "type": ["object", "null"],
            "description": "Open on these weekdays from `from` until `until` (after `from`), in `timeZone`; null: always.",
            "required": ["days", "from", "until", "timeZone"],
            "properties": {
                "days": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": format!("^({days})$")}},
                "from": {"type": "string", "pattern": time},
                "until": {"type": "string", "pattern": time},
                "timeZone": {"enum": zones},
            },
        })
    }
}

#[cfg(test)]
mod tests {
    /// The schedule's time pattern (one or two digits each, white space allowed before either)
    /// admits exactly what `Schedule::parse` reads with chrono's `%H:%M`.
    #[test]
    fn schedule_times_match_the_pattern() {
        let admitted = [
            "08:30",
            "8:30",
            "08:5",
            "0:0",
            "23:59",
            "00:00",
            "19:09",
            " 08:30",
            "\t 8: 30",
            "\u{3000}08:30",
        ];
        let refused = [
            "24:00", "23:60", "08:30 ", "08 :30", "0830", "08:30:00", "+8:30", "008:30", "08:030", "", "-1:00",
        ];
        for t in admitted {
            assert!(
                chrono::NaiveTime::parse_from_str(t, "%H:%M").is_ok(),
                "{t:?} is refused"
            );
        }
        for t in refused {
            assert!(chrono::NaiveTime::parse_from_str(t, "%H:%M").is_err(), "{t:?} is taken");
        }
    }
}
