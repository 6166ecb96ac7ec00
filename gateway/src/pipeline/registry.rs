//! Every configured provider, its state, and the published catalog.
//!
//! Each provider gets a supervisor task: it discovers the provider, re-checks
//! it every `refresh_interval` while it is up (cheaply: `known_revision` lets
//! the provider answer "unchanged"), and retries every `retry_interval` while
//! it is down. Any change rebuilds the catalog and is broadcast as
//! [`ListChanges`](crate::pipeline::catalog::ListChanges) for the MCP layer to turn into list_changed notifications.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use arc_swap::{ArcSwap, ArcSwapOption};
use serde::Serialize;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::southbound::Upstream;
use crate::{
    config::{Config, Discovery, Naming},
    pipeline::catalog::{Catalog, ListChanges, ProviderItems},
    pipeline::process::{ProcessReport, SharedProcesses},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderState {
    /// Not reached yet since the gateway started.
    Connecting,
    Ready,
    /// Reachable, but recent calls failed: its circuit breaker is not closed.
    Degraded,
    Down,
}

/// What `/ready` shows for one provider. Never contains secrets.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderStatus {
    pub name: String,
    pub endpoint: String,
    pub state: ProviderState,
    pub breaker: crate::southbound::BreakerState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub tools: usize,
    pub resources: usize,
    pub prompts: usize,
    /// A managed provider's process (`launch` in the config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessReport>,
}

struct Slot {
    upstream: Arc<Upstream>,
    items: ArcSwapOption<ProviderItems>,
    /// The items it had when it went down (for tombstones).
    last_items: ArcSwapOption<ProviderItems>,
    state: Mutex<(ProviderState, Option<SystemTime>, Option<String>)>,
    poke: Notify,
    /// Bumped whenever the provider is (re)discovered with new items.
    generation: AtomicU64,
    /// Ends this provider's supervisor (removal on reload, or shutdown).
    stop: CancellationToken,
    /// Consecutive checks that timed out while the provider was up.
    slow_checks: std::sync::atomic::AtomicU32,
    /// Since it was last up: the log says when the failure changes, not at
    /// every retry.
    down: Mutex<Down>,
}

#[derive(Default)]
struct Down {
    attempts: u32,
    /// The error last logged, when first, when to say it again, and the
    /// interval after that.
    logged: Option<(String, std::time::Instant, std::time::Instant, Duration)>,
}

/// A failure that goes on is logged again after a minute, then at doubling
/// intervals (2, 4, 8... minutes), at most an hour apart.
const FIRST_REMINDER: Duration = Duration::from_secs(60);
const LAST_REMINDER: Duration = Duration::from_secs(3600);

/// A managed process this young is still starting: not answering yet is
/// expected, and the launcher's own lines say what the process does.
const STARTUP_GRACE: Duration = Duration::from_secs(10);

/// Timed-out checks in a row before a provider that is up is dropped: a
/// busy provider answers late but still serves; an unreachable one is
/// dropped at once.
const SLOW_CHECKS_BEFORE_DOWN: u32 = 3;

/// What a reload changed, by provider name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub modified: Vec<String>,
}

pub struct Registry {
    /// Naming and discovery can change on reload.
    naming: ArcSwap<Naming>,
    discovery: ArcSwap<Discovery>,
    max_payload: usize,
    /// In config order, which is also name-clash priority.
    slots: ArcSwap<Vec<Arc<Slot>>>,
    catalog: ArcSwap<Catalog>,
    changes: broadcast::Sender<ListChanges>,
    rebuild: Mutex<()>,
    stop: CancellationToken,
    processes: SharedProcesses,
}

