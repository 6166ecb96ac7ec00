//! Hot reload of providers.yaml: on file change (in-process watcher) and on
//! SIGHUP (the real binary).

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::common::*;

async fn tool_names(c: &Client) -> Vec<String> {
    c.list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect()
}

#[tokio::test]
async fn editing_the_config_adds_and_removes_providers_without_dropping_anything() {
    let probe = Arc::new(KitProbe::default());
    let a = spawn_kit(probe.clone()).await;
    let b = spawn_kit(Arc::new(KitProbe::default())).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("providers.yaml");
    let only_a = config_yaml(&[("alpha", a.addr())], "");
    std::fs::write(&path, &only_a).unwrap();
    let gw = start_gateway(&only_a).await;
    let stop = CancellationToken::new();
    tokio::spawn(mcp_gateway::reload::watch(
        gw.gateway.clone(),
        path.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await; // watcher armed

    let rec = Recorder::default();
    let session = http_client(&gw.url(), false, rec.clone()).await;
    assert!(
        tool_names(&session)
            .await
            .contains(&"alpha.echo.v1".to_string())
    );

    // A call in flight across the reload.
    let started = probe.slow_started.notified();
    let s = &session;
    let inflight = tokio::spawn({
        let url = gw.url();
        async move {
            let c = http_client(&url, false, Recorder::default()).await;
            let r = call(&c, "alpha.slow.v1", json!({"ms": 1500})).await;
            c.cancel().await.unwrap();
            r
        }
    });
    started.await;

    std::fs::write(
        &path,
        config_yaml(&[("alpha", a.addr()), ("beta", b.addr())], ""),
    )
    .unwrap();
    let added = eventually(Duration::from_secs(5), || async move {
        tool_names(s)
            .await
            .contains(&"beta.echo.v1".to_string())
            .then_some(())
    })
    .await;
    assert!(added.is_some(), "beta's tools did not appear");
    assert!(
        rec.tools_changed_seen.load(Ordering::SeqCst),
        "no tools/list_changed"
    );
    let r = call(&session, "beta.echo.v1", json!({"message": "b"}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "b");
    let r = inflight
        .await
        .unwrap()
        .expect("the in-flight call survived the reload");
    assert_eq!(text_of(&r), "done");

    // An invalid file is rejected and the running config stays.
    std::fs::write(&path, "providers:\n  - name: Bad Name\n").unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let names = tool_names(&session).await;
    assert!(
        names.contains(&"alpha.echo.v1".to_string()) && names.contains(&"beta.echo.v1".to_string()),
        "{names:?}"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mcp_gateway_config_reload_rejected_total")),
        "{metrics}"
    );

    // Removing a provider removes its tools; the session lives on.
    std::fs::write(&path, config_yaml(&[("beta", b.addr())], "")).unwrap();
    let removed = eventually(Duration::from_secs(5), || async move {
        (!tool_names(s).await.iter().any(|n| n.starts_with("alpha."))).then_some(())
    })
    .await;
    assert!(removed.is_some(), "alpha's tools were not removed");
    let r = call(&session, "beta.echo.v1", json!({"message": "still"}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "still");
    stop.cancel();
    session.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn sighup_reloads_the_binary() {
    init();
    let a = spawn_kit(Arc::new(KitProbe::default())).await;
    let b = spawn_kit(Arc::new(KitProbe::default())).await;
    let port = free_port().await;
    // The binary watches `watched/`; the real file lives elsewhere, so only
    // SIGHUP can make it notice the edit.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("watched")).unwrap();
    let real = dir.path().join("real.yaml");
    let link = dir.path().join("watched/providers.yaml");
    let extra = format!("listen: 127.0.0.1:{port}\n");
    std::fs::write(&real, config_yaml(&[("alpha", a.addr())], &extra)).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut child = tokio::process::Command::new(gateway_bin())
        .arg("--config")
        .arg(&link)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let up = eventually(Duration::from_secs(10), || async {
        reqwest::get(format!("http://127.0.0.1:{port}/health"))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    assert!(up.is_some(), "gateway did not start");
    let client = http_client(&url, true, Recorder::default()).await;
    assert!(
        !tool_names(&client)
            .await
            .iter()
            .any(|n| n.starts_with("beta."))
    );

    std::fs::write(
        &real,
        config_yaml(&[("alpha", a.addr()), ("beta", b.addr())], &extra),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !tool_names(&client)
            .await
            .iter()
            .any(|n| n.starts_with("beta.")),
        "reloaded without SIGHUP"
    );
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    let c = &client;
    let seen = eventually(Duration::from_secs(5), || async move {
        tool_names(c)
            .await
            .contains(&"beta.echo.v1".to_string())
            .then_some(())
    })
    .await;
    assert!(seen.is_some(), "SIGHUP did not reload");
    client.cancel().await.unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}
