//! What a process tells its operators: logs (text for a terminal, JSON lines for a
//! collector), traces over OTLP that follow one report across every hop and process
//! ([`trace`]), and the stage metrics.
//!
//! `RUST_LOG` filters the logs (default: info for dijkwacht, warn elsewhere); the traces
//! take dijkwacht's own spans whatever the log filter says.

pub mod trace;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

pub use trace::TraceParent;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line, with the spans (stage, case id, trace id) it happened in.
    Json,
}

#[derive(Debug, Clone, Default)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    /// The OTLP/HTTP collector (`http://collector:4318`); no traces are exported without it.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the traces: which role of dijkwacht this process plays.
    pub service_name: String,
}

/// The installed telemetry; [`Telemetry::shutdown`] exports what is still buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(tracer) = self.tracer {
            if let Err(error) = tracer.shutdown_with_timeout(std::time::Duration::from_secs(3)) {
                eprintln!("exporting the last traces failed: {error}");
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("telemetry: {0}")]
pub struct TelemetryError(String);

/// Installs logging and, with an OTLP endpoint, trace export, for the whole process.
pub fn init(settings: &TelemetrySettings) -> Result<Telemetry, TelemetryError> {
    let tracer = match &settings.otlp_endpoint {
        Some(endpoint) => Some(otlp_tracer(endpoint, &settings.service_name)?),
        None => None,
    };
    install(settings.log_format, tracer.clone());
    Ok(Telemetry { tracer })
}

/// Installs logging and sends spans to `tracer` (a test's in-memory exporter).
pub fn init_with_tracer(log_format: LogFormat, tracer: SdkTracerProvider) -> Telemetry {
    install(log_format, Some(tracer.clone()));
    Telemetry { tracer: Some(tracer) }
}

fn otlp_tracer(endpoint: &str, service_name: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()
        .map_err(|error| TelemetryError(format!("the OTLP exporter for {endpoint}: {error}")))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service_name.to_owned()).build())
        .build())
}

/// A second call (tests start several systems in one process) keeps the first installation.
fn install(log_format: LogFormat, tracer: Option<SdkTracerProvider>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,dijkwacht=info"));
    let logs = match log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_current_span(false)
            .with_span_list(true)
            .boxed(),
    };
    let traces = tracer.map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("dijkwacht"))
            .with_filter(dijkwacht_spans())
    });
    let _ = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .try_init();
}

/// The spans a trace is made of: dijkwacht's own, whatever the log filter says.
fn dijkwacht_spans() -> Targets {
    Targets::new()
        .with_target("dijkwacht", LevelFilter::INFO)
        .with_default(LevelFilter::OFF)
}
