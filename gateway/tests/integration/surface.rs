//! The MCP surface: lists, calls, resources, prompts, validation, content,
//! progress and cancellation, in every client mode.

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use base64::Engine;
use rmcp::model::{
    CallToolRequestParams, ContentBlock, GetPromptRequestParams, ReadResourceRequestParams,
    RequestMetaObject, RequestParamsMeta, ResourceContents,
};
use serde_json::json;

use crate::common::*;

async fn kit_gateway() -> (
    Arc<KitProbe>,
    mcp_provider_sdk::RunningProvider,
    TestGateway,
    String,
) {
    let probe = Arc::new(KitProbe::default());
    let provider = spawn_kit(probe.clone()).await;
    let yaml = config_yaml(&[("kit", provider.addr())], "");
    let gw = start_gateway(&yaml).await;
    (probe, provider, gw, yaml)
}

#[tokio::test]
async fn lists_calls_resources_and_prompts_in_every_mode() {
    let (_probe, _provider, gw, yaml) = kit_gateway().await;
    for mode in ALL_MODES {
        let (client, _cfg) = connect(mode, &gw, &yaml, Recorder::default()).await;

        let tools = client.list_all_tools().await.unwrap();
        let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
        assert!(
            names.contains(&"kit.echo.v1".to_string()),
            "{mode:?}: {names:?}"
        );
        let echo = tools.iter().find(|t| t.name == "kit.echo.v1").unwrap();
        assert_eq!(echo.description.as_deref(), Some("Echo"));
        assert!(echo.output_schema.is_some());
        assert_eq!(
            echo.annotations.as_ref().unwrap().read_only_hint,
            Some(true)
        );

        let r = call(&client, "kit.echo.v1", json!({"message": "hi there"}))
            .await
            .unwrap();
        assert_eq!(text_of(&r), "hi there", "{mode:?}");
        assert_eq!(r.structured_content, Some(json!({"message": "hi there"})));
        assert_ne!(r.is_error, Some(true));

        let res = client.list_all_resources().await.unwrap();
        assert!(res.iter().any(|r| r.uri == "kit://readme"), "{mode:?}");
        let templates = client.list_all_resource_templates().await.unwrap();
        assert!(
            templates
                .iter()
                .any(|t| t.uri_template == "kit://items/{id}")
        );

        let read = client
            .read_resource(ReadResourceRequestParams::new("kit://readme"))
            .await
            .unwrap();
        match &read.contents[0] {
            ResourceContents::TextResourceContents { text, uri, .. } => {
                assert_eq!(text, "kit readme");
                assert_eq!(uri, "kit://readme");
            }
            other => panic!("{other:?}"),
        }
        let item = client
            .read_resource(ReadResourceRequestParams::new("kit://items/42"))
            .await
            .unwrap();
        assert!(
            matches!(&item.contents[0], ResourceContents::TextResourceContents { text, .. } if text == "item 42")
        );

        let prompts = client.list_all_prompts().await.unwrap();
        assert!(prompts.iter().any(|p| p.name == "kit.greet"), "{mode:?}");
        for name in ["kit.greet", "greet"] {
            let p = client
                .get_prompt(
                    GetPromptRequestParams::new(name)
                        .with_arguments(args(json!({"name": "Alice"}))),
                )
                .await
                .unwrap();
            let ContentBlock::Text(t) = &p.messages[0].content else {
                panic!()
            };
            assert!(t.text.contains("Alice"), "{mode:?}");
        }
        client.cancel().await.unwrap();
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn schema_violations_name_the_field_and_rule() {
    let (_probe, _provider, gw, yaml) = kit_gateway().await;
    for mode in [Mode::HttpSession, Mode::HttpStateless, Mode::Stdio] {
        let (client, _cfg) = connect(mode, &gw, &yaml, Recorder::default()).await;
        let r = call(&client, "kit.echo.v1", json!({"message": 5}))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(true), "{mode:?}");
        let t = text_of(&r);
        assert!(t.contains("kit.echo.v1"), "{t}");
        assert!(t.contains("/message"), "{t}");
        assert!(t.contains("rule: type"), "{t}");

        let r = call(&client, "kit.echo.v1", json!({})).await.unwrap();
        assert_eq!(r.is_error, Some(true));
        assert!(text_of(&r).contains("rule: required"), "{}", text_of(&r));
        client.cancel().await.unwrap();
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn output_schema_violation_and_unknown_tool_are_errors() {
    let (_probe, _provider, gw, yaml) = kit_gateway().await;
    for mode in [Mode::HttpSession, Mode::HttpStateless, Mode::Stdio] {
        let (client, _cfg) = connect(mode, &gw, &yaml, Recorder::default()).await;
        let e = call(&client, "kit.bad-output.v1", json!({"message": "x"}))
            .await
            .unwrap_err();
        let e = rpc_error(&e);
        assert_eq!(e.code.0, -32603, "{mode:?}");
        assert!(e.message.contains("output schema"), "{}", e.message);
        assert!(e.message.contains("/count"), "{}", e.message);

        let e = rpc_error(&call(&client, "kit.nope.v1", json!({})).await.unwrap_err());
        assert_eq!(e.code.0, -32602);
        assert_eq!(e.message, "unknown tool 'kit.nope.v1'");
        assert!(
            e.data.unwrap()["correlation_id"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        );

        // A tool-level failure is a result the model can read, not an error.
        let r = call(&client, "kit.fail.v1", json!({"message": "x"}))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(true));
        assert!(text_of(&r).contains("failed on purpose"));

        let e = client
            .read_resource(ReadResourceRequestParams::new("nope://x"))
            .await
            .unwrap_err();
        assert!(rpc_error(&e).message.contains("nope://x"));
        client.cancel().await.unwrap();
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn every_content_kind_passes_through_unchanged() {
    let (_probe, _provider, gw, yaml) = kit_gateway().await;
    for mode in [Mode::HttpSession, Mode::HttpStateless] {
        let (client, _cfg) = connect(mode, &gw, &yaml, Recorder::default()).await;
        let r = call(&client, "kit.kinds.v1", json!({"message": "x"}))
            .await
            .unwrap();
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let c = &r.content;
        assert_eq!(c.len(), 6, "{c:?}");
        let ContentBlock::Text(t) = &c[0] else {
            panic!("{:?}", c[0])
        };
        assert_eq!(t.text, "plain text");
        assert_eq!(t.annotations.as_ref().unwrap().priority, Some(0.5));
        let ContentBlock::Image(i) = &c[1] else {
            panic!()
        };
        assert_eq!(
            (i.data.as_str(), i.mime_type.as_str()),
            (b64(&[0x89, b'P', b'N', b'G']).as_str(), "image/png")
        );
        let ContentBlock::Audio(a) = &c[2] else {
            panic!()
        };
        assert_eq!(
            (a.data.as_str(), a.mime_type.as_str()),
            (b64(&[1, 2, 3, 4]).as_str(), "audio/wav")
        );
        let ContentBlock::ResourceLink(l) = &c[3] else {
            panic!()
        };
        assert_eq!(
            (l.uri.as_str(), l.name.as_str()),
            ("kit://items/7", "item 7")
        );
        let ContentBlock::Resource(e) = &c[4] else {
            panic!()
        };
        assert!(
            matches!(&e.resource, ResourceContents::TextResourceContents { text, uri, .. } if text == "embedded words" && uri == "kit://readme")
        );
        let ContentBlock::Resource(e) = &c[5] else {
            panic!()
        };
        assert!(
            matches!(&e.resource, ResourceContents::BlobResourceContents { blob, .. } if *blob == b64(&[0, 255, 1]))
        );
        // Integers beyond 2^53 keep their precision end to end.
        assert_eq!(
            r.structured_content.as_ref().unwrap()["big"].to_string(),
            "9007199254740993"
        );
        client.cancel().await.unwrap();
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn provider_progress_becomes_mcp_progress() {
    let (_probe, _provider, gw, yaml) = kit_gateway().await;
    for mode in [Mode::HttpSession, Mode::HttpStateless, Mode::Stdio] {
        let rec = Recorder::default();
        let (client, _cfg) = connect(mode, &gw, &yaml, rec.clone()).await;
        let mut params = CallToolRequestParams::new("kit.progress.v1")
            .with_arguments(args(json!({"message": "x"})));
        params.set_meta(RequestMetaObject::with_progress_token(
            rmcp::model::ProgressToken(rmcp::model::NumberOrString::String("tok-1".into())),
        ));
        let r = client.call_tool(params).await.unwrap();
        assert_eq!(text_of(&r), "finished");
        let seen = eventually(Duration::from_secs(5), || {
            let rec = rec.clone();
            async move {
                let p = rec.progress.lock().unwrap().clone();
                (p.len() == 3).then_some(p)
            }
        })
        .await
        .unwrap_or_else(|| panic!("{mode:?}: got {:?}", rec.progress.lock().unwrap()));
        assert_eq!(
            seen.iter().map(|p| p.progress).collect::<Vec<_>>(),
            vec![1.0, 2.0, 3.0]
        );
        assert_eq!(seen[2].total, Some(3.0));
        assert_eq!(seen[0].message.as_deref(), Some("step 1"));
        client.cancel().await.unwrap();
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn client_cancellation_cancels_the_provider_call() {
    for mode in [Mode::HttpSession, Mode::HttpStateless] {
        let (probe, _provider, gw, yaml) = kit_gateway().await;
        let (client, _cfg) = connect(mode, &gw, &yaml, Recorder::default()).await;
        let started = probe.slow_started.notified();
        let cancelled = probe.cancelled_notify.notified();
        let params =
            CallToolRequestParams::new("kit.slow.v1").with_arguments(args(json!({"ms": 60000})));
        let handle = client
            .send_cancellable_request(
                rmcp::model::ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(
                    params,
                )),
                rmcp::service::PeerRequestOptions::no_options(),
            )
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), started)
            .await
            .expect("slow tool started");
        handle.cancel(Some("test".into())).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), cancelled)
            .await
            .unwrap_or_else(|_| panic!("{mode:?}: provider never saw the cancellation"));
        assert!(probe.slow_cancelled.load(Ordering::SeqCst));
        // The gateway is still fine.
        let r = call(&client, "kit.echo.v1", json!({"message": "after"}))
            .await
            .unwrap();
        assert_eq!(text_of(&r), "after");
        client.cancel().await.unwrap();
        gw.shutdown().await;
    }
}
