//! The HTTP surface: a pure router builder over a shared [`AppState`], and `serve` to run it on a
//! listener with a shutdown future, so tests bind port 0 and decide when to stop.

mod client;
mod error;
mod observe;
mod ops;
mod token;
mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer, Vary};

pub use error::ApiError;
use observe::ObserveLayer;

use crate::config::App;
use crate::metrics::Metrics;
use crate::runtime::Runtime;

/// How long browsers may cache a preflight answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// State shared by every request: the current runtime, swappable as a whole.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

struct Shared {
    runtime: ArcSwap<Runtime>,
    shutting_down: AtomicBool,
    /// Cleared while credentials are being checked at start, and kept cleared if Twilio
    /// rejected one (`server.check_credentials_on_start`).
    credentials_ok: AtomicBool,
}

impl AppState {
    pub fn new(runtime: Runtime) -> Self {
        Self {
            shared: Arc::new(Shared {
                runtime: ArcSwap::from_pointee(runtime),
                shutting_down: AtomicBool::new(false),
                credentials_ok: AtomicBool::new(true),
            }),
        }
    }

    /// The runtime in force now; a request keeps the one it started with.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.shared.runtime.load_full()
    }

    /// Swaps in a new runtime atomically (configuration reload).
    pub fn replace(&self, runtime: Runtime) {
        self.shared.runtime.store(Arc::new(runtime));
    }

    /// Makes readiness fail from now on, so load balancers stop sending traffic.
    pub fn begin_shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Holds readiness until [`AppState::set_credentials_ok`] says otherwise.
    pub fn set_credentials_ok(&self, ok: bool) {
        self.shared.credentials_ok.store(ok, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        !self.shared.shutting_down.load(Ordering::SeqCst)
            && self.shared.credentials_ok.load(Ordering::SeqCst)
            && self.runtime().is_ready()
    }

    /// The app a token request names (see [`token::requested_app`]). Used by CORS before the
    /// handler runs.
    fn app_for(&self, parts: &Parts) -> Option<Arc<App>> {
        let runtime = self.runtime();
        let (name, _) = token::requested_app(&parts.uri, &runtime);
        runtime.apps.get(&name?).cloned()
    }
}

/// The token API with its per-app CORS policy.
pub fn token_router(state: AppState) -> Router {
    let origin_state = state.clone();
    let credentials_state = state.clone();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, parts| {
            origin_state
                .app_for(parts)
                .is_some_and(|app| app.cors.allows(origin.as_bytes()))
        }))
        .allow_credentials(AllowCredentials::predicate(move |origin, parts| {
            credentials_state
                .app_for(parts)
                .is_some_and(|app| app.cors.allow_credentials && app.cors.allows(origin.as_bytes()))
        }))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(PREFLIGHT_MAX_AGE)
        // `cors_only_for_allowed_origins` adds `Vary`.
        .vary(Vary::list([]));
    Router::new()
        .route(
            "/token",
            get(token::handle)
                .post(token::handle)
                .head(token::method_not_allowed),
        )
        .route(
            "/apps/{app}/token",
            get(token::handle)
                .post(token::handle)
                .head(token::method_not_allowed),
        )
        // Before the CORS layer, so preflights reach it instead of the 405 fallback.
        .method_not_allowed_fallback(token::method_not_allowed)
        .layer(
            tower::ServiceBuilder::new()
                .map_response(cors_only_for_allowed_origins)
                .layer(cors),
        )
        .with_state(state)
}

/// `Vary` of every answer of the token routes: whether they carry CORS headers, and which,
/// depends on these request headers. One constant, where the CORS layer would join its list into
/// a new header value for every request.
const CORS_VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

/// tower-http's CORS layer adds the allowed methods, headers and max age to every preflight, and
/// the exposed headers to every response, whatever the origin; a browser ignores them without
/// `Access-Control-Allow-Origin`, but an origin that is refused should learn nothing about the
/// API from them either. `Vary` is added to every answer: caches need it whatever the answer.
///
/// The layer answers every `OPTIONS` itself (with the allowed methods, whatever the origin). Its
/// answer gets the token routes' `Allow`, as their 405s have it, before axum adds one offering
/// `HEAD`, which they refuse; and, like every other answer of theirs, is not to be stored.
fn cors_only_for_allowed_origins(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.append(header::VARY, CORS_VARY);
    if headers.contains_key(header::ACCESS_CONTROL_ALLOW_METHODS) {
        headers.insert(header::ALLOW, token::ALLOWED_METHODS);
        headers.insert(header::CACHE_CONTROL, NO_STORE);
    }
    // Credentials are only ever allowed with the origin, so they need no check.
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        headers.remove(header::ACCESS_CONTROL_EXPOSE_HEADERS);
        if headers
            .remove(header::ACCESS_CONTROL_ALLOW_METHODS)
            .is_some()
        {
            headers.remove(header::ACCESS_CONTROL_ALLOW_HEADERS);
            headers.remove(header::ACCESS_CONTROL_MAX_AGE);
        }
    }
    response
}

/// Health, readiness, metrics and webhook signature checks.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/webhooks/verify", axum::routing::post(webhook::verify))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// Adds the layers every listener gets: problem+json fallbacks, a request timeout, a latency
/// histogram by route (timed-out requests included) and a panic guard that answers 500 and keeps
/// the process serving.
pub fn finish(router: Router, request_timeout: Duration, metrics: Arc<Metrics>) -> Router {
    let panic_guard = CatchPanicLayer::custom(|_panic| {
        tracing::error!("request handler panicked");
        ApiError::internal("panic").into_response()
    });
    // One `layer` call for both: each wraps every route in another boxed service, cloned per
    // request.
    router.fallback(|| async { ApiError::not_found() }).layer(
        tower::ServiceBuilder::new()
            .layer(panic_guard)
            .layer(ObserveLayer::new(request_timeout, metrics)),
    )
}

/// Every route on one listener (no `admin_listen`).
pub fn router(state: AppState) -> Router {
    let runtime = state.runtime();
    let (timeout, metrics) = (runtime.server.request_timeout, runtime.metrics.clone());
    finish(
        token_router(state.clone()).merge(ops_router(state)),
        timeout,
        metrics,
    )
}

/// Largest request head (request line and headers) read, in bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and waits for
/// open connections to finish their in-flight requests (idle keep-alive connections are closed).
///
/// Unlike `axum::serve`, a client must send its whole request head within
/// `header_read_timeout`, so connections that drip headers (slowloris) or send nothing are
/// closed. HTTP/1.1 only: hyper has no such timer for HTTP/2, nor for the bytes it reads to
/// tell the two apart, so offering h2c would let a client hold a connection open for ever.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use tower::ServiceExt;

    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_HEAD_BYTES);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                router.clone().oneshot(request.map(axum::body::Body::new))
            },
        );
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection closed with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, NO_STORE);
    response
}
