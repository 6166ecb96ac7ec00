//! W3C trace context end to end: client → gateway → provider, with both
//! processes exporting spans over OTLP to a receiver built from the official
//! OpenTelemetry protos.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use serde_json::json;

use crate::{common::*, failures::raw_2026};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// (service, span name, trace id, span id, parent span id)
type SpanRecord = (String, String, Vec<u8>, Vec<u8>, Vec<u8>);

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<SpanRecord>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push((
                        service.clone(),
                        s.name,
                        s.trace_id,
                        s.span_id,
                        s.parent_span_id,
                    ));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test]
async fn traceparent_reaches_the_provider_without_export() {
    let provider = spawn_kit(Arc::new(KitProbe::default())).await;
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], "")).await;
    let (_, _, body) = raw_2026(
        &gw.url(),
        "tools/call",
        Some("kit.whoami.v1"),
        json!({"name": "kit.whoami.v1", "arguments": {"message": "x"}}),
        &[("traceparent", TRACEPARENT)],
    )
    .await;
    assert_eq!(
        body["result"]["structuredContent"]["traceparent"], TRACEPARENT,
        "{body}"
    );
    // A malformed one is not forwarded.
    let (_, _, body) = raw_2026(
        &gw.url(),
        "tools/call",
        Some("kit.whoami.v1"),
        json!({"name": "kit.whoami.v1", "arguments": {"message": "x"}}),
        &[("traceparent", "00-zz-yy-01")],
    )
    .await;
    assert!(
        body["result"]["structuredContent"]["traceparent"].is_null(),
        "{body}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn gateway_and_provider_spans_form_one_trace() {
    init();
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    let r = receiver.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(r))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("RUST_LOG", "warn"),
    ];
    let (hello_port, gw_port) = (free_port().await, free_port().await);
    let hello_addr = format!("127.0.0.1:{hello_port}");
    let mut hello = tokio::process::Command::new(crate::common::hello_rs_bin())
        .args(["--listen", &hello_addr])
        .envs(env)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let cfg = temp_config(&format!(
        "listen: 127.0.0.1:{gw_port}\nproviders:\n  - name: hello-rs\n    endpoint: http://{hello_addr}\n"
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut gw = tokio::process::Command::new(gateway_bin())
        .arg("--config")
        .arg(cfg.path())
        .envs(env)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{gw_port}/mcp");
    let ready = eventually(Duration::from_secs(10), || async {
        let r = reqwest::get(format!("http://127.0.0.1:{gw_port}/ready"))
            .await
            .ok()?;
        let v: serde_json::Value = r.json().await.ok()?;
        (v["providers"][0]["state"] == "ready").then_some(())
    })
    .await;
    assert!(ready.is_some(), "gateway not ready");
    let (status, _, body) = raw_2026(
        &url,
        "tools/call",
        Some("hello-rs.echo.v1"),
        json!({"name": "hello-rs.echo.v1", "arguments": {"message": "traced"}}),
        &[("traceparent", TRACEPARENT)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Graceful stops flush what is still buffered.
    for pid in [gw.id().unwrap(), hello.id().unwrap()] {
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
    }
    let _ = tokio::time::timeout(Duration::from_secs(15), gw.wait()).await;
    let _ = tokio::time::timeout(Duration::from_secs(15), hello.wait()).await;

    let spans = receiver.0.lock().unwrap().clone();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let in_trace: Vec<_> = spans.iter().filter(|s| hex(&s.2) == TRACE_ID).collect();
    let find = |service: &str, name: &str| {
        in_trace
            .iter()
            .find(|s| s.0.contains(service) && s.1.starts_with(name))
            .unwrap_or_else(|| panic!("no {service} span {name:?} in {in_trace:#?}"))
    };
    let server = find("mcp-gateway", "tools/call hello-rs.echo.v1");
    assert_eq!(
        hex(&server.4),
        "00f067aa0ba902b7",
        "the request span continues the client's trace"
    );
    let client = find("mcp-gateway", "provider hello-rs");
    assert_eq!(
        client.4, server.3,
        "the provider call is a child of the request span"
    );
    let provider = find("hello-rs", "invoke echo.v1");
    assert_eq!(
        provider.4, client.3,
        "the provider continues the gateway's trace"
    );
}
