//! Secrets: never in logs, errors or `/ready`; redacted arguments; rotated
//! secret files and security settings on reload.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};

use super::*;
use crate::failures::raw_2026;

/// The binary, with secrets from env and file: they never show in its
/// logs, its errors or /ready, even when clients send wrong keys.
#[tokio::test]
async fn secrets_never_appear_in_logs_errors_or_ready() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("hs.secret");
    std::fs::write(&secret_file, "file-secret-ZQXJ-9931\n").unwrap();
    let port = free_port().await;
    let yaml = format!(
        r#"listen: 127.0.0.1:{port}
auth:
  mode: api_key
  api_keys:
    - {{ principal: svc, key: "${{MCPGW_SECRET_UNDER_TEST}}" }}
    - {{ principal: f, key: "file:{}" }}
providers:
  - name: gone
    endpoint: http://127.0.0.1:1
"#,
        secret_file.display()
    );
    let (child, _cfg, ready) = gateway_process(
        &yaml,
        port,
        &[
            ("MCPGW_SECRET_UNDER_TEST", "env-secret-PLMK-5524"),
            ("RUST_LOG", "trace"),
        ],
    )
    .await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    // Right keys, wrong keys, a key that is almost right.
    let mut answers = String::new();
    for key in [
        "env-secret-PLMK-5524",
        "file-secret-ZQXJ-9931",
        "env-secret-PLMK-5525",
        "nope",
    ] {
        let (s, h, body) = raw_2026(
            &url,
            "tools/list",
            None,
            json!({}),
            &[("authorization", &format!("Bearer {key}"))],
        )
        .await;
        answers.push_str(&format!("{s} {h:?} {body}\n"));
    }
    assert_eq!(answers.matches("200 ").count(), 2, "{answers}");
    // Tool arguments are never logged either, even at trace level.
    let (s, _, _) = raw_2026(
        &url,
        "tools/call",
        Some("gone.login"),
        json!({"name": "gone.login", "arguments": {"password": "ARG-SECRET-7781"}}),
        &[("authorization", "Bearer env-secret-PLMK-5524")],
    )
    .await;
    assert_eq!(s, 200);
    let logs = stop_and_logs(child).await;
    assert!(
        logs.contains("unauthenticated request refused"),
        "logs are captured: {logs}"
    );
    let leaked: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("ARG-SECRET-7781"))
        .collect();
    assert!(leaked.is_empty(), "argument in logs: {leaked:?}");
    for secret in ["PLMK-552", "ZQXJ-9931"] {
        assert!(!logs.contains(secret), "secret in logs: {logs}");
        assert!(!ready.contains(secret), "secret in /ready: {ready}");
        assert!(!answers.contains(secret), "secret in answers: {answers}");
    }
}

/// `logging.arguments: true`: arguments appear in the call's log line and
/// audit record, with built-in (password, *token*) and configured (ssn,
/// a JSON pointer) fields redacted; the rest is readable.
#[tokio::test]
async fn logged_arguments_are_redacted() {
    init();
    let provider = spawn_kit(Arc::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let port = free_port().await;
    let yaml = format!(
        r#"listen: 127.0.0.1:{port}
logging:
  arguments: true
  redact: [ssn, /profile/email]
audit: {{ path: {} }}
providers:
  - name: kit
    endpoint: http://{}
"#,
        audit.display(),
        provider.addr()
    );
    let (child, _cfg, _) = gateway_process(&yaml, port, &[("RUST_LOG", "info")]).await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let args = json!({
        "message": "visible-text-4411",
        "password": "PW-SECRET-7781",
        "auth": {"sessionToken": "TOK-SECRET-2291"},
        "ssn": "SSN-SECRET-5150",
        "profile": {"email": "MAIL-SECRET-6060", "city": "visible-city-3030"},
    });
    let text = eventually(Duration::from_secs(10), || {
        let (url, args) = (url.clone(), args.clone());
        async move {
            let (s, _, body) = raw_2026(
                &url,
                "tools/call",
                Some("kit.echo.v1"),
                json!({"name": "kit.echo.v1", "arguments": args}),
                &[],
            )
            .await;
            (s == 200 && body["result"].is_object()).then(|| body.to_string())
        }
    })
    .await
    .expect("the call succeeds once kit is discovered");
    assert!(text.contains("visible-text-4411"), "{text}");
    let record: Value = eventually(Duration::from_secs(5), || {
        let audit = audit.clone();
        async move {
            let text = std::fs::read_to_string(&audit).ok()?;
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|r| r["method"] == "tools/call" && r["outcome"] == "ok")
        }
    })
    .await
    .expect("an audit record for the call");
    assert_eq!(
        record["arguments"],
        json!({
            "message": "visible-text-4411",
            "password": "[REDACTED]",
            "auth": {"sessionToken": "[REDACTED]"},
            "ssn": "[REDACTED]",
            "profile": {"email": "[REDACTED]", "city": "visible-city-3030"},
        }),
        "{record}"
    );
    assert!(record["args_sha256"].is_string(), "{record}");
    let logs = stop_and_logs(child).await;
    let line = logs
        .lines()
        .find(|l| l.contains("visible-city-3030"))
        .unwrap_or_else(|| panic!("the call's log line carries its arguments: {logs}"));
    assert!(line.contains("[REDACTED]"), "{line}");
    for secret in ["PW-SECRET", "TOK-SECRET", "SSN-SECRET", "MAIL-SECRET"] {
        assert!(!logs.contains(secret), "{secret} in logs: {logs}");
    }
}

