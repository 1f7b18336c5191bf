//! Start-up and the route table.

use crate::api::doc::ApiDoc;
use crate::api::{
    self, AppState, admin, events, guest, keys, locks, login, pages, smartphonekey, superoffice, system, tedee,
};
use crate::clock::{ManualClock, SharedClock, SystemClock};
use crate::config::Settings;
use crate::core::secret::SecretHasher;
use crate::error::Error;
use crate::service::Service;
use crate::store;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, delete, get, post, put};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The native API: one line per route, documented from the same definitions.
fn native_api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let native = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::verify))
        .routes(routes!(keys::get, keys::revoke))
        .routes(routes!(keys::use_key))
        .routes(routes!(login::create_ticket))
        .routes(routes!(login::create_session, login::delete_session))
        .routes(routes!(login::me))
        .routes(routes!(admin::create_org, admin::list_orgs))
        .routes(routes!(admin::get_org))
        .routes(routes!(admin::create_user, admin::list_users))
        .routes(routes!(admin::get_user, admin::update_user))
        .routes(routes!(admin::unlock_user))
        .routes(routes!(login::change_password))
        .routes(routes!(admin::create_api_key, admin::list_api_keys))
        .routes(routes!(admin::revoke_api_key))
        .routes(routes!(events::list))
        .routes(routes!(locks::create, locks::list))
        .routes(routes!(locks::get));
    let (router, mut doc) = native.split_for_parts();
    api::doc::complete(&mut doc);
    (router, doc)
}

/// The OpenAPI document of the native API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    native_api().1
}

/// One route of the HTTP surface, as data: the router is built from this table, and the
/// tenancy test walks it, so a route that the walk does not cover fails that test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// `GET`, `POST`, `PUT`, `DELETE`, or `ANY`.
    pub method: String,
    /// The path pattern in axum's syntax (`/v1/keys/{id}`).
    pub path: String,
    /// `native`, `tedee`, `superoffice`, `smartphonekey`, `guest`, `pages` or `system`.
    pub surface: &'static str,
    /// Served only with `unsafe_test_clock` (or, for `/_bench/*`, `bench_routes`) on.
    pub test_only: bool,
}

