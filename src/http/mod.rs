//! The HTTP surface: a pure router builder over a shared [`AppState`], and `serve` to run it on a
//! listener with a shutdown future, so tests bind port 0 and decide when to stop.

mod error;
mod ops;
mod token;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;

pub use error::ApiError;

use crate::config::App;
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
}

impl AppState {
    pub fn new(runtime: Runtime) -> Self {
        Self {
            shared: Arc::new(Shared {
                runtime: ArcSwap::from_pointee(runtime),
                shutting_down: AtomicBool::new(false),
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

    pub fn is_ready(&self) -> bool {
        !self.shared.shutting_down.load(Ordering::SeqCst) && self.runtime().is_ready()
    }

    /// The app a token request names, by path (`/apps/{app}/token`) or by query (`/token?app=`),
    /// falling back to `server.default_app`. Used by CORS before the handler runs.
    fn app_for(&self, parts: &Parts) -> Option<Arc<App>> {
        let runtime = self.runtime();
        let name = app_name(parts.uri.path(), parts.uri.query(), &runtime)?;
        runtime.apps.get(&name).cloned()
    }
}

/// The app name of a token route, as in [`AppState::app_for`].
fn app_name(path: &str, query: Option<&str>, runtime: &Runtime) -> Option<String> {
    if let Some(rest) = path.strip_prefix("/apps/") {
        let name = rest.strip_suffix("/token")?;
        return (!name.contains('/')).then(|| name.to_owned());
    }
    let from_query = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "app")
            .map(|(_, v)| v.into_owned())
    });
    from_query.or_else(|| runtime.server.default_app.clone())
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
        .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
        .max_age(PREFLIGHT_MAX_AGE)
        .vary([
            header::ORIGIN,
            header::ACCESS_CONTROL_REQUEST_METHOD,
            header::ACCESS_CONTROL_REQUEST_HEADERS,
        ]);
    Router::new()
        .route("/token", get(token::default_app).post(token::default_app))
        .route(
            "/apps/{app}/token",
            get(token::named_app).post(token::named_app),
        )
        // Before the CORS layer, so preflights reach it instead of the 405 fallback.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(cors)
        .with_state(state)
}

/// Health, readiness (and later metrics).
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// Adds the layers every listener gets: problem+json fallbacks, a request timeout and a
/// panic guard that answers 500 and keeps the process serving.
pub fn finish(router: Router, request_timeout: Duration) -> Router {
    router
        .fallback(|| async { ApiError::not_found() })
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ))
        .layer(CatchPanicLayer::custom(|_panic| {
            tracing::error!("request handler panicked");
            ApiError::internal("panic").into_response()
        }))
}

/// Every route on one listener (no `admin_listen`).
pub fn router(state: AppState) -> Router {
    let timeout = state.runtime().server.request_timeout;
    finish(
        token_router(state.clone()).merge(ops_router(state)),
        timeout,
    )
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
