//! Cancellation, deadlines, health, graceful shutdown and hard abort.

mod common;

use std::time::Duration;

use common::*;
use mcp_provider_sdk::proto::ListCapabilitiesRequest;
use serde_json::json;
use tokio::time::timeout;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const LIMIT: Duration = Duration::from_secs(10);

async fn next_event(events: &mut Events) -> String {
    timeout(LIMIT, events.recv())
        .await
        .expect("event in time")
        .expect("event")
}

#[tokio::test]
async fn handler_sees_cancellation_when_client_drops_the_stream() {
    let (_p, mut client, mut events) = spawn().await;
    let stream = client
        .invoke(invoke_req("wait.v1", json!({})))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_event(&mut events).await, "started");
    drop(stream);
    assert_eq!(next_event(&mut events).await, "cancelled:true");
}

#[tokio::test]
async fn deadline_cancels_the_handler_and_fails_the_call() {
    let (_p, mut client, mut events) = spawn().await;
    let mut req = tonic::Request::new(invoke_req("wait.v1", json!({})));
    req.set_timeout(Duration::from_millis(200));
    let stream = client.invoke(req).await.unwrap().into_inner();
    let (_, result) = timeout(LIMIT, collect(stream)).await.unwrap();
    assert_eq!(result.unwrap_err().code(), Code::DeadlineExceeded);
    assert_eq!(next_event(&mut events).await, "started");
    assert_eq!(next_event(&mut events).await, "cancelled:true");
}

#[tokio::test]
async fn health_reports_serving() {
    let (p, _client, _) = spawn().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", p.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", mcp_gateway_proto::SERVICE_NAME] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    let err = health
        .check(HealthCheckRequest {
            service: "other".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn abort_fails_in_flight_calls() {
    let (p, mut client, mut events) = spawn().await;
    let addr = p.addr();
    let mut stream = client
        .invoke(invoke_req("wait.v1", json!({})))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_event(&mut events).await, "started");

    p.abort();

    let err = timeout(LIMIT, stream.message())
        .await
        .expect("the in-flight call fails promptly")
        .expect_err("the in-flight call fails");
    assert!(
        matches!(
            err.code(),
            Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
        ),
        "{err:?}"
    );
    // The handler is told, and nothing is listening any more.
    assert_eq!(next_event(&mut events).await, "cancelled:true");
    let refused = timeout(LIMIT, tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    assert!(refused.is_err(), "listener closed");
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_calls() {
    let (p, mut client, _) = spawn().await;
    let mut stream = client
        .invoke(invoke_req("sleep.v1", json!({})))
        .await
        .unwrap()
        .into_inner();
    // Wait for the first progress so the call is definitely in flight.
    assert!(stream.message().await.unwrap().is_some());

    let shutdown = tokio::spawn(p.shutdown());
    let (_, result) = timeout(LIMIT, collect(stream)).await.unwrap();
    assert_eq!(text_of(&result.unwrap()), "rested");
    timeout(LIMIT, shutdown).await.unwrap().unwrap();
    assert!(
        client
            .list_capabilities(ListCapabilitiesRequest::default())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn serve_with_shutdown_stops_on_signal() {
    let (builder, _) = provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(builder.serve_with_shutdown(listener, async {
        let _ = rx.await;
    }));
    let mut client =
        mcp_provider_sdk::proto::provider_client::ProviderClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
    assert!(
        call(&mut client, "echo.v1", json!({"message": "x"}))
            .await
            .is_ok()
    );
    tx.send(()).unwrap();
    timeout(LIMIT, server).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn a_timed_out_shutdown_aborts() {
    let (p, mut client, mut events) = spawn().await;
    let mut stream = client
        .invoke(invoke_req("wait.v1", json!({})))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_event(&mut events).await, "started");
    // wait.v1 runs for 30 s, so draining cannot finish in time.
    assert!(
        timeout(Duration::from_millis(200), p.shutdown())
            .await
            .is_err()
    );
    let err = timeout(LIMIT, stream.message()).await.unwrap().unwrap_err();
    assert_ne!(err.code(), Code::Ok);
}
