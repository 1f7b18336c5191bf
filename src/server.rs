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
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, delete, get, post, put};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
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

/// The whole HTTP surface as one service, for [`crate::listener::serve`]: the case step, then
/// the routes with their middleware (`bench_routes`: `/_bench/bare` taken before all of it).
/// A plain struct rather than a `Router` wrapped in another: the case step is a function call,
/// not a fallback service boxed and cloned per request, and the routes are matched once.
#[derive(Clone)]
pub struct App {
    routes: Router,
    case: Arc<CanonicalCase>,
    bare: Option<Router>,
}

impl App {
    /// Serve one request (the routers' futures need no `poll_ready`: a `Router` is always ready).
    pub fn serve<B>(&self, req: axum::http::Request<B>) -> axum::routing::future::RouteFuture<std::convert::Infallible>
    where
        B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let mut req = req.map(axum::body::Body::new);
        if let Some(bare) = &self.bare {
            if req.uri().path() == BENCH_BARE {
                return tower::Service::call(&mut bare.clone(), req);
            }
        }
        self.case.rewrite(&mut req);
        tower::Service::call(&mut self.routes.clone(), req)
    }
}

impl<B> tower::Service<axum::http::Request<B>> for App
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = axum::routing::future::RouteFuture<std::convert::Infallible>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        self.serve(req)
    }
}