type Entry = (&'static str, &'static str, &'static str, MethodRouter<AppState>);

/// The routes outside the native API, one line each: method, path, surface, handler.
fn surface_routes() -> Vec<Entry> {
    let mut routes = vec![
        // Tedee-compatible personal access keys.
        (
            "POST",
            "/api/{version}/my/personalaccesskey",
            "tedee",
            post(tedee::create),
        ),
        ("GET", "/api/{version}/my/personalaccesskey", "tedee", get(tedee::list)),
        (
            "PUT",
            "/api/{version}/my/personalaccesskey/{id}",
            "tedee",
            put(tedee::update),
        ),
        (
            "DELETE",
            "/api/{version}/my/personalaccesskey/{id}",
            "tedee",
            delete(tedee::delete),
        ),
        ("ANY", "/api/{version}/my/{*rest}", "tedee", any(tedee::not_found)),
        // SuperOffice agents over REST: POST runs a method, GET describes it. Their SOAP
        // endpoints (every service at Services86, 87 and 88) follow the table below.
        (
            "POST",
            "/api/v1/Agents/Person/{method}",
            "superoffice",
            post(superoffice::rest::person),
        ),
        (
            "GET",
            "/api/v1/Agents/Person/{method}",
            "superoffice",
            get(superoffice::rest::person_describe),
        ),
        (
            "POST",
            "/api/v1/Agents/ForeignSystem/{method}",
            "superoffice",
            post(superoffice::rest::foreign_system),
        ),
        (
            "GET",
            "/api/v1/Agents/ForeignSystem/{method}",
            "superoffice",
            get(superoffice::rest::foreign_system_describe),
        ),
        // SmartphoneKey lock temp keys.
        (
            "POST",
            "/locks/{id}/create-temp-key",
            "smartphonekey",
            post(smartphonekey::create),
        ),
        (
            "POST",
            "/locks/{id}/update-temp-key",
            "smartphonekey",
            post(smartphonekey::update),
        ),
        (
            "POST",
            "/locks/{id}/delete-temp-key",
            "smartphonekey",
            post(smartphonekey::delete),
        ),
        (
            "POST",
            "/locks/{id}/use-temp-key",
            "smartphonekey",
            post(smartphonekey::use_key),
        ),
        (
            "GET",
            "/locks/{id}/temp-keys",
            "smartphonekey",
            get(smartphonekey::list),
        ),
        (
            "POST",
            "/locks/{id}/open-with-pin",
            "smartphonekey",
            post(smartphonekey::open_with_pin),
        ),
        (
            "POST",
            "/temp-keys",
            "smartphonekey",
            post(smartphonekey::create_collective),
        ),
        (
            "GET",
            "/temp-keys",
            "smartphonekey",
            get(smartphonekey::list_collective),
        ),
        (
            "DELETE",
            "/temp-keys/{uuid}",
            "smartphonekey",
            delete(smartphonekey::delete_collective),
        ),
        // The guest side of share keys.
        ("GET", "/temp-keys/{uuid}", "guest", get(guest::show)),
        ("POST", "/temp-keys/{uuid}/open", "guest", post(guest::open)),
        (
            "GET",
            "/temp-keys/{uuid}/confirmation",
            "guest",
            get(guest::confirmation),
        ),
        (
            "POST",
            "/temp-keys/{uuid}/doors/{doorId}/open",
            "guest",
            post(guest::open_door),
        ),
        // The collective routes again under SmartphoneKey's newer name (the same handlers).
        (
            "POST",
            "/collective-temp-keys",
            "smartphonekey",
            post(smartphonekey::create_collective),
        ),
        (
            "GET",
            "/collective-temp-keys",
            "smartphonekey",
            get(smartphonekey::list_collective),
        ),
        (
            "DELETE",
            "/collective-temp-keys/{uuid}",
            "smartphonekey",
            delete(smartphonekey::delete_collective),
        ),
        ("GET", "/collective-temp-keys/{uuid}", "guest", get(guest::show)),
        (
            "GET",
            "/collective-temp-keys/{uuid}/confirmation",
            "guest",
            get(guest::confirmation),
        ),
        (
            "POST",
            "/collective-temp-keys/{uuid}/doors/{doorId}/open",
            "guest",
            post(guest::open_door),
        ),
        // Web pages: my personal access keys.
        ("GET", "/account", "pages", get(pages::account)),
        ("GET", "/account/login", "pages", get(pages::login_page)),
        ("GET", "/account/keys", "pages", get(pages::keys_page)),
        ("GET", "/account/login.js", "pages", get(pages::login_js)),
        ("GET", "/account/keys.js", "pages", get(pages::keys_js)),
        ("GET", "/account/style.css", "pages", get(pages::style_css)),
        ("GET", "/healthz", "system", get(system::healthz)),
        ("GET", "/metrics", "system", get(system::metrics)),
    ];
    // SuperOffice SOAP: POST calls a service version, GET ?wsdl describes it.
    for &(path, agent, version) in superoffice::soap::ENDPOINTS {
        routes.push(("POST", path, "superoffice", superoffice::soap::endpoint(agent, version)));
        routes.push((
            "GET",
            path,
            "superoffice",
            superoffice::soap::wsdl_endpoint(agent, version),
        ));
    }
    routes
}

const TEST_CLOCK: &str = "/_test/clock";
/// `bench_routes` only: the bench ceiling's handler outside keygate's middleware, and inside it.
const BENCH_BARE: &str = "/_bench/bare";
const BENCH_MIDDLEWARE: &str = "/_bench/middleware";

/// Every route the server serves: the native API's (from its OpenAPI document, which the same
/// definitions generate), `/openapi.json`, and the other surfaces' table.
pub fn routes() -> Vec<RouteInfo> {
    let info = |method: &str, path: &str, surface: &'static str, test_only: bool| RouteInfo {
        method: method.to_string(),
        path: path.to_string(),
        surface,
        test_only,
    };
    let mut out = vec![];
    for (path, item) in &openapi().paths.paths {
        let ops = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("DELETE", item.delete.is_some()),
            ("PATCH", item.patch.is_some()),
        ];
        for (m, present) in ops {
            if present {
                out.push(info(m, path, "native", false));
            }
        }
    }
    out.push(info("GET", "/openapi.json", "system", false));
    out.extend(
        surface_routes()
            .into_iter()
            .map(|(m, p, surface, _)| info(m, p, surface, false)),
    );
    out.push(info("POST", TEST_CLOCK, "system", true));
    out.push(info("POST", BENCH_BARE, "system", true));
    out.push(info("POST", BENCH_MIDDLEWARE, "system", true));
    out
}

