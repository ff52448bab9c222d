//! What a process tells its operators: logs (text for a terminal, JSON lines for a
//! collector), traces over OTLP that follow one report across every hop and process
//! ([`trace`]), and the stage metrics.
//!
//! `RUST_LOG` filters the logs (default: info for dijkwacht, warn elsewhere); the traces
//! take dijkwacht's own spans whatever the log filter says.

pub mod events;
pub mod metrics;
pub mod trace;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::time::Duration;
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

/// How long exporting what is buffered may hold up the end of the process.
const EXPORT_AT_EXIT: Duration = Duration::from_secs(3);
/// How often the metrics go to the collector.
const METRICS_EVERY: Duration = Duration::from_secs(15);

/// The installed telemetry; [`Telemetry::shutdown`] exports what is still buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(tracer) = self.tracer {
            if let Err(error) = tracer.shutdown_with_timeout(EXPORT_AT_EXIT) {
                eprintln!("exporting the last traces failed: {error}");
            }
        }
        if let Some(meter) = self.meter {
            if let Err(error) = meter.shutdown_with_timeout(EXPORT_AT_EXIT) {
                eprintln!("exporting the last metrics failed: {error}");
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("telemetry: {0}")]
pub struct TelemetryError(String);

/// Installs logging and, with an OTLP endpoint, the export of traces and metrics, for the
/// whole process.
pub fn init(settings: &TelemetrySettings) -> Result<Telemetry, TelemetryError> {
    let Some(endpoint) = &settings.otlp_endpoint else {
        install(settings.log_format, None);
        return Ok(Telemetry::default());
    };
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    let endpoint = endpoint.trim_end_matches('/');
    let refused = |error: opentelemetry_otlp::ExporterBuildError| {
        TelemetryError(format!("the OTLP exporter for {endpoint}: {error}"))
    };
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .build()
        .map_err(refused)?;
    let tracer = SdkTracerProvider::builder()
        .with_batch_exporter(spans)
        .with_resource(resource.clone())
        .build();
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_endpoint(format!("{endpoint}/v1/metrics"))
        .build()
        .map_err(refused)?;
    let meter = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics).with_interval(METRICS_EVERY).build())
        .with_resource(resource)
        .build();
    metrics::registry().export_to(meter.meter("dijkwacht"));
    install(settings.log_format, Some(tracer.clone()));
    Ok(Telemetry {
        tracer: Some(tracer),
        meter: Some(meter),
    })
}

/// Installs logging and sends spans to `tracer` (a test's in-memory exporter).
pub fn init_with_tracer(log_format: LogFormat, tracer: SdkTracerProvider) -> Telemetry {
    install(log_format, Some(tracer.clone()));
    Telemetry {
        tracer: Some(tracer),
        meter: None,
    }
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