pub fn router(state: AppState) -> App {
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
    // Each SuperOffice agent operation under its own path too, beside `{method}` (see there).
    for (path, handler) in superoffice::rest::operation_routes() {
        app = app.route(&path, handler);
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
    // One `layer` call: each `Router::layer` wraps every route once more (a boxed service
    // cloned and a boxed future per request), so the steps are one stack, outermost first: the
    // body limit, then `Track` (metrics, log line and the request timeout) right around the route.
    let routes = app
        .fallback(no_route)
        .layer(
            tower::ServiceBuilder::new()
                .layer(DefaultBodyLimit::max(limit))
                .layer(TrackLayer { timeout }),
        )
        .with_state(state);
    App {
        routes,
        case: Arc::new(canonical_case()),
        // Outside every layer and the case step.
        bare: bench.then(|| Router::new().route(BENCH_BARE, post(bench_json))),
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

/// The step that runs before routing ([`App::serve`]): a path that matches a route of a
/// case-insensitive surface only without regard to case is rewritten to that route's spelling
/// (see [`canonical_path`]); the query string is kept as sent. It runs on every request, and
/// for paths outside these surfaces' first segments it only compares one segment.
fn canonical_case() -> CanonicalCase {
    let patterns: Vec<&'static str> = surface_routes()
        .into_iter()
        .filter(|(_, _, surface, _)| CASE_INSENSITIVE_SURFACES.contains(surface))
        .map(|(_, path, _, _)| path)
        .collect();
    CanonicalCase::new(patterns)
}

/// The route patterns of the case-insensitive surfaces, and the first segments they start
/// with (`api`, `Remote`), so that every other path (`/v1/...`) is passed by at the cost of
/// comparing one segment.
struct CanonicalCase {
    patterns: Vec<&'static str>,
    /// `None` when a pattern starts with a parameter: then every path is looked at.
    first_segments: Option<Vec<&'static str>>,
    /// The answers of `canonical_path` for paths seen, so that a client that sends the same path
    /// again (the usual case: agent methods have no parameters in the path) is not matched
    /// against every pattern again. At most `MEMO_PATHS` paths of at most `MEMO_PATH_BYTES`;
    /// others are matched each time.
    memo: std::sync::RwLock<std::collections::HashMap<Box<str>, Option<Box<str>>>>,
}

impl CanonicalCase {
    fn new(patterns: Vec<&'static str>) -> Self {
        let mut first: Vec<&'static str> = vec![];
        let mut any_param = false;
        for p in &patterns {
            let seg = p.trim_start_matches('/').split('/').next().unwrap_or("");
            if seg.starts_with('{') {
                any_param = true;
            } else if !first.iter().any(|f| f.eq_ignore_ascii_case(seg)) {
                first.push(seg);
            }
        }
        CanonicalCase {
            patterns,
            first_segments: (!any_param).then_some(first),
            memo: Default::default(),
        }
    }

    const MEMO_PATHS: usize = 4_096;
    /// Longer paths are not remembered (so the memo stays under a few MB whatever clients send).
    const MEMO_PATH_BYTES: usize = 256;

    /// [`canonical_path`] of `path`, remembered.
    fn canonical(&self, path: &str) -> Option<Box<str>> {
        if let Some(known) = self
            .memo
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(path)
        {
            return known.clone();
        }
        let found: Option<Box<str>> = canonical_path(&self.patterns, path).map(String::into_boxed_str);
        if path.len() > Self::MEMO_PATH_BYTES {
            return found;
        }
        let mut memo = self.memo.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if memo.len() < Self::MEMO_PATHS {
            memo.insert(path.into(), found.clone());
        }
        found
    }

    /// Could `path` be one of the patterns' paths (by its first segment, without regard to case)?
    fn may_match(&self, path: &str) -> bool {
        let Some(first) = &self.first_segments else {
            return true;
        };
        let rest = path.strip_prefix('/').unwrap_or(path);
        let seg = rest
            .as_bytes()
            .iter()
            .position(|&b| b == b'/')
            .map_or(rest, |i| &rest[..i]);
        first.iter().any(|f| f.eq_ignore_ascii_case(seg))
    }

    fn rewrite(&self, req: &mut Request) {
        if !self.may_match(req.uri().path()) {
            return;
        }
        let Some(path) = self.canonical(req.uri().path()) else {
            return;
        };
        let path_and_query = match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path.into_string(),
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = axum::http::uri::PathAndQuery::try_from(path_and_query) {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
}

/// How `path` matches `pattern`: `None` when it does not; else the number of literal segments
/// and whether any of them is spelled otherwise than in the pattern. Parameters match any
/// non-empty segment; a wildcard (`{*rest}`) the non-empty rest, as the router does.
fn match_pattern(pattern: &str, path: &str) -> Option<(usize, bool)> {
    let mut segs = path.split('/');
    let mut literals = 0;
    let mut differs = false;
    for p in pattern.split('/') {
        let param = p.starts_with('{') && p.ends_with('}');
        if param && p.starts_with("{*") {
            return segs.any(|s| !s.is_empty()).then_some((literals, differs));
        }
        let seg = segs.next()?;
        if param {
            if seg.is_empty() {
                return None;
            }
        } else if p == seg {
            literals += 1;
        } else if p.eq_ignore_ascii_case(seg) {
            literals += 1;
            differs = true;
        } else {
            return None;
        }
    }
    segs.next().is_none().then_some((literals, differs))
}

/// The spelling of `path` in the route `patterns` when it matches one of them only without
/// regard to case: literal segments take the pattern's spelling; parameter segments (`{id}`,
/// `{*rest}`) keep the request's, so ids and names pass unchanged. `None` when no pattern
/// matches or the path is already spelled so. Of several matches, the one with the most
/// literal segments wins (`.../personalaccesskey` over `.../{*rest}`). Nothing is allocated
/// unless the path is rewritten.
pub fn canonical_path(patterns: &[&str], path: &str) -> Option<String> {
    let mut best: Option<(usize, bool, &str)> = None;
    for pattern in patterns {
        if let Some((literals, differs)) = match_pattern(pattern, path) {
            if best.is_none_or(|(n, _, _)| literals > n) {
                best = Some((literals, differs, pattern));
            }
        }
    }
    let (_, true, pattern) = best? else {
        return None;
    };
    // Spell it: the pattern's literals, the request's parameter segments and wildcard rest.
    let mut out = String::with_capacity(path.len());
    let mut segs = path.split('/');
    for (i, p) in pattern.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if p.starts_with("{*") && p.ends_with('}') {
            let rest: Vec<&str> = segs.by_ref().collect();
            out.push_str(&rest.join("/"));
            break;
        }
        let seg = segs.next().unwrap_or("");
        if p.starts_with('{') && p.ends_with('}') {
            out.push_str(seg);
        } else {
            out.push_str(p);
        }
    }
    Some(out)
}

async fn no_route() -> Response {
    api::ApiError(Error::NotFound("route")).into_response()
}

/// The target of the per-request log line. The line is at `debug`: off at the default level
/// (`info`), on with `log_level = "info,keygate::access=debug"` (or any `debug` filter).
pub const ACCESS_LOG_TARGET: &str = "keygate::access";

/// `keygate_http_requests_total` and `keygate_http_request_duration_seconds` of one route
/// ([`Track`] is made per route): the handles of each (method, route, status) seen, kept so that
/// a request does not build label strings and look the series up in the recorder again. The
/// route is a pattern of the route table (or `unmatched`), but a client can send any method
/// name: past `MAX_CACHED` entries a new combination is recorded without being kept (as every
/// request was before).
#[derive(Default)]
struct HttpMetrics {
    entries: std::sync::RwLock<Vec<MetricHandles>>,
}

struct MetricHandles {
    route: Box<str>,
    method: &'static str,
    status: u16,
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

/// A request's method as a metrics label: the methods of RFC 9110 and PATCH by name, any other
/// as `OTHER`. A client may send any token as a method, and each label value is a series the
/// recorder keeps for good: by name, clients could grow `/metrics` and memory without bound.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

impl HttpMetrics {
    const MAX_CACHED: usize = 64;

    fn record(&self, method: &axum::http::Method, route: &str, status: u16, secs: f64) {
        let method = method_label(method);
        let same = |e: &MetricHandles| e.status == status && e.method == method && *e.route == *route;
        {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = entries.iter().find(|e| same(e)) {
                e.requests.increment(1);
                e.duration.record(secs);
                return;
            }
        }
        let handles = MetricHandles {
            route: route.into(),
            method,
            status,
            requests: metrics::counter!("keygate_http_requests_total", "method" => method, "route" => route.to_string(), "status" => status.to_string()),
            duration: metrics::histogram!("keygate_http_request_duration_seconds", "method" => method, "route" => route.to_string()),
        };
        handles.requests.increment(1);
        handles.duration.record(secs);
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        // Another request may have cached it meanwhile.
        if entries.len() < Self::MAX_CACHED && !entries.iter().any(same) {
            entries.push(handles);
        }
    }
}

/// Metrics, a log line and the request timeout per request (see [`Track`]).
#[derive(Clone)]
struct TrackLayer {
    timeout: Duration,
}

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        // `Router::layer` calls this once per route (and method): the metric handles kept are
        // that route's, found without hashing its name.
        Track {
            inner,
            metrics: Arc::default(),
            timeout: self.timeout,
        }
    }
}

/// Around each route: the two HTTP metrics, and the request's log line at `debug` under
/// [`ACCESS_LOG_TARGET`] (method, matched route, status, latency, and Tedee's correlation id).
/// The raw URI (which could carry a key in a query string) and headers are never logged.
/// And the request timeout (`request_timeout_secs`, answered `408` with an empty body): served by
/// [`crate::listener::serve`], the request's deadline goes into its connection's slot, watched by
/// one timer per connection ([`crate::listener::Deadline`]), so no timer is made per request;
/// elsewhere a timer is armed once the request is first pending.
/// A plain service with its own future: nothing is boxed or allocated per request here.
#[derive(Clone)]
struct Track<S> {
    inner: S,
    metrics: Arc<HttpMetrics>,
    timeout: Duration,
}

impl<S> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TrackFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let start = Instant::now();
        let deadline = crate::listener::Deadline::current();
        if let Some(d) = &deadline {
            d.start(start + self.timeout);
        }
        TrackFuture {
            start,
            timeout: self.timeout,
            deadline,
            sleep: None,
            method: req.method().clone(),
            route: req.extensions().get::<MatchedPath>().cloned(),
            metrics: self.metrics.clone(),
            view: store::cache::RequestView::default(),
            inner: self.inner.call(req),
        }
    }
}

struct TrackFuture<F> {
    inner: F,
    start: Instant,
    timeout: Duration,
    /// The connection's deadline slot; without one, `sleep` once the request is pending.
    deadline: Option<Arc<crate::listener::Deadline>>,
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    method: axum::http::Method,
    route: Option<MatchedPath>,
    metrics: Arc<HttpMetrics>,
    /// The credential cache's reading of the database for this request (one per request).
    view: store::cache::RequestView,
}

impl<F, E> std::future::Future for TrackFuture<F>
where
    F: std::future::Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let this = &mut *self;
        let resp = match this.view.enter(|| std::pin::Pin::new(&mut this.inner).poll(cx)) {
            std::task::Poll::Ready(Ok(resp)) => resp,
            std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
            std::task::Poll::Pending => {
                let expired = match &this.deadline {
                    Some(d) => d.expired(),
                    None => {
                        let (start, timeout) = (this.start, this.timeout);
                        let sleep = this
                            .sleep
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until((start + timeout).into())));
                        sleep.as_mut().poll(cx).is_ready()
                    }
                };
                if !expired {
                    return std::task::Poll::Pending;
                }
                let mut resp = Response::new(axum::body::Body::empty());
                *resp.status_mut() = StatusCode::REQUEST_TIMEOUT;
                resp
            }
        };
        if let Some(d) = &this.deadline {
            d.finish();
        }
        let status = resp.status().as_u16();
        let secs = this.start.elapsed().as_secs_f64();
        let route = this.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let method = &this.method;
        this.metrics.record(method, route, status, secs);
        // The header is looked up only when the line is written.
        if tracing::enabled!(target: ACCESS_LOG_TARGET, tracing::Level::DEBUG) {
            match resp.headers().get(tedee::CORRELATION_ID).and_then(|v| v.to_str().ok()) {
                Some(correlation_id) => tracing::debug!(
                    target: ACCESS_LOG_TARGET, %method, route, status, ms = secs * 1000.0, correlation_id, "request"
                ),
                None => {
                    tracing::debug!(target: ACCESS_LOG_TARGET, %method, route, status, ms = secs * 1000.0, "request")
                }
            }
        }
        if status == StatusCode::REQUEST_TIMEOUT.as_u16() {
            tracing::warn!(route, "request timed out");
        }
        std::task::Poll::Ready(Ok(resp))
    }
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
    let store = store::cache::wrap(
        store,
        settings.credential_cache_entries,
        settings.postgres_credential_cache,
    );
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
    // Colours only on a terminal: a log file or a pipe gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
    if let Some(handle) = metrics.clone() {
        tokio::spawn(metrics_upkeep(handle));
    }
    let state = AppState::new(api::AppShared {
        svc: Arc::new(svc),
        net: Arc::new(api::NetPolicy::from_settings(&settings)?),
        settings: Arc::new(settings.clone()),
        metrics,
        test_clock: manual,
        // Validated with the settings; UTC as the SuperOffice surface has always fallen back to.
        server_tz: crate::core::tz::parse_time_zone(&settings.time_zone).unwrap_or(chrono_tz::UTC),
    });
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

