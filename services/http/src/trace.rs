//! Every request is a span, named by its route; a caller's `traceparent` (a partner that
//! traces its own submissions) makes it part of the caller's trace. What the request
//! records continues that trace through every stage ([`dijkwacht_runtime::telemetry::trace`]).

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use dijkwacht_runtime::telemetry::trace::{self, TraceParent};
use tracing::Instrument;

/// `axum::middleware::from_fn(dijkwacht_http::trace::requests)`, on a router with its routes.
pub async fn requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    let parent = request
        .headers()
        .get(trace::HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(TraceParent::parse);
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    trace::continue_trace(&span, parent.as_ref());
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}
