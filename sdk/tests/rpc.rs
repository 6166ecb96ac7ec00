//! The Provider RPCs, over real TCP with the generated client.

mod common;

use std::collections::HashMap;

use common::*;
use mcp_provider_sdk::proto::{
    GetPromptRequest, ListCapabilitiesRequest, ReadResourceRequest, Role, StreamRequest,
    content::Kind, resource_contents::Body,
};
use mcp_provider_sdk::{Caller, proto::InvokeRequest};
use serde_json::json;
use tonic::Code;

#[tokio::test]
async fn list_capabilities_and_revision() {
    let (_p, mut client, _) = spawn().await;
    let caps = client
        .list_capabilities(ListCapabilitiesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(!caps.unchanged);
    assert!(!caps.revision.is_empty());
    assert_eq!(caps.provider_version, "test 1.2.3");
    let names: Vec<_> = caps.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names[..2],
        ["echo.v1", "fail.v1"],
        "registration order is kept"
    );

    let echo = &caps.tools[0];
    let input: serde_json::Value = serde_json::from_slice(&echo.input_schema).unwrap();
    assert_eq!(
        input["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(input["type"], "object");
    assert_eq!(input["required"], json!(["message"]));
    let output: serde_json::Value = serde_json::from_slice(&echo.output_schema).unwrap();
    assert_eq!(output["properties"]["message"]["type"], "string");
    let ann = echo.annotations.unwrap();
    assert_eq!(
        (
            ann.read_only_hint,
            ann.idempotent_hint,
            ann.destructive_hint
        ),
        (Some(true), Some(true), None)
    );
    assert!(
        caps.tools[1].output_schema.is_empty(),
        "no output schema = empty bytes"
    );

    assert_eq!(caps.resources.len(), 2);
    assert_eq!(caps.resources[0].mime_type, "text/plain");
    assert_eq!(caps.resource_templates[0].uri_template, "test://items/{id}");
    let prompt = &caps.prompts[0];
    assert_eq!(
        (
            prompt.arguments[0].name.as_str(),
            prompt.arguments[0].required
        ),
        ("name", true)
    );

    // Same revision again: unchanged, no lists.
    let again = client
        .list_capabilities(ListCapabilitiesRequest {
            known_revision: caps.revision.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(again.unchanged);
    assert_eq!(again.revision, caps.revision);
    assert!(again.tools.is_empty() && again.resources.is_empty() && again.prompts.is_empty());

    // A stale revision gets the full lists.
    let stale = client
        .list_capabilities(ListCapabilitiesRequest {
            known_revision: "stale".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!stale.unchanged);
    assert_eq!(stale, caps);
}

#[tokio::test]
async fn typed_invoke() {
    let (_p, mut client, _) = spawn().await;
    let result = call(&mut client, "echo.v1", json!({"message": "hi"}))
        .await
        .unwrap();
    assert!(!result.is_error);
    assert_eq!(structured_of(&result), json!({"message": "hi"}));
    assert_eq!(
        text_of(&result),
        r#"{"message":"hi"}"#,
        "structured output mirrored as text"
    );
}

#[tokio::test]
async fn bad_arguments_are_invalid_argument() {
    let (_p, mut client, _) = spawn().await;
    let err = call(&mut client, "echo.v1", json!({"message": 42}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("invalid type"),
        "serde's message: {}",
        err.message()
    );

    // Empty bytes mean {}: a typed tool then misses its field.
    let req = InvokeRequest {
        tool: "echo.v1".into(),
        ..Default::default()
    };
    let err = client.invoke(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("missing field `message`"),
        "{}",
        err.message()
    );

    let req = InvokeRequest {
        tool: "echo.v1".into(),
        arguments: b"{not json".to_vec(),
        ..Default::default()
    };
    assert_eq!(
        client.invoke(req).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let err = call(&mut client, "nope.v1", json!({})).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "unknown tool 'nope.v1'");
}

#[tokio::test]
async fn tool_error_is_an_error_result_and_status_is_a_status() {
    let (_p, mut client, _) = spawn().await;
    let result = call(&mut client, "fail.v1", json!({})).await.unwrap();
    assert!(result.is_error);
    assert_eq!(text_of(&result), "boom");

    let err = call(&mut client, "denied.v1", json!({})).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn progress_arrives_before_the_result() {
    let (_p, mut client, _) = spawn().await;
    let stream = client
        .invoke(invoke_req("progress.v1", json!({})))
        .await
        .unwrap()
        .into_inner();
    let (progress, result) = collect(stream).await;
    let steps: Vec<_> = progress
        .iter()
        .map(|p| (p.progress, p.total, p.message.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            (1.0, Some(3.0), "step 1"),
            (2.0, Some(3.0), "step 2"),
            (3.0, Some(3.0), "step 3")
        ],
        "non-increasing progress is dropped"
    );
    assert_eq!(text_of(&result.unwrap()), "done");
}

#[tokio::test]
async fn panicking_handler_is_internal_and_server_survives() {
    let (_p, mut client, _) = spawn().await;
    let err = call(&mut client, "panic.v1", json!({})).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(err.message(), "tool 'panic.v1' panicked");
    // Same connection still works.
    assert!(
        call(&mut client, "echo.v1", json!({"message": "still here"}))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn caller_correlation_id_and_meta_reach_the_handler() {
    let (_p, mut client, _) = spawn().await;
    let mut req = tonic::Request::new(InvokeRequest {
        tool: "whoami.v1".into(),
        arguments: br#"{"n": 12345678901234567890}"#.to_vec(),
        caller: Some(Caller {
            principal: "alice".into(),
            roles: vec!["admin".into()],
            ..Default::default()
        }),
        meta: br#"{"trace": "t1"}"#.to_vec(),
        ..Default::default()
    });
    req.metadata_mut()
        .insert("x-correlation-id", "corr-42".parse().unwrap());
    req.set_timeout(std::time::Duration::from_secs(30));
    let result = collect(client.invoke(req).await.unwrap().into_inner())
        .await
        .1
        .unwrap();
    let s = structured_of(&result);
    assert_eq!(s["principal"], "alice");
    assert_eq!(s["roles"], json!(["admin"]));
    assert_eq!(s["correlation_id"], "corr-42");
    assert_eq!(s["meta"], json!({"trace": "t1"}));
    assert_eq!(s["has_deadline"], true);
    assert_eq!(
        s["args"]["n"].to_string(),
        "12345678901234567890",
        "u64 survives"
    );

    let s = structured_of(&call(&mut client, "whoami.v1", json!({})).await.unwrap());
    assert_eq!(s["correlation_id"], "");
    assert_eq!(s["has_deadline"], false);
}

#[tokio::test]
async fn read_resources_and_templates() {
    let (_p, mut client, _) = spawn().await;
    let read = |uri: &str| ReadResourceRequest {
        uri: uri.into(),
        ..Default::default()
    };

    let r = client
        .read_resource(read("test://static"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.contents.len(), 1);
    assert_eq!(r.contents[0].uri, "test://static");
    assert_eq!(r.contents[0].mime_type, "text/plain");
    assert_eq!(
        r.contents[0].body,
        Some(Body::Text("static at test://static".into()))
    );

    let r = client
        .read_resource(read("test://items/42"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.contents[0].mime_type, "text/markdown");
    assert_eq!(
        r.contents[0].body,
        Some(Body::Text("item 42 (test://items/42)".into()))
    );

    // A static resource wins over a matching template.
    let r = client
        .read_resource(read("test://items/special"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.contents[0].body, Some(Body::Blob(vec![1, 2, 3])));

    // {id} never spans a '/'.
    for uri in ["test://items/a/b", "test://items/", "test://nope"] {
        let err = client.read_resource(read(uri)).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{uri}");
    }
}

#[tokio::test]
async fn prompts() {
    let (_p, mut client, mut events) = spawn().await;
    let get = |args: &[(&str, &str)]| GetPromptRequest {
        name: "greet".into(),
        arguments: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        ..Default::default()
    };

    let err = client
        .get_prompt(get(&[("mood", "happy")]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("'name'"), "{}", err.message());
    assert!(
        events.try_recv().is_err(),
        "handler must not run without required args"
    );

    let reply = client
        .get_prompt(get(&[("name", "Alice")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.description, "a greeting");
    assert_eq!(reply.messages.len(), 2);
    assert_eq!(reply.messages[0].role, Role::User as i32);
    assert_eq!(reply.messages[1].role, Role::Assistant as i32);
    match &reply.messages[0].content.as_ref().unwrap().kind {
        Some(Kind::Text(t)) => assert_eq!(t.text, "Hello, Alice!"),
        other => panic!("{other:?}"),
    }

    let err = client
        .get_prompt(GetPromptRequest {
            name: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn stream_broadcasts_published_events_to_every_open_stream() {
    let (builder, _) = provider();
    let publisher = builder.events();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = builder.spawn(listener).await.unwrap();
    let mut a = connect(&running).await;
    let mut b = connect(&running).await;
    let mut sa = a
        .stream(StreamRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut sb = b
        .stream(StreamRequest::default())
        .await
        .unwrap()
        .into_inner();
    let id = publisher
        .event("t.v1")
        .subject("x://1")
        .json(&json!({"n": 1}))
        .publish()
        .await
        .unwrap();
    for s in [&mut sa, &mut sb] {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(2), s.message())
            .await
            .expect("event within 2s")
            .unwrap()
            .unwrap();
        assert_eq!(ev.id, id);
        assert_eq!(ev.r#type, "t.v1");
        assert_eq!(ev.spec_version, "1.0");
        assert!(ev.source.starts_with("/providers/"), "{}", ev.source);
    }
}
