//! Logs on stderr and, when the standard OpenTelemetry variables ask for it, a span per request
//! over OTLP/HTTP: the variables Spin reads (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`
//! turn it off; `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*` as the SDK reads
//! them), so one setting serves `spin up`, pods and the runner. Unset, no exporter exists and a
//! request's span is disabled at its call site: it costs a cached interest check.

use std::time::Duration;

use anyhow::{Context, Result};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{filter_fn, FilterExt};
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// The target of request spans: only the OTLP layer takes them, so log lines keep their form
/// whether or not spans are exported.
pub const SPAN_TARGET: &str = "app_wasm_host::otlp";

/// A request span's name by OpenTelemetry's HTTP conventions: `GET /` with a route, just `GET`
/// without one (so a client cannot mint span names). Formatted only when the span is on.
pub struct SpanName<'a>(pub &'a hyper::Method, pub Option<&'a str>);

impl std::fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(route) => write!(f, "{} {route}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// How long the exit waits for the last spans to reach the collector.
const FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// Where spans go, if anywhere; flushes them on drop.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// The OTLP endpoint the environment names, unless it turns tracing off.
fn otlp_endpoint(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let off = set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    if off {
        return None;
    }
    set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

/// Log lines on stderr (`RUST_LOG` overrides `default_level`) and, if the environment names
/// an OTLP endpoint, the exporter of request spans.
pub fn init(default_level: &str) -> Result<Telemetry> {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let not_a_request_span = filter_fn(|meta| meta.target() != SPAN_TARGET);
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(env.and(not_a_request_span));
    let Some(endpoint) = otlp_endpoint(|name| std::env::var(name).ok()) else {
        tracing_subscriber::registry().with(logs).init();
        return Ok(Telemetry { provider: None });
    };
    if std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").is_ok_and(|p| p.starts_with("grpc")) {
        eprintln!("OTEL_EXPORTER_OTLP_PROTOCOL=grpc: this runner speaks http/protobuf only");
    }
    // The SDK reads the endpoint itself (adding /v1/traces to the generic one, as the spec
    // says); building fails early on one it cannot use.
    let exporter = SpanExporter::builder()
        .with_http()
        .with_timeout(FLUSH_LIMIT)
        .build()
        .with_context(|| format!("OTLP exporter for {endpoint}"))?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("app-wasm");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("app-wasm-host"))
        // The span says what the request was; where in the runner it was made is noise.
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_target(false)
        .with_filter(filter_fn(|meta| meta.target() == SPAN_TARGET));
    tracing_subscriber::registry().with(logs).with(spans).init();
    eprintln!("OpenTelemetry: a span per request to {endpoint} (OTLP/HTTP)");
    Ok(Telemetry {
        provider: Some(provider),
    })
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown_with_timeout(FLUSH_LIMIT) {
                eprintln!("OpenTelemetry: the last spans may be lost: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(vars: &[(&str, &str)]) -> Option<String> {
        otlp_endpoint(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn the_endpoint_comes_from_the_standard_variables_and_the_off_switches_win() {
        assert_eq!(endpoint(&[]), None);
        assert_eq!(endpoint(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]), None);
        let generic = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        assert_eq!(
            endpoint(&[generic]).as_deref(),
            Some("http://collector:4318")
        );
        let traces = (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://t:4318/v1/traces",
        );
        assert_eq!(
            endpoint(&[generic, traces]).as_deref(),
            Some("http://t:4318/v1/traces")
        );
        assert_eq!(endpoint(&[generic, ("OTEL_SDK_DISABLED", "TRUE")]), None);
        assert_eq!(endpoint(&[generic, ("OTEL_TRACES_EXPORTER", "none")]), None);
        assert!(endpoint(&[generic, ("OTEL_SDK_DISABLED", "false")]).is_some());
    }
}
