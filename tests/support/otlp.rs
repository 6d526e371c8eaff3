//! An OTLP/HTTP receiver on loopback (`POST /v1/traces`, protobuf), decoding every export
//! with the official `opentelemetry-proto` messages: what a collector would see.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

/// `span.kind` of a server span.
pub const SERVER_SPAN: i32 = SpanKind::Server as i32;

/// One span as the receiver decoded it: its name, kind, attributes and service.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub name: String,
    pub kind: i32,
    pub service: String,
    /// The resource's attributes (`service.name` among them).
    pub resource: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, String>,
    pub error: bool,
}

fn text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// An OTLP/HTTP receiver (`POST /v1/traces`, protobuf) on a free loopback port.
pub struct Receiver {
    pub url: String,
    pub spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    pub posts: Arc<Mutex<Vec<String>>>,
}

pub async fn start_receiver() -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let spans = Arc::new(Mutex::new(Vec::new()));
    let posts = Arc::new(Mutex::new(Vec::new()));
    let (spans_in, posts_in) = (spans.clone(), posts.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (spans, posts) = (spans_in.clone(), posts_in.clone());
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (spans, posts) = (spans.clone(), posts.clone());
                    async move {
                        let what = format!(
                            "{} {} {:?}",
                            req.method(),
                            req.uri().path(),
                            req.headers().get("content-type")
                        );
                        posts.lock().unwrap().push(what);
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let export =
                            ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                        for resource in export.resource_spans {
                            let resource_attributes: BTreeMap<String, String> = resource
                                .resource
                                .iter()
                                .flat_map(|r| &r.attributes)
                                .map(|kv| (kv.key.clone(), text(kv)))
                                .collect();
                            let service = resource_attributes
                                .get("service.name")
                                .cloned()
                                .unwrap_or_default();
                            for scope in resource.scope_spans {
                                for span in scope.spans {
                                    spans.lock().unwrap().push(ReceivedSpan {
                                        name: span.name.clone(),
                                        kind: span.kind,
                                        service: service.clone(),
                                        resource: resource_attributes.clone(),
                                        attributes: span
                                            .attributes
                                            .iter()
                                            .map(|kv| (kv.key.clone(), text(kv)))
                                            .collect(),
                                        error: span.status.is_some_and(|s| s.code == 2),
                                    });
                                }
                            }
                        }
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                    }
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    Receiver { url, spans, posts }
}
