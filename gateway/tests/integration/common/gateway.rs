//! The gateway under test: in-process on a real listener, or the binary.

use super::*;

/// A port that was free a moment ago, for "provider comes up later" tests.
pub async fn free_port() -> u16 {
    init();
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct TestGateway {
    #[allow(dead_code)]
    pub gateway: Gateway,
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl TestGateway {
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let resp = reqwest::get(format!("{}/metrics", self.base()))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }

    /// `GET /ready` as JSON.
    pub async fn ready(&self) -> Value {
        reqwest::get(format!("{}/ready", self.base()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Triggers graceful shutdown and waits for the server to finish.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.task).await;
    }

    pub fn begin_shutdown(&self) {
        self.stop.cancel();
    }
}

/// The provider list for a config: `(name, address)`.
pub fn config_yaml(providers: &[(&str, SocketAddr)], extra: &str) -> String {
    let mut y = String::from(
        "discovery:\n  retry_interval: 200ms\n  refresh_interval: 500ms\nshutdown_grace: 5s\n",
    );
    y.push_str(extra);
    y.push_str("providers:\n");
    for (name, addr) in providers {
        y.push_str(&format!(
            "  - name: {name}\n    endpoint: http://{addr}\n    pool_size: 2\n"
        ));
    }
    y
}

/// Process-wide test setup: logs, and the rustls provider (ring) for the
/// HTTP clients.
pub fn init() {
    // Captured per test by cargo, shown only for failing tests.
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub async fn start_gateway(yaml: &str) -> TestGateway {
    init();
    let config = Config::parse(yaml).expect("test config is valid");
    let gateway = Gateway::start(config).await.expect("gateway starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let g = gateway.clone();
    let s = stop.clone();
    let task = tokio::spawn(async move {
        g.serve_http(listener, s.cancelled_owned()).await.unwrap();
    });
    TestGateway {
        gateway,
        addr,
        stop,
        task,
    }
}

pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

pub fn gateway_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcp-gateway"))
}

/// Writes `yaml` to a temp file that lives as long as the returned guard.
pub fn temp_config(yaml: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::io::Write::write_all(&mut f, yaml.as_bytes()).unwrap();
    f
}

/// The gateway binary serving `yaml` (which listens on `port`), its output
/// captured; returns once `/ready` answers, with that answer. Keep the
/// config file alive as long as the process.
pub async fn gateway_process(
    yaml: &str,
    port: u16,
    env: &[(&str, &str)],
) -> (tokio::process::Child, tempfile::NamedTempFile, String) {
    let cfg = temp_config(yaml);
    let child = tokio::process::Command::new(gateway_bin())
        .arg("--config")
        .arg(cfg.path())
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ready = eventually(Duration::from_secs(10), || {
        let url = format!("http://127.0.0.1:{port}/ready");
        async move { reqwest::get(url).await.ok()?.text().await.ok() }
    })
    .await
    .expect("gateway answers /ready");
    (child, cfg, ready)
}

/// Stops the process (SIGTERM) and returns all it logged.
pub async fn stop_and_logs(child: tokio::process::Child) -> String {
    unsafe { libc_kill(child.id().unwrap()) };
    let out = child.wait_with_output().await.unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

unsafe fn libc_kill(pid: u32) {
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
}