pub fn router(state: AppState) -> Router {
    let (native, doc) = native_api();
    let doc = Arc::new(api::doc::to_json(&doc));
    let mut app = Router::new().merge(native).route(
        "/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc.as_ref().clone()) }
        }),
    );
    // Routes of one path with several methods merge into one method router.
    for (_, path, surface, handler) in surface_routes() {
        // Tedee's wire rules (405 in the envelope, X-Correlation-ID, API-Supported-Versions)
        // hold on every route of that surface.
        let handler = if surface == "tedee" {
            handler.layer(middleware::from_fn(tedee::wire))
        } else {
            handler
        };
        app = app.route(path, handler);
    }
    if state.test_clock.is_some() {
        app = app.route(TEST_CLOCK, post(system::move_clock));
    }
    let bench = state.settings.bench_routes;
    if bench {
        app = app.route(BENCH_MIDDLEWARE, post(bench_json));
    }
    let timeout = Duration::from_secs(state.settings.request_timeout_secs);
    let limit = state.settings.body_limit_bytes;
    let app = app
        .fallback(no_route)
        .layer(middleware::from_fn(track))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state);
    let app = with_canonical_case(app);
    if bench {
        // Merged after the layers, so none of them wraps it.
        app.merge(Router::new().route(BENCH_BARE, post(bench_json)))
    } else {
        app
    }
}

/// The bench ceiling (`bench_routes`): a small JSON body in, a small JSON body out, nothing
/// else. `examples/ceiling.rs` serves the same handler in a process of its own.
async fn bench_json(axum::Json(body): axum::Json<serde_json::Value>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"valid": true, "code": "VALID", "echo": body.get("key")}))
}

/// The surfaces whose source systems match paths without regard to case (SuperOffice on IIS,
/// Tedee). keygate's own routes (`/v1`, ...) stay case-sensitive.
const CASE_INSENSITIVE_SURFACES: &[&str] = &["superoffice", "tedee"];

/// Wrap the router in a step that runs before routing: a path that matches a route of a
/// case-insensitive surface only without regard to case is rewritten to that route's spelling
/// (see [`canonical_path`]); the query string is kept as sent.
fn with_canonical_case(app: Router) -> Router {
    let patterns: Arc<Vec<&'static str>> = Arc::new(
        surface_routes()
            .into_iter()
            .filter(|(_, _, surface, _)| CASE_INSENSITIVE_SURFACES.contains(surface))
            .map(|(_, path, _, _)| path)
            .collect(),
    );
    Router::new()
        .fallback_service(app)
        .layer(middleware::from_fn(move |mut req: Request, next: Next| {
            if let Some(path) = canonical_path(&patterns, req.uri().path()) {
                let path_and_query = match req.uri().query() {
                    Some(q) => format!("{path}?{q}"),
                    None => path,
                };
                let mut parts = req.uri().clone().into_parts();
                if let Ok(pq) = axum::http::uri::PathAndQuery::try_from(path_and_query) {
                    parts.path_and_query = Some(pq);
                    if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                        *req.uri_mut() = uri;
                    }
                }
            }
            next.run(req)
        }))
}

/// The spelling of `path` in the route `patterns` when it matches one of them only without
/// regard to case: literal segments take the pattern's spelling; parameter segments (`{id}`,
/// `{*rest}`) keep the request's, so ids and names pass unchanged. `None` when no pattern
/// matches or the path is already spelled so. Of several matches, the one with the most
/// literal segments wins (`.../personalaccesskey` over `.../{*rest}`).
pub fn canonical_path(patterns: &[&str], path: &str) -> Option<String> {
    let segs: Vec<&str> = path.split('/').collect();
    let mut best: Option<(usize, String)> = None;
    for pattern in patterns {
        let mut out: Vec<&str> = Vec::with_capacity(segs.len());
        let mut literals = 0;
        let mut i = 0;
        let mut matched = true;
        for p in pattern.split('/') {
            let param = p.starts_with('{') && p.ends_with('}');
            if param && p.starts_with("{*") {
                // A wildcard takes the non-empty rest, as the router does.
                matched = i < segs.len() && segs[i..].iter().any(|s| !s.is_empty());
                out.extend(segs.get(i..).unwrap_or_default());
                i = segs.len();
                break;
            }
            match segs.get(i) {
                Some(seg) if param && !seg.is_empty() => out.push(seg),
                Some(seg) if !param && p.eq_ignore_ascii_case(seg) => {
                    out.push(p);
                    literals += 1;
                }
                _ => {
                    matched = false;
                    break;
                }
            }
            i += 1;
        }
        if matched && i == segs.len() && best.as_ref().is_none_or(|(n, _)| literals > *n) {
            best = Some((literals, out.join("/")));
        }
    }
    best.map(|(_, p)| p).filter(|p| p != path)
}

