//! D2: slow and idle connections are cut, and a connection cap keeps the
//! gateway answering when clients hold sockets open.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::common::*;

/// Reads until the peer closes (Ok) or `within` passes (Err).
async fn closed_within(s: &mut TcpStream, within: Duration) -> Result<Vec<u8>, ()> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .map(|_| seen)
    .map_err(|_| ())
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n";

#[tokio::test]
async fn a_dribbled_request_head_and_an_idle_connection_are_closed() {
    let gw = start_gateway(&config_yaml(
        &[],
        "limits:\n  header_read_timeout: 500ms\n  idle_timeout: 1s\n",
    ))
    .await;

    // Header bytes one at a time, never finishing the head.
    let mut slow = TcpStream::connect(gw.addr).await.unwrap();
    let dribble = async {
        for b in b"GET /health HTTP/1.1\r\nx-slow: ".iter().cycle() {
            if slow.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let cut = tokio::time::timeout(Duration::from_secs(10), dribble).await;
    assert!(cut.is_ok(), "a dribbling client was never cut off");

    // Connected, silent.
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(10))
            .await
            .is_ok()
    );

    // Kept alive after a request, then idle.
    let mut idle = TcpStream::connect(gw.addr).await.unwrap();
    idle.write_all(HEALTH).await.unwrap();
    let seen = closed_within(&mut idle, Duration::from_secs(10))
        .await
        .expect("an idle keep-alive connection was never closed");
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    gw.shutdown().await;
}

#[tokio::test]
async fn past_the_connection_cap_new_clients_wait_for_a_free_slot() {
    let gw = start_gateway(&config_yaml(
        &[],
        "limits:\n  max_connections: 3\n  header_read_timeout: 30s\n",
    ))
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    // Give the gateway time to accept the three.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut waiting = TcpStream::connect(gw.addr).await.unwrap();
    waiting.write_all(HEALTH).await.unwrap();
    let mut buf = [0u8; 256];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut buf)).await;
    assert!(early.is_err(), "served past the cap: {early:?}");
    drop(held.pop());
    let n = tokio::time::timeout(Duration::from_secs(10), waiting.read(&mut buf))
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    gw.shutdown().await;
}

/// The reported case: with the open-file limit at 256, 300 half-sent
/// requests used to make `/health` time out for everyone (EMFILE on accept).
#[tokio::test]
async fn half_sent_requests_cannot_starve_health_under_a_low_file_limit() {
    init();
    let port = free_port().await;
    let yaml =
        format!("listen: 127.0.0.1:{port}\nlimits:\n  header_read_timeout: 1s\nproviders: []\n");
    let cfg = temp_config(&yaml);
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 256 && exec "$0" --config "$1""#)
        .arg(gateway_bin())
        .arg(cfg.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let health = format!("http://127.0.0.1:{port}/health");
    let up = eventually(Duration::from_secs(10), || {
        let h = health.clone();
        async move { reqwest::get(h).await.ok().map(|r| r.status()) }
    })
    .await;
    assert_eq!(up.map(|s| s.as_u16()), Some(200));
    let mut half = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let _ = s
            .write_all(b"POST /mcp HTTP/1.1\r\nhost: localhost\r\n")
            .await;
        half.push(s);
    }
    let answered = eventually(Duration::from_secs(20), || {
        let h = health.clone();
        async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .unwrap();
            client.get(h).send().await.ok().map(|r| r.status())
        }
    })
    .await;
    assert_eq!(answered.map(|s| s.as_u16()), Some(200), "/health starved");
    drop(half);
    let logs = stop_and_logs(child).await;
    assert!(
        !logs.contains("Too many open files"),
        "accept ran out of descriptors: {logs}"
    );
}
