//! Events in, MCP notifications out (docs/events.md).
//!
//! Two sources feed one pipeline: NATS JetStream when `events.nats` is
//! configured (durable, replays after restarts), otherwise each live
//! provider's `Stream` RPC. Every event is deduplicated by `source` + `id`,
//! then turned into `notifications/resources/updated`, a provider
//! re-discovery, or a log message, and kept in the `events://recent` ring.

mod cloudevent;
pub mod config;
mod dedup;
mod nats;

mod stream_rpc;

pub use cloudevent::Malformed;
pub use config::{EventsConfig, NatsConfig};

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use cloudevents::{AttributesReader, Event};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::{pipeline::notify::Notifier, pipeline::registry::Registry};

/// `subject` is the provider's resource URI → `notifications/resources/updated`.
pub const RESOURCE_UPDATED: &str = "io.mcp-gateway.resource.updated";
/// The provider's tools/resources/prompts changed → re-discovery.
pub const CAPABILITIES_CHANGED: &str = "io.mcp-gateway.capabilities.changed";
/// The resource holding the most recent events.
pub const RECENT_URI: &str = "events://recent";
/// Provider events carry `source: /providers/{name}`.
pub const PROVIDER_SOURCE_PREFIX: &str = "/providers/";

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error(transparent)]
    Nats(#[from] crate::nats::NatsError),
    #[error("JetStream {what}: {reason}")]
    JetStream { what: &'static str, reason: String },
    #[error("the JetStream message stream ended")]
    Ended,
}

/// Where the NATS consumer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NatsState {
    /// No `events.nats`: events come from the providers' `Stream` RPC.
    Disabled,
    Connecting,
    Connected,
    /// Lost or never reached; retried with backoff.
    Disconnected,
}

/// Counters for `/ready` (and a future `/metrics`). Monotonic except gauges.
#[derive(Debug, Default)]
pub struct EventCounters {
    pub received: AtomicU64,
    pub handled: AtomicU64,
    pub duplicates: AtomicU64,
    pub malformed: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub acked: AtomicU64,
    pub ack_failures: AtomicU64,
    pub nats_connects: AtomicU64,
    /// Gauge: `Stream` RPCs currently open.
    pub streams_open: AtomicU64,
    /// Gauge: JetStream consumer lag, as of the last message delivered.
    pub nats_pending: AtomicU64,
}

/// A point-in-time view of the pipeline. Never contains credentials.
#[derive(Debug, Clone, Serialize)]
pub struct EventStats {
    pub source: &'static str,
    pub nats: NatsState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_error: Option<String>,
    pub received: u64,
    pub handled: u64,
    pub duplicates: u64,
    pub malformed: u64,
    pub dead_lettered: u64,
    pub acked: u64,
    pub ack_failures: u64,
    pub nats_connects: u64,
    pub streams_open: u64,
}

/// Whether an event went through the pipeline or was a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Handled,
    Duplicate,
}

pub struct Events {
    config: EventsConfig,
    registry: Arc<Registry>,
    sessions: Arc<Notifier>,
    /// `source` + `id` seen recently.
    seen: dedup::Seen,
    /// Kept as received; turned into JSON only when `events://recent` is read.
    recent: Mutex<VecDeque<Recent>>,
    counters: EventCounters,
    nats: Mutex<(NatsState, Option<String>)>,
    stop: CancellationToken,
}

impl Events {
    pub fn new(
        config: EventsConfig,
        registry: Arc<Registry>,
        sessions: Arc<Notifier>,
    ) -> Arc<Self> {
        let seen = dedup::Seen::new(config.dedup_window, config.dedup_capacity as usize);
        let state = if config.nats.is_some() {
            NatsState::Connecting
        } else {
            NatsState::Disabled
        };
        Arc::new(Self {
            recent: Mutex::new(VecDeque::with_capacity(config.recent)),
            config,
            registry,
            sessions,
            seen,
            counters: EventCounters::default(),
            nats: Mutex::new((state, None)),
            stop: CancellationToken::new(),
        })
    }

    /// Starts the NATS consumer, or a `Stream` subscriber per provider.
    pub fn start(self: &Arc<Self>) {
        match self.config.nats.clone() {
            Some(cfg) => {
                tokio::spawn(nats::run(self.clone(), cfg));
            }
            None => stream_rpc::spawn_all(self),
        }
    }

    /// Follows a provider added or replaced by a config reload (the
    /// `Stream` path only; NATS subjects do not depend on providers).
    pub fn watch_provider(self: &Arc<Self>, up: Arc<crate::southbound::Upstream>) {
        if self.config.nats.is_none() {
            tokio::spawn(stream_rpc::run(self.clone(), up));
        }
    }

    /// Cancelled when the pipeline stops; other NATS users stop with it.
    pub fn stop_token(&self) -> tokio_util::sync::CancellationToken {
        self.stop.clone()
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }

