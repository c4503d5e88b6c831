//! The middleware every request passes: a deadline, and its latency counted by route and status.
//!
//! A tower layer rather than `axum::middleware::from_fn`: `from_fn` clones the service it wraps
//! (a boxed route, with the CORS layer inside it) and boxes its own future on every request;
//! this calls the service it wraps in place and returns a plain future.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tokio::time::Timeout;
use tower::{Layer, Service};

use super::ApiError;
use crate::metrics::Metrics;

/// When a request's time is up. [`Observe`] puts it in every request for handlers that answer a
/// timeout themselves (the token routes, so that it is audited like any refusal): a timer set
/// for the same instant fires in the same tick as `Observe`'s own, and `Observe` polls the
/// handler before its timer, so it finds the handler's answer ready.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(pub tokio::time::Instant);

/// Answers 503 `unavailable` when the wrapped service takes longer than `timeout`, and records
/// every request's latency (timed-out ones included) under its matched route.
#[derive(Clone)]
pub struct ObserveLayer {
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl ObserveLayer {
    pub fn new(timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self { timeout, metrics }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            timeout: self.timeout,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started) + self.timeout;
        request.extensions_mut().insert(Deadline(deadline));
        ObserveFuture {
            inner: tokio::time::timeout_at(deadline, self.inner.call(request)),
            route,
            started,
            metrics: self.metrics.clone(),
        }
    }
}

pin_project! {
    pub struct ObserveFuture<F> {
        #[pin]
        inner: Timeout<F>,
        route: Option<MatchedPath>,
        started: Instant,
        metrics: Arc<Metrics>,
    }
}

impl<F> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match ready!(this.inner.poll(cx)) {
            Ok(Ok(response)) => response,
            Err(_elapsed) => ApiError::timed_out().into_response(),
        };
        let route = this.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let elapsed = this.started.elapsed().as_secs_f64();
        this.metrics
            .request(route, response.status().as_u16(), elapsed);
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn status(router: &Router, path: &str) -> u16 {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        response.status().as_u16()
    }

    #[tokio::test]
    async fn counts_each_answer_under_its_route_and_times_out_slow_ones() {
        let metrics = Arc::new(Metrics::default());
        let router = Router::new()
            .route("/fast", get(|| async { "ok" }))
            .route(
                "/slow/{n}",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
            .fallback(|| async { StatusCode::NOT_FOUND })
            .layer(ObserveLayer::new(
                Duration::from_millis(50),
                metrics.clone(),
            ));
        assert_eq!(status(&router, "/fast").await, 200);
        assert_eq!(status(&router, "/fast").await, 200);
        assert_eq!(status(&router, "/slow/1").await, 503);
        assert_eq!(status(&router, "/nowhere").await, 404);
        let text = metrics.encode();
        for expected in [
            r#"tokenmint_http_request_duration_seconds_count{route="/fast",status="200"} 2"#,
            r#"tokenmint_http_request_duration_seconds_count{route="/slow/{n}",status="503"} 1"#,
            r#"tokenmint_http_request_duration_seconds_count{route="unmatched",status="404"} 1"#,
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
    }
}
