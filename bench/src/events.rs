//! Event latency: a CloudEvent published to NATS JetStream until the MCP
//! client's `notifications/resources/updated` arrives. Real parts: a
//! `nats-server` with JetStream, the gateway consuming it, hello-rs owning
//! the resource, and an rmcp client session subscribed to it.

use std::{path::PathBuf, process::Stdio, time::Duration};

use anyhow::{Context as _, bail};
use rmcp::{
    ClientHandler, RoleClient, ServiceExt,
    model::{ClientConfig, ResourceUpdatedNotificationParam, SubscribeRequestParams},
    service::NotificationContext,
    transport::StreamableHttpClientTransport,
};
use tokio::{
    process::{Child, Command},
    sync::mpsc,
    time::Instant,
};

use crate::procs::free_port;

const URI: &str = "hello://greeting";
const SUBJECT: &str = "bench.events";

/// Where Debian's package puts it when /usr/sbin is not on PATH.
fn nats_server() -> anyhow::Result<PathBuf> {
    for p in [
        "nats-server",
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
    ] {
        if std::process::Command::new(p)
            .arg("--version")
            .output()
            .is_ok()
        {
            return Ok(p.into());
        }
    }
    bail!("nats-server not found: install it (`apt-get install nats-server`; `make bench` does)")
}

pub struct Nats {
    child: Child,
    pub url: String,
}

impl Nats {
    pub async fn start(work: &std::path::Path) -> anyhow::Result<Self> {
        let addr = free_port()?;
        let dir = work.join("nats");
        std::fs::create_dir_all(&dir)?;
        let child = Command::new(nats_server()?)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &addr.port().to_string(),
                "-sd",
            ])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("start nats-server")?;
        let url = format!("nats://{addr}");
        let end = Instant::now() + Duration::from_secs(10);
        while async_nats::connect(&url).await.is_err() {
            if Instant::now() > end {
                bail!("nats-server did not come up on {addr}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self { child, url })
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The `events:` section for a gateway consuming `url`.
pub fn gateway_yaml(url: &str) -> String {
    format!(
        "events:\n  nats:\n    url: {url}\n    stream: BENCH\n    subjects: [{SUBJECT}]\n    durable: bench\n    create_stream: true\n"
    )
}

struct Updates(mpsc::UnboundedSender<Instant>);

impl ClientHandler for Updates {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }

    async fn on_resource_updated(
        &self,
        p: ResourceUpdatedNotificationParam,
        _cx: NotificationContext<RoleClient>,
    ) {
        if p.uri == URI {
            let _ = self.0.send(Instant::now());
        }
    }
}

/// Publishes `warmup + n` events one at a time (each waits for its
/// notification) and returns the latencies of the last `n`, in µs.
pub async fn latencies(
    gateway: std::net::SocketAddr,
    nats_url: &str,
    warmup: usize,
    n: usize,
) -> anyhow::Result<Vec<u64>> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let transport = StreamableHttpClientTransport::from_uri(format!("http://{gateway}/mcp"));
    let client = Updates(tx).serve(transport).await.context("MCP session")?;
    // A 2025-11-25 session subscribes this way (2026-07-28 uses listen).
    #[allow(deprecated)]
    client
        .subscribe(SubscribeRequestParams::new(URI))
        .await
        .context("resources/subscribe")?;
    let js = async_nats::jetstream::new(async_nats::connect(nats_url).await?);
    // The session's event stream (GET /mcp) opens in the background.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut out = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let event = serde_json::json!({
            "specversion": "1.0",
            "id": format!("bench-{i}-{}", std::process::id()),
            "source": "/providers/hello-rs",
            "type": "io.mcp-gateway.resource.updated",
            "subject": URI,
        });
        let t0 = Instant::now();
        js.publish(SUBJECT, serde_json::to_vec(&event)?.into())
            .await?
            .await
            .context("JetStream ack")?;
        let at = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .context("no notification within 2 s")?
            .context("client closed")?;
        if i >= warmup {
            out.push(at.duration_since(t0).as_micros() as u64);
        }
    }
    let _ = client.cancel().await;
    Ok(out)
}
