//! Managed providers: the gateway starts the process, restarts it with
//! backoff when it exits, forwards its output to the log under the
//! provider's name, and stops it (SIGTERM, then SIGKILL) on shutdown.
//! Readiness is the registry's business: a freshly started process is
//! poked until its health check and discovery succeed.

use std::{path::Path, process::Stdio, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};
use tokio_util::sync::CancellationToken;

use crate::{config::Launch, pipeline::registry::Registry};

/// First restart delay; doubles per crash up to `restart_max`.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// A process that ran this long is considered healthy again.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How long the output of a process that exited may take to be read out.
const READ_REST: Duration = Duration::from_millis(500);
/// How long a SIGTERMed process gets before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The running managed providers, by provider name, with the launch
/// settings each was started with.
#[derive(Default)]
pub struct Launched {
    running:
        std::collections::HashMap<String, (Launch, CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Launched {
    /// Before a config is applied: starts processes for new providers and
    /// restarts those whose launch settings changed, so discovery finds them.
    pub async fn prepare(&mut self, config: &crate::config::Config, registry: &Arc<Registry>) {
        let wanted = wanted(config);
        let changed: Vec<String> = self
            .running
            .iter()
            .filter(|(name, (launch, _, _))| {
                wanted.get(name.as_str()).is_some_and(|w| *w != launch)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in changed {
            self.stop(&name).await;
        }
        for (name, launch) in wanted {
            if !self.running.contains_key(name) {
                // Known as starting before discovery first looks at it.
                registry.processes().started(name, None);
                let stop = CancellationToken::new();
                let task = tokio::spawn(supervise(
                    name.to_string(),
                    launch.clone(),
                    config.base_dir.clone(),
                    registry.clone(),
                    stop.clone(),
                ));
                self.running
                    .insert(name.to_string(), (launch.clone(), stop, task));
            }
        }
    }

    /// After a config is applied (the provider already left the catalog):
    /// stops processes no provider wants any more.
    pub async fn finish(&mut self, config: &crate::config::Config) {
        let wanted = wanted(config);
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|name| !wanted.contains_key(name.as_str()))
            .cloned()
            .collect();
        for name in gone {
            self.stop(&name).await;
        }
    }

    async fn stop(&mut self, name: &str) {
        if let Some((_, stop, task)) = self.running.remove(name) {
            stop.cancel();
            let _ = task.await;
        }
    }

    pub async fn stop_all(&mut self) {
        for (_, (_, stop, _)) in self.running.iter() {
            stop.cancel();
        }
        for (_, (_, _, task)) in self.running.drain() {
            let _ = task.await;
        }
    }
}

fn wanted(config: &crate::config::Config) -> std::collections::HashMap<&str, &Launch> {
    config
        .providers
        .iter()
        .filter_map(|p| Some((p.name.as_str(), p.launch.as_ref()?)))
        .collect()
}

/// Supervises one provider process until `stop` fires; resolves once the
/// process is gone.
pub async fn supervise(
    provider: String,
    launch: Launch,
    base_dir: std::path::PathBuf,
    registry: Arc<Registry>,
    stop: CancellationToken,
) {
    let mut backoff = crate::backoff::Backoff::new(FIRST_BACKOFF, launch.restart_max);
    let processes = registry.processes().clone();
    let _forget = Forget(processes.clone(), provider.clone());
    loop {
        let started = tokio::time::Instant::now();
        let (mut child, readers) = match spawn(&provider, &launch, &base_dir, &processes) {
            Ok(c) => c,
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::error!(provider, command = %launch.command, error = %e, restart_in = %humantime::format_duration(round(wait)),
                    "cannot start the provider process; trying again after the backoff");
                processes.ended(&provider, format!("could not start: {e}"), wait);
                registry.poke(&provider);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
        };
        processes.started(&provider, child.id());
        tracing::info!(provider, pid = child.id(), command = %launch.command, "provider process started");
        let poker = tokio::spawn(poke_until_ready(provider.clone(), registry.clone()));
        let status = tokio::select! {
            s = child.wait() => s,
            _ = stop.cancelled() => {
                poker.abort();
                terminate(&provider, &mut child).await;
                return;
            }
        };
        poker.abort();
        let ran = started.elapsed();
        // Its last words, read to the end, before they are reported.
        let _ = tokio::time::timeout(READ_REST, futures::future::join_all(readers)).await;
        if ran >= STABLE_AFTER {
            backoff.reset();
        }
        let wait = backoff.next_delay();
        let status = status
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string());
        processes.ended(&provider, status.clone(), wait);
        let report = processes.get(&provider);
        let restarts = report.as_ref().map_or(0, |r| r.restarts);
        let stderr: Vec<String> = report.map(|r| r.stderr).unwrap_or_default();
        tracing::warn!(provider, %status, ran = %humantime::format_duration(round(ran)), restarts,
            restart_in = %humantime::format_duration(round(wait)), ?stderr,
            "provider process exited; starting it again after the backoff");
        registry.poke(&provider);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// To the millisecond: a duration for people.
fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// The report goes when the provider is no longer managed.
struct Forget(crate::pipeline::process::SharedProcesses, String);

impl Drop for Forget {
    fn drop(&mut self) {
        self.0.forget(&self.1);
    }
}

fn spawn(
    provider: &str,
    launch: &Launch,
    base_dir: &Path,
    processes: &crate::pipeline::process::SharedProcesses,
) -> std::io::Result<(Child, Vec<tokio::task::JoinHandle<()>>)> {
    let program = if launch.command.contains('/') && Path::new(&launch.command).is_relative() {
        base_dir.join(&launch.command)
    } else {
        launch.command.clone().into()
    };
    let dir = match &launch.working_dir {
        Some(d) if d.is_relative() => base_dir.join(d),
        Some(d) => d.clone(),
        None => base_dir.to_path_buf(),
    };
    let mut child = Command::new(program)
        .args(&launch.args)
        .envs(&launch.env)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group: a terminal's Ctrl-C reaches the gateway
        // only, which then stops the provider in order.
        .process_group(0)
        .spawn()?;
    let mut readers = Vec::new();
    for (stream, pipe) in [
        (
            "stdout",
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
        (
            "stderr",
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
    ] {
        if let Some(pipe) = pipe {
            let provider = provider.to_string();
            let processes = processes.clone();
            readers.push(tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let shown = forward(&provider, stream, &line);
                    if stream == "stderr" {
                        processes.stderr(&provider, &shown);
                    }
                }
            }));
        }
    }
    Ok((child, readers))
}

/// Logs one line of the provider's output under its name. A JSON object
/// (a provider logging JSON lines, as the SDK does) keeps its level and
/// message, and its other members go in as the `fields` object; anything
/// else is text at INFO. Returns the line as shown in `/ready`.
fn forward(provider: &str, stream: &'static str, line: &str) -> String {
    let Ok(mut obj) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line)
    else {
        tracing::info!(target: "provider", provider, stream, "{line}");
        return line.to_string();
    };
    let text = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => s,
        Some(v) => v.to_string(),
        None => String::new(),
    };
    let level = text(obj.remove("level"));
    let message = text(obj.remove("message"));
    // Ours is the time the line arrived; theirs stays with the rest.
    let fields = match mcp_gateway_proto::trace::log_format() {
        mcp_gateway_proto::trace::LogFormat::Json => serde_json::Value::Object(obj).to_string(),
        // For a person: `key=value ...`, without what the line already says.
        mcp_gateway_proto::trace::LogFormat::Text => obj
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "timestamp" | "target" | "provider"))
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                v => format!("{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
    };
    let fields = fields.as_str();
    // Loggers spell levels their own way (WARN, warning, Error, fatal...).
    match level.to_ascii_lowercase().as_str() {
        "error" | "fatal" | "critical" | "crit" | "alert" | "emergency" | "panic" => {
            tracing::error!(target: "provider", provider, stream, fields, "{message}")
        }
        "warn" | "warning" => {
            tracing::warn!(target: "provider", provider, stream, fields, "{message}")
        }
        "debug" => tracing::debug!(target: "provider", provider, stream, fields, "{message}"),
        "trace" => tracing::trace!(target: "provider", provider, stream, fields, "{message}"),
        _ => tracing::info!(target: "provider", provider, stream, fields, "{message}"),
    }
    format!("{level} {message}").trim().to_string()
}

/// Nudges discovery while the process boots, so it is served as soon as it
/// answers instead of at the next backoff tick.
async fn poke_until_ready(provider: String, registry: Arc<Registry>) {
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ready = registry.statuses().iter().any(|s| {
            s.name == provider
                && s.state != crate::pipeline::registry::ProviderState::Down
                && s.state != crate::pipeline::registry::ProviderState::Connecting
        });
        if ready {
            return;
        }
        registry.poke(&provider);
    }
}

async fn terminate(provider: &str, child: &mut Child) {
    if let Some(pid) = child.id() {
        // A pid we own and have not reaped yet.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
            tracing::info!(provider, "provider process stopped");
            return;
        }
        tracing::warn!(provider, "provider process ignored SIGTERM; killing it");
    }
    let _ = child.kill().await;
}