/// auth, policy and rate limits apply on reload, without a restart: a
/// removed key is refused, a new one accepted, lists follow the new policy
/// (open sessions are told to list again), and the reload needs no restart.
#[tokio::test]
async fn security_settings_apply_on_reload() {
    let provider = spawn_kit(Arc::default()).await;
    let keys = |extra: &str| {
        format!(
            "auth:\n  mode: api_key\n  api_keys:\n    - {{ principal: ops, sha256: \"{}\", roles: [admin] }}\n{extra}",
            sha256_hex("ops-key-1")
        )
    };
    let before = keys(&format!(
        "    - {{ principal: bot, sha256: \"{}\" }}\npolicy:\n  default: deny\n  rules:\n    - tools: [\"kit.echo.v1\"]\n",
        sha256_hex("bot-key-2")
    ));
    let providers = [("kit", provider.addr())];
    let gw = start_gateway(&config_yaml(&providers, &before)).await;
    let rec = Recorder::default();
    let ops = http_client_rec(&gw.url(), false, Some("ops-key-1"), &[], rec.clone()).await;
    assert_eq!(names(&ops).await, ["kit.echo.v1"]);
    assert_eq!(try_token(&gw.url(), Some("bot-key-2")).await.0, 200);

    let after = keys(&format!(
        "    - {{ principal: newbie, sha256: \"{}\" }}\npolicy:\n  default: deny\n  rules:\n    - tools: [\"kit.echo.v1\", \"kit.fail.v1\"]\n      roles_any: [admin]\nrate_limits:\n  tools:\n    kit.echo.v1: {{ per_second: 1, burst: 1 }}\n",
        sha256_hex("new-key-3")
    ));
    let report = gw
        .gateway
        .reload(mcp_gateway::config::Config::parse(&config_yaml(&providers, &after)).unwrap())
        .await
        .unwrap();
    assert!(report.needs_restart.is_empty(), "{report:?}");
    assert_eq!(try_token(&gw.url(), Some("bot-key-2")).await.0, 401);
    assert_eq!(try_token(&gw.url(), Some("new-key-3")).await.0, 200);
    let newbie = http_client_as(&gw.url(), true, Some("new-key-3"), &[]).await;
    assert!(names(&newbie).await.is_empty());
    let e = rpc_error(
        &call(&newbie, "kit.echo.v1", json!({"message": ""}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.message, "unknown tool 'kit.echo.v1'");
    // The open session was told, and now sees the admin tools.
    assert!(
        eventually(Duration::from_secs(5), || {
            let seen = rec
                .tools_changed_seen
                .load(std::sync::atomic::Ordering::SeqCst);
            async move { seen.then_some(()) }
        })
        .await
        .is_some(),
        "tools/list_changed after the policy reload"
    );
    assert_eq!(names(&ops).await, ["kit.echo.v1", "kit.fail.v1"]);
    // The new per-tool limit holds.
    call(&ops, "kit.echo.v1", json!({"message": "1"}))
        .await
        .unwrap();
    let e = rpc_error(
        &call(&ops, "kit.echo.v1", json!({"message": "2"}))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code.0, -32005, "{e:?}");

    gw.shutdown().await;
}

/// A secret behind `file:` is re-read on reload even when the config text is
/// unchanged (key rotation, then SIGHUP).
#[tokio::test]
async fn a_reload_rereads_secret_files() {
    let provider = spawn_kit(Arc::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "first-key-1\n").unwrap();
    let yaml = config_yaml(
        &[("kit", provider.addr())],
        &format!(
            "auth:\n  mode: api_key\n  api_keys:\n    - {{ principal: a, key: \"file:{}\" }}\n",
            key.display()
        ),
    );
    let gw = start_gateway(&yaml).await;
    assert_eq!(try_token(&gw.url(), Some("first-key-1")).await.0, 200);
    std::fs::write(&key, "second-key-2\n").unwrap();
    gw.gateway
        .reload(mcp_gateway::config::Config::parse(&yaml).unwrap())
        .await
        .unwrap();
    assert_eq!(try_token(&gw.url(), Some("first-key-1")).await.0, 401);
    assert_eq!(try_token(&gw.url(), Some("second-key-2")).await.0, 200);
    gw.shutdown().await;
}
