//! D9: a policy rule on a resource URI holds for the provider's own URI and
//! for the exposed one (`provider+scheme://…`, once two providers share a
//! scheme) alike: in lists, reads, templates, subscriptions and URIs inside
//! results.

use std::{sync::Arc, time::Duration};

use rmcp::model::{
    ContentBlock, ReadResourceRequestParams, ResourceContents, SubscribeRequestParams,
};
use serde_json::json;

use crate::common::*;
use crate::events::evented;

fn uri_of(c: &ContentBlock) -> Option<String> {
    match c {
        ContentBlock::ResourceLink(r) => Some(r.uri.clone()),
        ContentBlock::Resource(e) => match &e.resource {
            ResourceContents::TextResourceContents { uri, .. }
            | ResourceContents::BlobResourceContents { uri, .. } => Some(uri.clone()),
            _ => None,
        },
        _ => None,
    }
}

#[tokio::test]
async fn a_deny_on_the_providers_own_uri_holds_for_the_exposed_one() {
    let (a, b) = (
        spawn_kit(Arc::default()).await,
        spawn_kit(Arc::default()).await,
    );
    // Both providers use `kit:`, so clients see `kit+kit://…` and `twin+kit://…`.
    let policy = "policy:\n  rules:\n    - resources: [\"kit://readme\", \"kit://items/*\"]\n      effect: deny\n";
    let gw = start_gateway(&config_yaml(
        &[("kit", a.addr()), ("twin", b.addr())],
        policy,
    ))
    .await;
    let client = http_client(&gw.url(), false, Recorder::default()).await;

    let uris: Vec<String> = client
        .list_all_resources()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.uri.clone())
        .collect();
    assert!(
        !uris.iter().any(|u| u.ends_with("kit://readme")),
        "{uris:?}"
    );
    let templates: Vec<String> = client
        .list_all_resource_templates()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.uri_template.clone())
        .collect();
    assert!(templates.is_empty(), "{templates:?}");

    // Reads by the exposed name answer exactly like an unknown URI.
    let read = |uri: &str| {
        let c = &client;
        let uri = uri.to_string();
        async move {
            let e = c
                .read_resource(ReadResourceRequestParams::new(uri))
                .await
                .unwrap_err();
            let e = rpc_error(&e);
            (e.code.0, e.message.to_string())
        }
    };
    // Schemes are case-insensitive: no way around a rule by spelling.
    for hidden in [
        "kit+kit://readme",
        "twin+kit://readme",
        "kit+kit://items/7",
        "kit+KIT://readme",
        "Kit+Kit://items/7",
    ] {
        let (code, message) = read(hidden).await;
        let (unknown_code, unknown) = read(&format!("{hidden}-nope")).await;
        assert_eq!(code, unknown_code, "{hidden}");
        assert_eq!(message, unknown.replace("-nope", ""), "{hidden}");
    }

    // Inside a tool result: the hidden link and embedded resource are left
    // out, the visible blob stays.
    let r = call(&client, "kit.kinds.v1", json!({"message": ""}))
        .await
        .unwrap();
    let inside: Vec<String> = r.content.iter().filter_map(uri_of).collect();
    assert_eq!(inside, vec!["kit+kit://blob".to_string()]);
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn a_subscription_to_a_hidden_exposed_uri_gets_no_updates() {
    let (a, b) = (
        spawn_on(evented("ev", "ev"), "127.0.0.1:0").await,
        spawn_on(evented("ev2", "ev"), "127.0.0.1:0").await,
    );
    let yaml = format!(
        "auth:\n  mode: api_key\n  api_keys:\n    - {{ principal: reader, sha256: \"{}\", roles: [reader] }}\n    - {{ principal: other, sha256: \"{}\" }}\npolicy:\n  rules:\n    - resources: [\"ev://greeting\"]\n      roles_any: [reader]\n",
        sha256_hex("reader-key"),
        sha256_hex("other-key")
    );
    let gw = start_gateway(&config_yaml(&[("ev", a.addr()), ("ev2", b.addr())], &yaml)).await;
    let streams = eventually(Duration::from_secs(5), || async {
        (gw.gateway.events().stats().streams_open == 2).then_some(())
    })
    .await;
    assert!(streams.is_some(), "event streams not open");
    let (rec_r, rec_o) = (Recorder::default(), Recorder::default());
    let reader = http_client_rec(&gw.url(), false, Some("reader-key"), &[], rec_r.clone()).await;
    let other = http_client_rec(&gw.url(), false, Some("other-key"), &[], rec_o.clone()).await;
    #[allow(deprecated)]
    for c in [&reader, &other] {
        c.subscribe(SubscribeRequestParams::new("ev+ev://greeting"))
            .await
            .unwrap();
    }
    call(&other, "ev.touch.v1", json!({"message": ""}))
        .await
        .unwrap();
    let got = eventually(Duration::from_secs(5), || async {
        rec_r
            .updated
            .lock()
            .unwrap()
            .iter()
            .any(|u| u == "ev+ev://greeting")
            .then_some(())
    })
    .await;
    assert!(got.is_some(), "the reader gets the update");
    // Give the other session the same chance to (wrongly) receive it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rec_o.updated.lock().unwrap().is_empty());
    let e = other
        .read_resource(ReadResourceRequestParams::new("ev+ev://greeting"))
        .await
        .unwrap_err();
    assert_eq!(rpc_error(&e).code.0, -32002);
    // SEP-2164: the URI asked for, as for any unknown one.
    assert_eq!(
        rpc_error(&e).data.unwrap()["uri"],
        "ev+ev://greeting",
        "{e:?}"
    );
    let text = reader
        .read_resource(ReadResourceRequestParams::new("ev+ev://greeting"))
        .await
        .unwrap();
    assert_eq!(text.contents.len(), 1);
    gw.shutdown().await;
}