    pub fn counters(&self) -> &EventCounters {
        &self.counters
    }

    pub fn stats(&self) -> EventStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (nats, nats_error) = self.nats.lock().expect("nats lock").clone();
        EventStats {
            source: if self.config.nats.is_some() {
                "nats"
            } else {
                "stream_rpc"
            },
            nats,
            nats_error,
            received: get(&c.received),
            handled: get(&c.handled),
            duplicates: get(&c.duplicates),
            malformed: get(&c.malformed),
            dead_lettered: get(&c.dead_lettered),
            acked: get(&c.acked),
            ack_failures: get(&c.ack_failures),
            nats_connects: get(&c.nats_connects),
            streams_open: get(&c.streams_open),
        }
    }

    /// The `events://recent` body: a JSON array, oldest first.
    pub fn recent_json(&self) -> String {
        let recent = self.recent.lock().expect("recent lock");
        let records: Vec<serde_json::Value> = recent.iter().map(Recent::record).collect();
        serde_json::to_string_pretty(&records).unwrap_or_else(|_| "[]".into())
    }

    fn set_nats(&self, state: NatsState, error: Option<String>) {
        *self.nats.lock().expect("nats lock") = (state, error);
    }

    /// Counts and logs an event that could not be parsed.
    fn malformed(&self, reason: &Malformed, origin: &str) {
        self.counters.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(origin, reason = %reason, "malformed event dropped");
    }

    /// Runs one well-formed event through the pipeline. `provider` is known
    /// for the `Stream` RPC; for NATS it comes from `source`.
    pub fn handle(&self, ev: Event, provider: Option<&str>) -> Outcome {
        if !self.seen.first(ev.source().as_str(), ev.id()) {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(source = %ev.source(), id = ev.id(), "duplicate event dropped");
            return Outcome::Duplicate;
        }
        let provider = provider
            .map(str::to_string)
            .or_else(|| provider_of_source(ev.source().as_str()));
        let subject = self.deliver(&ev, provider.as_deref());
        self.counters.handled.fetch_add(1, Ordering::Relaxed);
        self.remember(Recent {
            ev,
            provider,
            subject,
        });
        Outcome::Handled
    }

    /// Turns the event into MCP effects; returns the client-side subject of
    /// a resource update.
    fn deliver(&self, ev: &Event, provider: Option<&str>) -> Option<String> {
        match (ev.ty(), ev.subject()) {
            (RESOURCE_UPDATED, Some(uri)) => {
                let uri = match provider {
                    Some(p) => self.registry.catalog().client_uri(p, uri),
                    None => uri.to_string(),
                };
                tracing::debug!(uri, "resource updated");
                self.sessions.resource_updated(&uri);
                Some(uri)
            }
            (CAPABILITIES_CHANGED, _) if provider.is_some() => {
                let p = provider.unwrap_or_default();
                tracing::info!(provider = p, "capabilities changed; re-discovering");
                self.registry.poke(p);
                None
            }
            _ => {
                #[allow(deprecated)] // logging is still valid for 2025-11-25
                self.sessions.log(
                    rmcp::model::LoggingLevel::Info,
                    provider.unwrap_or("events"),
                    provider,
                    || record(ev, provider, None),
                );
                None
            }
        }
    }

    fn remember(&self, entry: Recent) {
        {
            let mut recent = self.recent.lock().expect("recent lock");
            if recent.len() == self.config.recent {
                recent.pop_front();
            }
            recent.push_back(entry);
        }
        self.sessions.resource_updated(RECENT_URI);
    }
}

/// One `events://recent` entry, as received.
struct Recent {
    ev: Event,
    provider: Option<String>,
    /// The client-side URI of a resource update.
    subject: Option<String>,
}

impl Recent {
    fn record(&self) -> serde_json::Value {
        record(&self.ev, self.provider.as_deref(), self.subject.as_deref())
    }
}

/// An event as clients see it (`events://recent`, log messages).
fn record(ev: &Event, provider: Option<&str>, subject: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "id": ev.id(),
        "source": ev.source().as_str(),
        "type": ev.ty(),
        "subject": subject.or(ev.subject()),
        "time": ev.time().map(|t| t.to_rfc3339()),
        "provider": provider,
        "data": cloudevent::data_json(ev),
    })
}

/// `/providers/{name}` → `name`.
fn provider_of_source(source: &str) -> Option<String> {
    let name = source.strip_prefix(PROVIDER_SOURCE_PREFIX)?;
    crate::config::valid_provider_name(name).then(|| name.to_string())
}

/// Reconnect waits: 100 ms doubling up to 5 s.
fn reconnect_backoff() -> crate::backoff::Backoff {
    crate::backoff::Backoff::new(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(5),
    )
}
