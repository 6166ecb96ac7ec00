//! Child processes (gateway, providers), free ports, readiness and memory.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

use crate::client::Http;

/// A port that was free a moment ago.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// A child that is killed when dropped.
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
    pub name: String,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Until the process exits (after a signal sent some other way).
    pub async fn wait(mut self) {
        let _ = self.child.wait().await;
    }

    pub fn memory(&self) -> Memory {
        Memory::of(self.pid())
    }

    /// User + system CPU seconds used so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid())
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn spawn(
    name: &str,
    program: &Path,
    args: &[String],
    addr: SocketAddr,
    log: &Path,
    env: &[(&str, &str)],
) -> anyhow::Result<Proc> {
    let log = std::fs::File::create(log)?;
    let child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    Ok(Proc {
        child,
        addr,
        name: name.to_string(),
    })
}

/// Waits until something accepts TCP connections on `addr`.
pub async fn wait_listening(p: &mut Proc, within: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + within;
    loop {
        if tokio::net::TcpStream::connect(p.addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = p.child.try_wait()? {
            bail!("{} exited early: {status}", p.name);
        }
        if Instant::now() > end {
            bail!("{} did not listen on {} in time", p.name, p.addr);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub struct Bins {
    pub gateway: PathBuf,
    pub hello: PathBuf,
    pub me: PathBuf,
    /// agentgateway, when the user has built it (`AGENTGATEWAY_BIN`).
    pub agentgateway: Option<PathBuf>,
    pub work: PathBuf,
    /// The gateway runs with its defaults (JSON logs at `info`) unless this
    /// says otherwise.
    pub gateway_env: Vec<(&'static str, &'static str)>,
}

impl Bins {
    /// Providers log at `warn`: they are the same in every mode, and their
    /// logging is not what is measured.
    pub async fn hello(&self) -> anyhow::Result<Proc> {
        let addr = free_port()?;
        let mut p = spawn(
            "hello-rs",
            &self.hello,
            &["--listen".into(), addr.to_string()],
            addr,
            &self.work.join("hello-rs.log"),
            &[("RUST_LOG", "warn")],
        )?;
        wait_listening(&mut p, Duration::from_secs(10)).await?;
        Ok(p)
    }

    pub async fn synthetic(&self, name: &str, tools: usize) -> anyhow::Result<Proc> {
        let addr = free_port()?;
        let mut p = spawn(
            name,
            &self.me,
            &[
                "synthetic".into(),
                "--name".into(),
                name.into(),
                "--listen".into(),
                addr.to_string(),
                "--tools".into(),
                tools.to_string(),
            ],
            addr,
            &self.work.join(format!("{name}.log")),
            &[("RUST_LOG", "warn")],
        )?;
        wait_listening(&mut p, Duration::from_secs(30)).await?;
        Ok(p)
    }

    /// Starts a gateway in front of `providers` (config name, address) and
    /// returns once `/ready` lists all of them ready, with the time that took
    /// from spawning the process.
    pub async fn gateway(
        &self,
        label: &str,
        providers: &[(&str, SocketAddr)],
    ) -> anyhow::Result<(Proc, Duration)> {
        self.gateway_with(label, providers, "").await
    }

    /// A bare rmcp echo server (`mcp-bench rmcp-echo`).
    pub async fn rmcp_echo(&self) -> anyhow::Result<Proc> {
        let addr = free_port()?;
        let mut p = spawn(
            "rmcp-echo",
            &self.me,
            &["rmcp-echo".into(), "--listen".into(), addr.to_string()],
            addr,
            &self.work.join("rmcp-echo.log"),
            &[("RUST_LOG", "warn")],
        )?;
        wait_listening(&mut p, Duration::from_secs(10)).await?;
        Ok(p)
    }

    /// agentgateway in front of the MCP server at `upstream`, one target,
    /// `stateful` or `stateless` (its `statefulMode`). Its access log is
    /// left at its default (`info`), as ours is. It binds every interface
    /// (a bind has only a port), and its admin, stats and readiness
    /// listeners are off.
    pub async fn agentgateway(
        &self,
        bin: &Path,
        upstream: SocketAddr,
        stateful_mode: &str,
    ) -> anyhow::Result<Proc> {
        let port = free_port()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let yaml = format!(
            r#"# written by mcp-bench
config:
  adminAddr: "off"
  statsAddr: "off"
  readinessAddr: "off"
binds:
- port: {port}
  listeners:
  - routes:
    - backends:
      - mcp:
          statefulMode: {stateful_mode}
          targets:
          - name: echo
            mcp:
              host: http://{upstream}/mcp
"#
        );
        // Away from the logs, as the gateway's (see `gateway_in`).
        let dir = self
            .work
            .join(format!("agentgateway-{stateful_mode}.config"));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("agentgateway.yaml");
        std::fs::write(&config, yaml)?;
        let mut p = spawn(
            &format!("agentgateway-{stateful_mode}"),
            bin,
            &["-f".into(), config.display().to_string()],
            addr,
            &self.work.join(format!("agentgateway-{stateful_mode}.log")),
            &[],
        )?;
        wait_listening(&mut p, Duration::from_secs(30)).await?;
        Ok(p)
    }

    /// [`Bins::gateway`] under `valgrind --tool=callgrind`, its counts
    /// written to `out` (and `out.1`, … on each `callgrind_control -d`).
    pub async fn gateway_callgrind(
        &self,
        label: &str,
        providers: &[(&str, SocketAddr)],
        out: &Path,
    ) -> anyhow::Result<Proc> {
        self.gateway_callgrind_with(label, providers, out, &[])
            .await
    }

    /// [`Bins::gateway_callgrind`] with more valgrind arguments.
    pub async fn gateway_callgrind_with(
        &self,
        label: &str,
        providers: &[(&str, SocketAddr)],
        out: &Path,
        more: &[&str],
    ) -> anyhow::Result<Proc> {
        let mut wrap = vec![
            "--tool=callgrind".to_string(),
            format!("--callgrind-out-file={}", out.display()),
        ];
        wrap.extend(more.iter().map(|s| s.to_string()));
        self.gateway_in(label, providers, "", Some(&wrap))
            .await
            .map(|(p, _)| p)
    }

    /// [`Bins::gateway`] with more config (YAML sections) appended.
    pub async fn gateway_with(
        &self,
        label: &str,
        providers: &[(&str, SocketAddr)],
        extra: &str,
    ) -> anyhow::Result<(Proc, Duration)> {
        self.gateway_in(label, providers, extra, None).await
    }

    /// The gateway, run by valgrind with `valgrind` arguments when given.
    async fn gateway_in(
        &self,
        label: &str,
        providers: &[(&str, SocketAddr)],
        extra: &str,
        valgrind: Option<&[String]>,
    ) -> anyhow::Result<(Proc, Duration)> {
        let addr = free_port()?;
        let mut yaml = String::from(
            "# written by mcp-bench\ndiscovery:\n  retry_interval: 200ms\n  refresh_interval: 5s\n",
        );
        yaml.push_str(extra);
        yaml.push_str("providers:\n");
        for (name, a) in providers {
            yaml.push_str(&format!("  - name: {name}\n    endpoint: http://{a}\n"));
        }
        // A directory of its own: the gateway watches its config's
        // directory, and the logs written next to it would wake it.
        let dir = self.work.join(format!("{label}.config"));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("gateway.yaml");
        std::fs::write(&config, yaml)?;
        let t0 = Instant::now();
        let mut args = vec![
            "--config".into(),
            config.display().to_string(),
            "--listen".into(),
            addr.to_string(),
        ];
        let program = match valgrind {
            Some(wrap) => {
                let mut full = wrap.to_vec();
                full.push(self.gateway.display().to_string());
                full.append(&mut args);
                args = full;
                Path::new("valgrind")
            }
            None => self.gateway.as_path(),
        };
        let mut p = spawn(
            label,
            program,
            &args,
            addr,
            &self.work.join(format!("{label}.log")),
            &self
                .gateway_env
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect::<Vec<_>>(),
        )?;
        let took = wait_ready(&mut p, providers.len(), t0).await?;
        Ok((p, took))
    }
}

/// Polls `/ready` every millisecond until `n` providers are `ready`.
/// The gateway binds its listener only after the first discovery round, so
/// this is "spawned → serving MCP with every provider's tools".
async fn wait_ready(p: &mut Proc, n: usize, t0: Instant) -> anyhow::Result<Duration> {
    // Under valgrind the gateway starts some 50 times slower.
    let end = t0 + Duration::from_secs(60);
    let mut conn: Option<Http> = None;
    loop {
        if Instant::now() > end {
            bail!("{} not ready with {n} providers in 30 s", p.name);
        }
        if let Some(status) = p.child.try_wait()? {
            bail!("{} exited early: {status}", p.name);
        }
        if conn.is_none() {
            conn = Http::connect(p.addr).await.ok();
        }
        if let Some(c) = conn.as_mut() {
            match c.get("/ready").await {
                Ok(r) => {
                    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                    let ready = v["providers"]
                        .as_array()
                        .map(|ps| ps.iter().filter(|p| p["state"] == "ready").count())
                        .unwrap_or(0);
                    if ready == n {
                        return Ok(t0.elapsed());
                    }
                }
                Err(_) => conn = None,
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Memory {
    /// Resident set now, MB.
    pub rss_mb: f64,
    /// Peak resident set since start (VmHWM), MB.
    pub peak_mb: f64,
}

impl Memory {
    pub fn of(pid: u32) -> Self {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return Self::default();
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kb| kb.parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
                .unwrap_or(0.0)
        };
        Self {
            rss_mb: field("VmRSS:"),
            peak_mb: field("VmHWM:"),
        }
    }
}

/// utime + stime from /proc/<pid>/stat, in seconds (USER_HZ = 100).
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
