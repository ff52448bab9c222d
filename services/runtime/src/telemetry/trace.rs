//! One report, one trace: the W3C `traceparent` travels in every event's metadata, in every
//! Kafka message's headers and out with every notice, so intake, relay, each stage and the
//! platform's answer join one trace across processes and restarts.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header (HTTP, Kafka, e-mail) and metadata field name of W3C Trace Context.
pub const HEADER: &str = "traceparent";

/// A W3C `traceparent` (`00-{trace id}-{span id}-{flags}`): the work an event or message
/// continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct TraceParent(String);

impl TraceParent {
    /// Reads a header's value; `None` unless it is a well-formed, sampled-or-not traceparent.
    pub fn parse(value: &str) -> Option<Self> {
        let parent = Self(value.trim().to_owned());
        parent.context().span().span_context().is_valid().then_some(parent)
    }

    /// The traceparent of `span`, if the span is being traced.
    pub fn of(span: &tracing::Span) -> Option<Self> {
        let context = span.context();
        if !context.span().span_context().is_valid() {
            return None;
        }
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
        carrier.remove(HEADER).map(Self)
    }

    /// The traceparent of the span the caller runs in.
    pub fn current() -> Option<Self> {
        Self::of(&tracing::Span::current())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 32 hex digits that name the trace, for logs.
    pub fn trace_id(&self) -> &str {
        self.0.get(3..35).unwrap_or_default()
    }

    fn context(&self) -> opentelemetry::Context {
        let carrier = HashMap::from([(HEADER.to_owned(), self.0.clone())]);
        TraceContextPropagator::new().extract(&carrier)
    }
}

/// Makes `span` continue `parent`'s trace, and returns what continues it from here: the
/// span's own traceparent, or `parent` itself when this process exports no traces (so a
/// trace survives a hop through it).
pub fn continue_trace(span: &tracing::Span, parent: Option<&TraceParent>) -> Option<TraceParent> {
    if let Some(parent) = parent {
        // Fails only when the span is disabled, and then there is nothing to link.
        let _ = span.set_parent(parent.context());
    }
    let continued = TraceParent::of(span).or_else(|| parent.cloned());
    if let Some(continued) = &continued {
        span.record("trace_id", continued.trace_id());
    }
    continued
}

/// Links `span` to other traces it also serves (the cases of one grouped message).
pub fn link(span: &tracing::Span, others: &[&TraceParent]) {
    for other in others {
        span.add_link(other.context().span().span_context().clone());
    }
}
