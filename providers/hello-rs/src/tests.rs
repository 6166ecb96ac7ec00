//! hello-rs end to end: spawn it on a free port and call it over gRPC.

use mcp_provider_sdk::RunningProvider;
use mcp_provider_sdk::proto::provider_client::ProviderClient;
use mcp_provider_sdk::proto::{
    GetPromptRequest, InvokeRequest, ListCapabilitiesRequest, ReadResourceRequest, ToolResult,
    content::Kind, invoke_response::Event, resource_contents::Body,
};
use serde_json::{Value, json};

async fn start() -> RunningProvider {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    super::provider().spawn(listener).await.unwrap()
}

async fn call(tool: &str, args: Value) -> ToolResult {
    let running = start().await;
    let mut client = ProviderClient::connect(format!("http://{}", running.addr()))
        .await
        .unwrap();
    let req = InvokeRequest {
        tool: tool.into(),
        arguments: serde_json::to_vec(&args).unwrap(),
        ..Default::default()
    };
    let mut stream = client.invoke(req).await.unwrap().into_inner();
    while let Some(msg) = stream.message().await.unwrap() {
        if let Some(Event::Result(r)) = msg.event {
            return r;
        }
    }
    panic!("stream ended without a result");
}

fn text(content: &[mcp_provider_sdk::Content]) -> &str {
    match &content[0].kind {
        Some(Kind::Text(t)) => &t.text,
        other => panic!("not text: {other:?}"),
    }
}

fn structured(r: &ToolResult) -> Value {
    serde_json::from_slice(&r.structured_content).unwrap()
}

#[tokio::test]
async fn echo_returns_the_message() {
    let r = call("echo.v1", json!({"message": "héllo"})).await;
    assert!(!r.is_error);
    assert_eq!(text(&r.content), "héllo");
    assert_eq!(structured(&r), json!({"message": "héllo"}));
}

#[tokio::test]
async fn sum_keeps_integers_exact() {
    let r = call("sum.v1", json!({"numbers": [1, 2, 3]})).await;
    assert_eq!(text(&r.content), "6");
    assert_eq!(structured(&r).to_string(), r#"{"sum":6}"#);

    let r = call("sum.v1", json!({"numbers": [0.5, 2]})).await;
    assert_eq!(structured(&r), json!({"sum": 2.5}));

    let r = call("sum.v1", json!({"numbers": [1e308, 1e308]})).await;
    assert!(r.is_error);
}

#[tokio::test]
async fn capabilities_use_the_schema_files() {
    let running = start().await;
    let mut client = ProviderClient::connect(format!("http://{}", running.addr()))
        .await
        .unwrap();
    let caps = client
        .list_capabilities(ListCapabilitiesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        caps.provider_version,
        format!("hello-rs {}", env!("CARGO_PKG_VERSION"))
    );
    for (tool, file) in [("echo.v1", "echo"), ("sum.v1", "sum")] {
        let t = caps.tools.iter().find(|t| t.name == tool).unwrap();
        let input: Value = serde_json::from_slice(&t.input_schema).unwrap();
        let output: Value = serde_json::from_slice(&t.output_schema).unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas");
        let on_disk =
            |kind| mcp_provider_sdk::schema_from_file(format!("{dir}/{file}.{kind}.json")).unwrap();
        assert_eq!(input, on_disk("input"));
        assert_eq!(output, on_disk("output"));
        let a = t.annotations.unwrap();
        assert_eq!(
            (a.read_only_hint, a.idempotent_hint),
            (Some(true), Some(true))
        );
    }
}

#[tokio::test]
async fn greeting_and_plan() {
    let running = start().await;
    let mut client = ProviderClient::connect(format!("http://{}", running.addr()))
        .await
        .unwrap();
    let r = client
        .read_resource(ReadResourceRequest {
            uri: "hello://greeting".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.contents[0].mime_type, "text/plain");
    assert_eq!(r.contents[0].body, Some(Body::Text("Hello, MCP".into())));

    let p = client
        .get_prompt(GetPromptRequest {
            name: "hello-plan".into(),
            arguments: [("name".to_string(), "Alice".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let msg = p.messages[0].content.as_ref().unwrap();
    assert!(
        text(std::slice::from_ref(msg)).starts_with("Hello, Alice! Here is your plan for today:")
    );

    let err = client
        .get_prompt(GetPromptRequest {
            name: "hello-plan".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("'name'"), "{}", err.message());
}

#[tokio::test]
async fn bad_arguments_name_the_problem() {
    let running = start().await;
    let mut client = ProviderClient::connect(format!("http://{}", running.addr()))
        .await
        .unwrap();
    let req = InvokeRequest {
        tool: "sum.v1".into(),
        arguments: br#"{"numbers":"x"}"#.to_vec(),
        ..Default::default()
    };
    let err = client.invoke(req).await.unwrap_err();
    assert_eq!(
        err.message(),
        r#"invalid arguments: invalid type: string "x", expected a sequence"#
    );
}

#[tokio::test]
async fn echo_and_touch_publish_events_on_the_stream() {
    use mcp_provider_sdk::proto::StreamRequest;
    let running = start().await;
    let mut client = ProviderClient::connect(format!("http://{}", running.addr()))
        .await
        .unwrap();
    let mut events = client
        .stream(StreamRequest::default())
        .await
        .unwrap()
        .into_inner();
    for (tool, args) in [
        ("echo.v1", json!({"message": "evt"})),
        ("touch-greeting.v1", json!({})),
    ] {
        let req = InvokeRequest {
            tool: tool.into(),
            arguments: serde_json::to_vec(&args).unwrap(),
            ..Default::default()
        };
        let mut s = client.invoke(req).await.unwrap().into_inner();
        while s.message().await.unwrap().is_some() {}
    }
    let mut seen = Vec::new();
    for _ in 0..2 {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(2), events.message())
            .await
            .expect("event within 2s")
            .unwrap()
            .unwrap();
        assert_eq!(ev.source, "/providers/hello-rs");
        assert_eq!(ev.spec_version, "1.0");
        seen.push(ev);
    }
    seen.sort_by(|a, b| a.r#type.cmp(&b.r#type));
    assert_eq!(seen[0].r#type, super::ECHOED);
    assert!(
        matches!(&seen[0].data, Some(mcp_provider_sdk::cloudevents::cloud_event::Data::TextData(t)) if t.contains("evt"))
    );
    assert_eq!(seen[1].r#type, mcp_provider_sdk::events::RESOURCE_UPDATED);
    let subject = &seen[1].attributes["subject"];
    assert!(format!("{subject:?}").contains(super::GREETING_URI));
}