async fn no_route() -> Response {
    api::ApiError(Error::NotFound("route")).into_response()
}

/// Metrics and one log line per request: method, matched route, status and latency. The raw
/// URI (which could carry a key in a query string) and headers are never logged.
async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let secs = start.elapsed().as_secs_f64();
    metrics::counter!("keygate_http_requests_total", "method" => method.to_string(), "route" => route.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("keygate_http_request_duration_seconds", "method" => method.to_string(), "route" => route.clone()).record(secs);
    match resp.headers().get(tedee::CORRELATION_ID).and_then(|v| v.to_str().ok()) {
        Some(correlation_id) => {
            tracing::info!(%method, route, status, ms = secs * 1000.0, correlation_id, "request")
        }
        None => tracing::info!(%method, route, status, ms = secs * 1000.0, "request"),
    }
    if resp.status() == StatusCode::REQUEST_TIMEOUT {
        tracing::warn!(route, "request timed out");
    }
    resp
}

/// Load the server secret: `KEYGATE_SECRET`, or the secret file (generated on first start).
///
/// On PostgreSQL, every node must key digests with the same secret, so keygate never generates
/// one there: it needs `KEYGATE_SECRET`, or a `secret_file` that exists (shared by the nodes).
pub fn load_server_secret(settings: &Settings) -> Result<Vec<u8>, String> {
    if let Some(s) = &settings.secret {
        if s.len() < 32 {
            return Err("KEYGATE_SECRET must be at least 32 bytes".into());
        }
        return Ok(s.as_bytes().to_vec());
    }
    if store::is_postgres_url(&settings.database_url) {
        return match &settings.secret_file {
            Some(path) => read_secret_file(path)?.ok_or_else(|| {
                format!(
                    "the secret file {} does not exist; on PostgreSQL keygate does not generate one \
                     (every node must share it)",
                    path.display()
                )
            }),
            None => Err(
                "on PostgreSQL, set KEYGATE_SECRET (at least 32 bytes, the same on every node) \
                 or secret_file (a file every node shares)"
                    .into(),
            ),
        };
    }
    let path = settings.resolved_secret_file();
    read_or_create_secret_file(&path)
}

/// The secret in an existing secret file; `None` when there is no such file.
fn read_secret_file(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read_to_string(path) {
        Ok(s) => URL_SAFE_NO_PAD
            .decode(s.trim())
            .ok()
            .filter(|b| b.len() >= 32)
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "the secret file {} is damaged (expected base64url of 32+ bytes)",
                    path.display()
                )
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read the secret file {}: {e}", path.display())),
    }
}

fn read_or_create_secret_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Write;
    if let Some(secret) = read_secret_file(path)? {
        return Ok(secret);
    }
    let bytes = crate::core::secret::random_bytes::<32>();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(URL_SAFE_NO_PAD.encode(bytes.as_ref()).as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| format!("cannot write the secret file {}: {e}", path.display()))?;
            Ok(bytes.to_vec())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_or_create_secret_file(path),
        Err(e) => Err(format!("cannot create the secret file {}: {e}", path.display())),
    }
}

/// Open the store, migrate it, and build the service.
pub async fn build_service(settings: &Settings, clock: SharedClock) -> Result<Service, String> {
    let secret = load_server_secret(settings)?;
    let hasher = SecretHasher::new(&secret)?;
    let store = store::open_with(&settings.database_url, &settings.pool_settings())
        .await
        .map_err(describe)?;
    store.migrate().await.map_err(describe)?;
    Service::new(store, hasher, clock, settings)
}

