//! Who sees what: lists, calls and events filtered by role and agent.

use std::{sync::Arc, time::Duration};

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn tools_list_differs_by_role_and_a_hidden_tool_answers_like_an_unknown_one() {
    let provider = spawn_kit(Arc::default()).await;
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], &jwt_yaml(""))).await;
    let admin = sign(
        Algorithm::RS256,
        Some("rs"),
        &claims("alice", &["admin", "writer"]),
    );
    let user = sign(Algorithm::ES256, Some("es"), &claims("bob", &["user"]));
    for stateless in [false, true] {
        let a = http_client_as(&gw.url(), stateless, Some(&admin), &[]).await;
        let u = http_client_as(&gw.url(), stateless, Some(&user), &[]).await;
        let (an, un) = (names(&a).await, names(&u).await);
        assert!(an.contains(&"kit.fail.v1".to_string()), "{an:?}");
        assert!(an.contains(&"kit.slow.v1".to_string()), "{an:?}");
        assert!(!un.contains(&"kit.fail.v1".to_string()), "{un:?}");
        assert!(!un.contains(&"kit.slow.v1".to_string()), "{un:?}");
        assert!(un.contains(&"kit.echo.v1".to_string()), "{un:?}");
        // Neither has the agent `whoami` needs.
        assert!(!an.contains(&"kit.whoami.v1".to_string()));

        // Prompts and resources are filtered the same way.
        let ap = a.list_all_prompts().await.unwrap();
        let up = u.list_all_prompts().await.unwrap();
        assert!(ap.iter().any(|p| p.name == "kit.greet"));
        assert!(!up.iter().any(|p| p.name == "kit.greet"));
        let ar = a.list_all_resources().await.unwrap();
        let ur = u.list_all_resources().await.unwrap();
        assert!(ar.iter().any(|r| r.uri == "kit://readme"));
        assert!(!ur.iter().any(|r| r.uri == "kit://readme"));
        let at = a.list_all_resource_templates().await.unwrap();
        let ut = u.list_all_resource_templates().await.unwrap();
        assert!(at.iter().any(|t| t.uri_template == "kit://items/{id}"));
        assert!(!ut.iter().any(|t| t.uri_template == "kit://items/{id}"));

        // The admin may call it; the user gets the unknown-tool answer.
        let ok = call(&a, "kit.fail.v1", json!({"message": "x"}))
            .await
            .unwrap();
        assert_eq!(ok.is_error, Some(true), "the tool itself ran and failed");
        let hidden = rpc_error(
            &call(&u, "kit.fail.v1", json!({"message": "x"}))
                .await
                .unwrap_err(),
        );
        let unknown = rpc_error(
            &call(&u, "kit.nope.v1", json!({"message": "x"}))
                .await
                .unwrap_err(),
        );
        assert_eq!(hidden.code, unknown.code);
        assert_eq!(hidden.message, "unknown tool 'kit.fail.v1'");
        assert_eq!(unknown.message, "unknown tool 'kit.nope.v1'");
        let keys = |d: &Option<Value>| {
            let mut k: Vec<String> = d
                .as_ref()
                .unwrap()
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            k.sort();
            k
        };
        assert_eq!(keys(&hidden.data), keys(&unknown.data));
        assert_eq!(hidden.data.as_ref().unwrap()["kind"], "unknown_tool");
        // The short alias does not find it either.
        let short = rpc_error(
            &call(&u, "fail.v1", json!({"message": "x"}))
                .await
                .unwrap_err(),
        );
        assert_eq!(short.message, "unknown tool 'fail.v1'");

        // A hidden resource reads like a missing one.
        use rmcp::model::ReadResourceRequestParams;
        let e = u
            .read_resource(ReadResourceRequestParams::new("kit://readme"))
            .await
            .unwrap_err();
        let e = rpc_error(&e);
        assert_eq!(e.message, "resource not found: kit://readme");
        assert!(
            a.read_resource(ReadResourceRequestParams::new("kit://readme"))
                .await
                .is_ok()
        );
        // roles_all: a writer without admin does not get the prompt.
        let w = sign(Algorithm::HS256, Some("hs"), &claims("carol", &["writer"]));
        let w = http_client_as(&gw.url(), stateless, Some(&w), &[]).await;
        let e = w
            .get_prompt(rmcp::model::GetPromptRequestParams::new("kit.greet"))
            .await
            .unwrap_err();
        assert_eq!(rpc_error(&e).message, "unknown prompt 'kit.greet'");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn agent_allowlist_and_identity_forwarded_to_the_provider() {
    let provider = spawn_kit(Arc::default()).await;
    let gw = start_gateway(&config_yaml(&[("kit", provider.addr())], &jwt_yaml(""))).await;
    let t = sign(Algorithm::HS256, Some("hs"), &claims("alice", &["user"]));
    let claude = http_client_as(&gw.url(), false, Some(&t), &[("x-agent-name", "claude")]).await;
    let other = http_client_as(&gw.url(), false, Some(&t), &[("x-agent-name", "rogue")]).await;
    assert!(names(&claude).await.contains(&"kit.whoami.v1".to_string()));
    assert!(!names(&other).await.contains(&"kit.whoami.v1".to_string()));
    let e = rpc_error(
        &call(&other, "kit.whoami.v1", json!({"message": ""}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.message, "unknown tool 'kit.whoami.v1'");
    let r = call(&claude, "kit.whoami.v1", json!({"message": ""}))
        .await
        .unwrap();
    let s = r.structured_content.unwrap();
    assert_eq!(s["principal"], "alice");
    assert_eq!(s["agent"], "claude");
    gw.shutdown().await;
}

/// Events reach only sessions allowed to see their provider: log
/// notifications and `events://recent` are filtered by policy.
#[tokio::test]
async fn events_are_filtered_by_what_the_session_may_see() {
    use crate::events::{ECHOED, evented};
    use rmcp::model::{ReadResourceRequestParams, ResourceContents};
    let provider = spawn_on(evented("ev", "ev"), "127.0.0.1:0").await;
    let yaml = format!(
        "auth:\n  mode: api_key\n  api_keys:\n    - {{ principal: reader, sha256: \"{}\", roles: [ev-reader] }}\n    - {{ principal: other, sha256: \"{}\" }}\npolicy:\n  rules:\n    - providers: [ev]\n      roles_any: [ev-reader]\n",
        sha256_hex("reader-key"),
        sha256_hex("other-key")
    );
    let gw = start_gateway(&config_yaml(&[("ev", provider.addr())], &yaml)).await;
    let (rec_r, rec_o) = (Recorder::default(), Recorder::default());
    let reader = http_client_rec(&gw.url(), false, Some("reader-key"), &[], rec_r.clone()).await;
    let other = http_client_rec(&gw.url(), false, Some("other-key"), &[], rec_o.clone()).await;
    opt_into_logs(&reader).await;
    opt_into_logs(&other).await;
    // Wait until the provider's event stream is open.
    for _ in 0..50 {
        if gw.gateway.events().stats().streams_open == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(names(&other).await.is_empty());
    call(&reader, "ev.echo.v1", json!({"message": "secret-ish"}))
        .await
        .unwrap();
    let mut got = false;
    for _ in 0..40 {
        if rec_r
            .logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l["type"] == ECHOED)
        {
            got = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(got, "the reader gets the event");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        rec_o
            .logs
            .lock()
            .unwrap()
            .iter()
            .all(|l| l["provider"] != "ev"),
        "{:?}",
        rec_o.logs.lock().unwrap()
    );
    async fn recent(c: &Client) -> usize {
        let r = c
            .read_resource(ReadResourceRequestParams::new("events://recent"))
            .await
            .unwrap();
        let ResourceContents::TextResourceContents { text, .. } = &r.contents[0] else {
            panic!("{r:?}")
        };
        serde_json::from_str::<Vec<Value>>(text).unwrap().len()
    }
    assert_eq!(recent(&reader).await, 1);
    assert_eq!(recent(&other).await, 0);
    gw.shutdown().await;
}

/// Resource updates for a hidden URI reach neither a 2025-11-25
/// subscription nor a 2026-07-28 listen stream of a caller who may not see
/// it; an allowed caller gets them.
#[tokio::test]
async fn resource_updates_for_hidden_uris_are_not_delivered() {
    use crate::events::evented;
    use rmcp::model::{ServerNotification, SubscribeRequestParams, SubscriptionFilter};
    let provider = spawn_on(evented("ev", "ev"), "127.0.0.1:0").await;
    let yaml = format!(
        "auth:\n  mode: api_key\n  api_keys:\n    - {{ principal: reader, sha256: \"{}\", roles: [reader] }}\n    - {{ principal: other, sha256: \"{}\" }}\npolicy:\n  rules:\n    - resources: [\"ev://greeting\"]\n      roles_any: [reader]\n",
        sha256_hex("reader-key"),
        sha256_hex("other-key")
    );
    let gw = start_gateway(&config_yaml(&[("ev", provider.addr())], &yaml)).await;
    for _ in 0..50 {
        if gw.gateway.events().stats().streams_open == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rec_r, rec_o) = (Recorder::default(), Recorder::default());
    let reader = http_client_rec(&gw.url(), false, Some("reader-key"), &[], rec_r.clone()).await;
    let other = http_client_rec(&gw.url(), false, Some("other-key"), &[], rec_o.clone()).await;
    opt_into_logs(&reader).await;
    opt_into_logs(&other).await;
    #[allow(deprecated)]
    for c in [&reader, &other] {
        c.subscribe(SubscribeRequestParams::new("ev://greeting"))
            .await
            .unwrap();
    }
    let listener = |key: &'static str| {
        let url = gw.url();
        async move {
            let c = http_client_as(&url, true, Some(key), &[]).await;
            let sub = c
                .listen(
                    SubscriptionFilter::builder()
                        .resource_subscription("ev://greeting")
                        .build(),
                )
                .await
                .unwrap();
            (c, sub)
        }
    };
    let (_c1, mut sub_r) = listener("reader-key").await;
    let (_c2, mut sub_o) = listener("other-key").await;
    // The other caller can still use the tools (the rule names resources).
    call(&other, "ev.touch.v1", json!({"message": ""}))
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), sub_r.next())
        .await
        .expect("the reader's listen stream gets the update")
        .unwrap()
        .unwrap();
    assert!(
        matches!(&n, ServerNotification::ResourceUpdatedNotification(u) if u.params.uri == "ev://greeting"),
        "{n:?}"
    );
    let mut got = false;
    for _ in 0..40 {
        if rec_r
            .updated
            .lock()
            .unwrap()
            .iter()
            .any(|u| u == "ev://greeting")
        {
            got = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(got, "the reader's session gets the update");
    // Nothing for the other caller, on either revision.
    let none = tokio::time::timeout(Duration::from_millis(500), sub_o.next()).await;
    assert!(
        !matches!(
            &none,
            Ok(Ok(Some(ServerNotification::ResourceUpdatedNotification(_))))
        ),
        "{none:?}"
    );
    assert!(rec_o.updated.lock().unwrap().is_empty());
    gw.shutdown().await;
}

/// A list change only in items hidden from a client is not announced to it:
/// a hidden item is unknown, and so are its comings and goings.
#[tokio::test]
async fn list_changed_goes_only_to_clients_that_see_the_change() {
    let healthy = spawn_kit(Arc::new(KitProbe::default())).await;
    let late_addr: std::net::SocketAddr =
        format!("127.0.0.1:{}", free_port().await).parse().unwrap();
    let yaml = format!(
        "auth:\n  mode: api_key\n  api_keys:\n    - {{ principal: reader, sha256: \"{}\", roles: [late-reader] }}\n    - {{ principal: other, sha256: \"{}\" }}\npolicy:\n  rules:\n    - providers: [late]\n      roles_any: [late-reader]\n",
        sha256_hex("reader-key"),
        sha256_hex("other-key")
    );
    let gw = start_gateway(&config_yaml(
        &[("kit", healthy.addr()), ("late", late_addr)],
        &yaml,
    ))
    .await;
    let (rec_r, rec_o) = (Recorder::default(), Recorder::default());
    let reader = http_client_rec(&gw.url(), false, Some("reader-key"), &[], rec_r.clone()).await;
    let other = http_client_rec(&gw.url(), false, Some("other-key"), &[], rec_o.clone()).await;
    // Both sessions have made a request, so the gateway knows who they are.
    assert!(names(&other).await.iter().all(|n| !n.starts_with("late.")));
    assert!(names(&reader).await.iter().all(|n| !n.starts_with("late.")));

    let _late = spawn_on(kit(Arc::new(KitProbe::default())), &late_addr.to_string()).await;
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while !rec_r
            .tools_changed_seen
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(seen.is_ok(), "the reader, who sees late's tools, is told");
    assert!(names(&reader).await.iter().any(|n| n == "late.echo.v1"));
    // The other session's notification would have gone out with the reader's.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !rec_o
            .tools_changed_seen
            .load(std::sync::atomic::Ordering::SeqCst),
        "a session that cannot see late's tools was told they changed"
    );
    assert!(names(&other).await.iter().all(|n| !n.starts_with("late.")));
    gw.shutdown().await;
}