/// How often [`metrics_upkeep`] drains the recorder.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// The Prometheus recorder keeps every sample of a histogram (each request's duration) until
/// something drains them into its summary: a scrape of `/metrics`, or its upkeep. Installed with
/// `install_recorder`, nothing ran the upkeep, so a server nobody scraped grew by about 20 bytes
/// per request, without bound (BENCHMARKS.md, "Memory under load"). It runs here every
/// [`METRICS_UPKEEP`], as `PrometheusBuilder::install` would run it (the same interval), for as
/// long as the runtime does.
async fn metrics_upkeep(handle: metrics_exporter_prometheus::PrometheusHandle) {
    let mut tick = tokio::time::interval(METRICS_UPKEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        handle.run_upkeep();
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
    use axum::Router;
    use axum::routing::post;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An [`super::App`] of one route (`POST /echo`, the body back) inside the middleware of
    /// [`super::router`]: a body limit of 64 bytes and a request timeout of 1 s.
    fn echo_app() -> super::App {
        let routes = Router::new()
            .route("/echo", post(|body: String| async move { body }))
            .layer(
                tower::ServiceBuilder::new()
                    .layer(axum::extract::DefaultBodyLimit::max(64))
                    .layer(super::TrackLayer {
                        timeout: Duration::from_secs(1),
                    }),
            );
        super::App {
            routes,
            case: Arc::new(super::canonical_case()),
            bare: None,
        }
    }

    /// Read one response head from `s`; its status code.
    async fn status(s: &mut tokio::net::TcpStream) -> u16 {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        // A bound so that a broken server fails the test instead of hanging it.
        let read = async {
            while !head.ends_with(b"\r\n\r\n") {
                if s.read(&mut byte).await.unwrap() == 0 {
                    break;
                }
                head.push(byte[0]);
            }
        };
        tokio::time::timeout(Duration::from_secs(60), read).await.unwrap();
        let head = String::from_utf8_lossy(&head);
        head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    }

    /// Over a real connection of the serve loop: a request whose body never comes answers 408
    /// once the timeout passes, also when an earlier request on the same connection was
    /// answered (the connection's one timer was armed for it first); an oversized body 413.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_serve_loop_answers_the_request_timeout_and_the_body_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = crate::listener::Limits {
            header_read_timeout: Duration::from_secs(60),
            max_connections: 16,
            max_connections_per_address: 16,
            trusted_proxies: vec![],
        };
        tokio::spawn(crate::listener::serve(
            listener,
            echo_app(),
            limits,
            std::future::pending(),
        ));
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: k\r\nContent-Length: 2\r\n\r\nhi")
            .await
            .unwrap();
        assert_eq!(status(&mut s).await, 200);
        let mut body = [0u8; 2];
        s.read_exact(&mut body).await.unwrap();
        assert_eq!(&body, b"hi");
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: k\r\nContent-Length: 10\r\n\r\nabc")
            .await
            .unwrap();
        assert_eq!(status(&mut s).await, 408);
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let big = format!(
            "POST /echo HTTP/1.1\r\nHost: k\r\nContent-Length: 100\r\n\r\n{}",
            "x".repeat(100)
        );
        s.write_all(big.as_bytes()).await.unwrap();
        assert_eq!(status(&mut s).await, 413);
    }

    /// Outside the serve loop (no connection slot), the timeout has a timer of its own.
    #[tokio::test]
    async fn the_request_timeout_holds_outside_the_serve_loop() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
        let body = axum::body::Body::from_stream(tokio_stream_of(rx));
        let req = axum::http::Request::post("/echo").body(body).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(60), echo_app().serve(req))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), 408);
    }

    fn tokio_stream_of<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    #[test]
    fn the_memo_answers_as_the_match_and_stays_bounded() {
        let routes = vec!["/api/v1/Agents/Person/{method}", "/Remote/Services86/Person.svc"];
        let case = super::CanonicalCase::new(routes.clone());
        let long = format!("/api/v1/agents/person/{}", "m".repeat(300));
        let mut paths = vec![
            "/api/v1/agents/person/checktemporarykey".to_string(),
            "/api/v1/Agents/Person/CheckTemporaryKey".to_string(),
            "/remote/services86/person.svc".to_string(),
            "/api/v1/nothing".to_string(),
            long.clone(),
        ];
        paths.extend((0..super::CanonicalCase::MEMO_PATHS + 10).map(|i| format!("/api/v1/agents/person/m{i}")));
        for round in 0..2 {
            for p in &paths {
                let want = super::canonical_path(&routes, p);
                assert_eq!(case.canonical(p).map(String::from), want, "round {round}: {p}");
            }
        }
        let memo = case.memo.read().unwrap();
        assert_eq!(memo.len(), super::CanonicalCase::MEMO_PATHS);
        assert!(!memo.contains_key(long.as_str()));
    }

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