/// An error as text for the operator (start-up and the CLI): internal details included.
pub fn describe(e: Error) -> String {
    match e {
        Error::Internal(d) | Error::Unavailable(d) => d,
        other => other.to_string(),
    }
}

pub fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if settings.log_format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// `keygate serve`.
pub async fn serve(settings: Settings) -> Result<(), String> {
    init_logging(&settings);
    let manual = settings.unsafe_test_clock.then(|| Arc::new(ManualClock::default()));
    let clock: SharedClock = match &manual {
        Some(m) => {
            tracing::warn!(
                "KEYGATE_UNSAFE_TEST_CLOCK is on: the clock can be moved over HTTP. Never use this in production."
            );
            m.clone()
        }
        None => Arc::new(SystemClock),
    };
    let svc = build_service(&settings, clock).await?;
    match svc.bootstrap().await {
        Ok(Some(info)) => {
            eprintln!(
                "keygate: first start: created organization \"{}\" and administrator \"{}\"\nkeygate: admin password: {}\nkeygate: this password is shown once; keep it safe",
                info.org_name, info.username, info.password
            );
        }
        Ok(None) => {}
        Err(e) => return Err(format!("bootstrap failed: {}", describe(e))),
    }
    svc.repair()
        .await
        .map_err(|e| format!("start-up repair failed: {}", describe(e)))?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let state = AppState {
        svc: Arc::new(svc),
        net: Arc::new(api::NetPolicy::from_settings(&settings)?),
        settings: Arc::new(settings.clone()),
        metrics,
        test_clock: manual,
    };
    let app = router(state);
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let shutdown = shutdown_signal();
    eprintln!("keygate: listening on http://{addr}");
    tracing::info!(%addr, database = %redact_url(&settings.database_url), "keygate started");
    let limits = crate::listener::Limits {
        header_read_timeout: Duration::from_secs(settings.header_read_timeout_secs),
        max_connections: settings.max_connections,
        max_connections_per_address: settings.max_connections_per_address,
        trusted_proxies: settings.trusted_proxies()?,
    };
    crate::listener::serve(listener, app, limits, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("keygate stopped");
    Ok(())
}

/// A database URL without its password, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Register for SIGTERM and SIGINT now, so a signal that arrives right after the "listening"
/// line is already handled gracefully; the returned future resolves on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            };
            tokio::select! {
                _ = term => {},
                _ = int => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_take_the_routes_spelling_and_keep_their_parameters() {
        let routes = [
            "/api/{version}/my/personalaccesskey",
            "/api/{version}/my/personalaccesskey/{id}",
            "/api/{version}/my/{*rest}",
            "/api/v1/Agents/Person/{method}",
            "/Remote/Services86/Person.svc",
        ];
        let c = |p: &str| super::canonical_path(&routes, p);
        assert_eq!(
            c("/api/v1/agents/person/checktemporarykey").as_deref(),
            Some("/api/v1/Agents/Person/checktemporarykey")
        );
        assert_eq!(
            c("/remote/services86/person.svc").as_deref(),
            Some("/Remote/Services86/Person.svc")
        );
        assert_eq!(
            c("/API/V37/My/PersonalAccessKey").as_deref(),
            Some("/api/V37/my/personalaccesskey")
        );
        assert_eq!(
            c("/API/v37/MY/PersonalAccessKey/AbC-1").as_deref(),
            Some("/api/v37/my/personalaccesskey/AbC-1")
        );
        assert_eq!(c("/API/v37/MY/Other/Thing").as_deref(), Some("/api/v37/my/Other/Thing"));
        // Already spelled so, or no route of these surfaces.
        assert_eq!(c("/Remote/Services86/Person.svc"), None);
        assert_eq!(c("/V1/keys"), None);
        assert_eq!(c("/remote/services86/person.svc/extra"), None);
        assert_eq!(c("/api/v37/my/"), None);
        assert_eq!(c("/api/v1/agents/person/"), None);
    }

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            super::redact_url("postgres://kg:hunter2@db/kg"),
            "postgres://kg:***@db/kg"
        );
        assert_eq!(super::redact_url("sqlite://keygate.db"), "sqlite://keygate.db");
    }
}