impl Registry {
    pub fn new(config: &Config) -> Result<Arc<Self>, crate::southbound::UpstreamError> {
        let stop = CancellationToken::new();
        let slots = config
            .providers
            .iter()
            .map(|p| {
                Slot::new(
                    p.clone(),
                    config.limits.max_payload_bytes,
                    &config.base_dir,
                    &stop,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(Self {
            naming: ArcSwap::from_pointee(config.naming.clone()),
            discovery: ArcSwap::from_pointee(config.discovery.clone()),
            max_payload: config.limits.max_payload_bytes,
            slots: ArcSwap::from_pointee(slots),
            catalog: ArcSwap::from_pointee(Catalog::default()),
            changes: broadcast::channel(64).0,
            rebuild: Mutex::new(()),
            stop,
            processes: SharedProcesses::default(),
        }))
    }

    fn slot(&self, provider: &str) -> Option<Arc<Slot>> {
        self.slots
            .load()
            .iter()
            .find(|s| s.upstream.name() == provider)
            .cloned()
    }

    /// Applies a new config's providers, naming and discovery settings:
    /// unchanged providers keep their connections, state and items; new ones
    /// are discovered (concurrently, bounded by their discovery timeout);
    /// removed ones stop; modified ones are replaced. In-flight calls finish
    /// on the connection they started on.
    pub async fn apply(
        self: &Arc<Self>,
        config: &Config,
    ) -> Result<Applied, crate::southbound::UpstreamError> {
        let old = self.slots.load_full();
        let mut applied = Applied::default();
        let mut fresh = Vec::new();
        let mut next = Vec::with_capacity(config.providers.len());
        for p in &config.providers {
            match old.iter().find(|s| s.upstream.name() == p.name) {
                Some(s) if s.upstream.config == *p => next.push(s.clone()),
                found => {
                    let slot =
                        Slot::new(p.clone(), self.max_payload, &config.base_dir, &self.stop)?;
                    if found.is_some() {
                        applied.modified.push(p.name.clone());
                    } else {
                        applied.added.push(p.name.clone());
                    }
                    fresh.push(slot.clone());
                    next.push(slot);
                }
            }
        }
        for s in old.iter() {
            if !next.iter().any(|n| Arc::ptr_eq(n, s)) {
                s.stop.cancel();
                if !config.providers.iter().any(|p| p.name == s.upstream.name()) {
                    applied.removed.push(s.upstream.name().to_string());
                }
            }
        }
        self.naming.store(Arc::new(config.naming.clone()));
        self.discovery.store(Arc::new(config.discovery.clone()));
        self.slots.store(Arc::new(next));
        self.rebuild();
        futures::future::join_all(fresh.iter().map(|s| self.first_attempt(s))).await;
        for s in fresh {
            let this = self.clone();
            tokio::spawn(async move { this.supervise(s).await });
        }
        Ok(applied)
    }

    /// The current catalog snapshot.
    pub fn catalog(&self) -> arc_swap::Guard<Arc<Catalog>> {
        self.catalog.load()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ListChanges> {
        self.changes.subscribe()
    }

    /// Discovers every provider concurrently (each bounded by its discovery
    /// timeout), then leaves supervisors running in the background.
    pub async fn start(self: &Arc<Self>) {
        let slots = self.slots.load_full();
        futures::future::join_all(slots.iter().map(|s| self.first_attempt(s))).await;
        for s in slots.iter().cloned() {
            let this = self.clone();
            tokio::spawn(async move { this.supervise(s).await });
        }
    }

    /// A managed provider is still booting when discovery starts: give it
    /// until its discovery timeout to answer.
    async fn first_attempt(&self, slot: &Arc<Slot>) {
        let deadline = tokio::time::Instant::now() + slot.upstream.config.timeouts.discovery;
        loop {
            self.attempt(slot).await;
            let up = slot.items.load().is_some();
            if up
                || slot.upstream.config.launch.is_none()
                || tokio::time::Instant::now() >= deadline
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Asks for an immediate re-check of `provider`, e.g. after a call found
    /// it unavailable, so its items leave the catalog without waiting.
    pub fn poke(&self, provider: &str) {
        if let Some(s) = self.slot(provider) {
            s.poke.notify_one();
        }
    }

    /// Every configured provider's connection.
    pub fn upstreams(&self) -> Vec<Arc<Upstream>> {
        self.slots
            .load()
            .iter()
            .map(|s| s.upstream.clone())
            .collect()
    }

    /// The current connection of `provider`; a reload may replace it.
    pub fn upstream(&self, provider: &str) -> Option<Arc<Upstream>> {
        self.slot(provider).map(|s| s.upstream.clone())
    }

    /// A provider's state and discovery generation (changes when it is
    /// rediscovered), or `None` if it is not configured.
    pub fn generation(&self, provider: &str) -> Option<(ProviderState, u64)> {
        let s = self.slot(provider)?;
        let state = s.state.lock().expect("state lock").0;
        Some((state, s.generation.load(Ordering::Relaxed)))
    }

    pub fn retry_interval(&self) -> Duration {
        self.discovery.load().retry_interval
    }

    /// Resolves once [`Registry::stop`] was called.
    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }

    pub fn statuses(&self) -> Vec<ProviderStatus> {
        self.statuses_with(false)
    }

    /// With `output`, a managed process's stderr lines too: they may carry
    /// whatever the provider printed (paths, URLs with credentials), so
    /// they are for the log and for a gateway nobody else can reach.
    pub fn statuses_with(&self, output: bool) -> Vec<ProviderStatus> {
        self.slots
            .load()
            .iter()
            .map(|s| {
                let (mut state, seen, err) = s.state.lock().expect("state lock").clone();
                let breaker = s.upstream.breaker.state();
                if state == ProviderState::Ready
                    && breaker != crate::southbound::BreakerState::Closed
                {
                    state = ProviderState::Degraded;
                }
                let items = s.items.load();
                let count = |f: fn(&ProviderItems) -> usize| items.as_deref().map_or(0, f);
                let mut process = self.processes.get(s.upstream.name());
                if !output && let Some(p) = &mut process {
                    p.stderr.clear();
                }
                // Why it does not answer comes first: its process is not running.
                let err = match (process.as_ref().and_then(|p| p.summary(output)), err) {
                    (Some(why), Some(e)) => Some(format!("{why} (discovery: {e})")),
                    (why, e) => why.or(e),
                };
                ProviderStatus {
                    name: s.upstream.name().to_string(),
                    endpoint: s.upstream.config.endpoint.clone(),
                    state,
                    breaker,
                    last_seen: seen.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
                    last_error: err,
                    tools: count(|i| i.tools.len()),
                    resources: count(|i| i.resources.len() + i.templates.len()),
                    prompts: count(|i| i.prompts.len()),
                    process,
                }
            })
            .collect()
    }

    /// Managed processes, written by the launcher.
    pub fn processes(&self) -> &SharedProcesses {
        &self.processes
    }

    async fn supervise(&self, slot: Arc<Slot>) {
        let d = self.discovery.load();
        let mut backoff = crate::backoff::Backoff::new(d.retry_interval, d.retry_max);
        drop(d);
        loop {
            let wait = if slot.items.load().is_some() {
                backoff.reset();
                self.discovery.load().refresh_interval
            } else {
                backoff.next_delay()
            };
            tokio::select! {
                _ = slot.stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = slot.poke.notified() => {}
            }
            self.attempt(&slot).await;
        }
    }

    async fn attempt(&self, slot: &Arc<Slot>) {
        let name = slot.upstream.name();
        let known = slot
            .items
            .load()
            .as_ref()
            .map(|it| it.revision.clone())
            .unwrap_or_default();
        let cid = format!("discovery-{}", uuid::Uuid::new_v4());
        match slot.upstream.discover(&known, &cid).await {
            Ok(resp) => {
                slot.slow_checks.store(0, Ordering::Relaxed);
                *slot.down.lock().expect("down lock") = Down::default();
                slot.upstream.breaker.health_passed();
                let was = self.set_state(slot, ProviderState::Ready, None);
                if resp.unchanged && slot.items.load().is_some() {
                    return;
                }
                let (items, warnings) = ProviderItems::compile(resp);
                for w in warnings {
                    tracing::warn!(provider = name, "{w}");
                }
                tracing::info!(
                    provider = name,
                    revision = %items.revision,
                    tools = items.tools.len(),
                    resources = items.resources.len() + items.templates.len(),
                    prompts = items.prompts.len(),
                    "provider {}",
                    if was == ProviderState::Ready { "changed" } else { "ready" }
                );
                slot.items.store(Some(Arc::new(items)));
                slot.generation.fetch_add(1, Ordering::Relaxed);
                // A provider removed by a reload while we asked it must not
                // come back into the catalog.
                if !slot.stop.is_cancelled() {
                    self.rebuild();
                }
            }
            Err(status)
                if is_timeout(&status)
                    && slot.items.load().is_some()
                    && slot.slow_checks.fetch_add(1, Ordering::Relaxed) + 1
                        < SLOW_CHECKS_BEFORE_DOWN =>
            {
                let err = format!("{:?}: {}", status.code(), status.message());
                tracing::warn!(provider = name, error = %err, "provider slow to answer its health check; still serving it");
                self.set_state(slot, ProviderState::Degraded, Some(err));
            }
            Err(status) => {
                let err = format!(
                    "{:?}: {}",
                    status.code(),
                    crate::southbound::describe_status(&status, &slot.upstream.config)
                );
                self.set_state(slot, ProviderState::Down, Some(err.clone()));
                let had = slot.items.swap(None);
                let had_items = had.is_some();
                if had_items {
                    slot.last_items.store(had);
                }
                self.log_down(slot, &err);
                if had_items {
                    self.rebuild();
                }
            }
        }
    }

    /// Logs a failure when it is new or has changed, and reminds while it
    /// lasts ([`FIRST_REMINDER`]): neither silence nor a line per retry.
    fn log_down(&self, slot: &Slot, err: &str) {
        let name = slot.upstream.name();
        let endpoint = slot.upstream.config.endpoint.as_str();
        if let Some(p) = self.processes.get(name)
            && p.running_for() < STARTUP_GRACE
        {
            tracing::debug!(
                provider = name,
                endpoint,
                error = err,
                "managed provider not answering yet"
            );
            return;
        }
        let retry_max = humantime::format_duration(self.discovery.load().retry_max).to_string();
        let mut guard = slot.down.lock().expect("down lock");
        let down = &mut *guard;
        down.attempts += 1;
        let attempts = down.attempts;
        let now = std::time::Instant::now();
        match &mut down.logged {
            Some((logged, since, next_at, remind)) if logged == err => {
                if now >= *next_at {
                    let down_for = humantime::format_duration(Duration::from_secs(
                        now.duration_since(*since).as_secs(),
                    ))
                    .to_string();
                    *remind = (*remind * 2).min(LAST_REMINDER);
                    *next_at = now + *remind;
                    tracing::warn!(
                        provider = name,
                        endpoint,
                        error = err,
                        attempts,
                        down_for,
                        retry_max,
                        "provider still unavailable; discovery keeps retrying"
                    );
                }
            }
            _ => {
                tracing::warn!(
                    provider = name,
                    endpoint,
                    error = err,
                    retry_max,
                    "provider unavailable; its items are left out, and discovery retries it (backing off to every {retry_max})"
                );
                down.attempts = 1;
                down.logged = Some((err.to_string(), now, now + FIRST_REMINDER, FIRST_REMINDER));
            }
        }
    }

    /// Sets the state and returns the previous one.
    fn set_state(&self, slot: &Slot, state: ProviderState, err: Option<String>) -> ProviderState {
        let mut s = slot.state.lock().expect("state lock");
        let was = s.0;
        s.0 = state;
        if state == ProviderState::Ready {
            s.1 = Some(SystemTime::now());
        }
        s.2 = err;
        was
    }

    fn rebuild(&self) {
        let _serial = self.rebuild.lock().expect("rebuild lock");
        let slots = self.slots.load();
        let live: Vec<_> = slots
            .iter()
            .filter_map(|s| s.items.load_full().map(|it| (s.upstream.clone(), it)))
            .collect();
        let down: Vec<_> = slots
            .iter()
            .filter(|s| s.items.load().is_none())
            .filter_map(|s| s.last_items.load_full().map(|it| (s.upstream.clone(), it)))
            .collect();
        let new = Arc::new(Catalog::build(&live, &down, &self.naming.load()));
        let old = self.catalog.swap(new.clone());
        let changes = new.changes_since(&old);
        if changes.any() {
            // No receivers is fine: nobody is listening yet.
            let _ = self.changes.send(changes);
        }
    }
}

impl Slot {
    fn new(
        config: crate::config::ProviderConfig,
        max_payload: usize,
        base_dir: &std::path::Path,
        stop: &CancellationToken,
    ) -> Result<Arc<Self>, crate::southbound::UpstreamError> {
        Ok(Arc::new(Slot {
            upstream: Upstream::new(config, max_payload, base_dir)?,
            items: ArcSwapOption::empty(),
            last_items: ArcSwapOption::empty(),
            state: Mutex::new((ProviderState::Connecting, None, None)),
            poke: Notify::new(),
            generation: AtomicU64::new(0),
            stop: stop.child_token(),
            slow_checks: std::sync::atomic::AtomicU32::new(0),
            down: Mutex::default(),
        }))
    }
}

/// A check that ran out of time (as opposed to finding the provider gone).
fn is_timeout(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::DeadlineExceeded
        || (status.code() == tonic::Code::Cancelled && status.message().contains("Timeout expired"))
}
