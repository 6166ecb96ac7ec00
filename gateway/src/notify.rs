//! Who to tell when the catalog changes or an event arrives: 2025-11-25
//! session peers (with their `resources/subscribe` URIs and log level), and
//! 2026-07-28 `subscriptions/listen` streams.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

#[allow(deprecated)] // logging is deprecated in rmcp, still valid for 2025-11-25
use rmcp::model::{
    LoggingLevel, LoggingMessageNotificationParam, ResourceUpdatedNotificationParam,
};
use rmcp::{Peer, RoleServer, service::SubscriptionSink};
use tokio::sync::broadcast;

use crate::{catalog::ListChanges, dispatch::Visibility};
use mcp_gateway_proto::provider as pb;

/// One slow client must not hold up the others.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// What one 2025-11-25 session asked for.
#[derive(Debug, Default)]
pub struct SessionState {
    uris: Mutex<HashSet<String>>,
    /// Minimum `notifications/message` severity (rank). None: the session
    /// never asked (`logging/setLevel`), so it gets no log messages.
    log_level: Mutex<Option<u8>>,
    /// A log message is on its way: the next one is dropped rather than
    /// queued, so a client that does not read cannot grow the gateway.
    log_busy: std::sync::atomic::AtomicBool,
    /// Who the session's latest request came from, for event filtering.
    caller: Mutex<Option<pb::Caller>>,
}

impl SessionState {
    pub fn set_caller(&self, caller: &pb::Caller) {
        let mut c = self.caller.lock().expect("caller lock");
        if c.as_ref() != Some(caller) {
            *c = Some(caller.clone());
        }
    }

    fn caller(&self) -> pb::Caller {
        self.caller
            .lock()
            .expect("caller lock")
            .clone()
            .unwrap_or_else(|| pb::Caller {
                principal: "anonymous".into(),
                ..Default::default()
            })
    }

    pub fn subscribe(&self, uri: &str) {
        self.uris.lock().expect("uris lock").insert(uri.to_string());
    }

    pub fn unsubscribe(&self, uri: &str) {
        self.uris.lock().expect("uris lock").remove(uri);
    }

    fn wants(&self, uri: &str) -> bool {
        self.uris.lock().expect("uris lock").contains(uri)
    }

    #[allow(deprecated)]
    pub fn set_log_level(&self, level: LoggingLevel) {
        *self.log_level.lock().expect("level lock") = Some(rank(level));
    }

    #[allow(deprecated)]
    fn logs(&self, level: LoggingLevel) -> bool {
        self.log_level
            .lock()
            .expect("level lock")
            .is_some_and(|min| rank(level) >= min)
    }
}

#[allow(deprecated)]
fn rank(level: LoggingLevel) -> u8 {
    level as u8
}

struct PeerEntry {
    peer: Peer<RoleServer>,
    state: Arc<SessionState>,
}

pub struct Notifier {
    peers: Mutex<Vec<PeerEntry>>,
    /// 2026-07-28 listen streams, with who opened them.
    sinks: Mutex<HashMap<u64, (SubscriptionSink, pb::Caller)>>,
    next: AtomicU64,
    /// Who may be told what: the dispatcher's own.
    visibility: Arc<Visibility>,
}

impl Notifier {
    pub fn new(visibility: Arc<Visibility>) -> Self {
        Self {
            peers: Mutex::default(),
            sinks: Mutex::default(),
            next: AtomicU64::default(),
            visibility,
        }
    }

    pub fn add_peer(&self, peer: Peer<RoleServer>, state: Arc<SessionState>) {
        let mut peers = self.peers.lock().expect("peers lock");
        peers.retain(|p| !p.peer.is_transport_closed());
        peers.push(PeerEntry { peer, state });
    }

    /// Live peers for which `want` holds.
    fn live_peers(&self, want: impl Fn(&SessionState) -> bool) -> Vec<Peer<RoleServer>> {
        self.live_sessions(want)
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    fn live_sessions(
        &self,
        want: impl Fn(&SessionState) -> bool,
    ) -> Vec<(Peer<RoleServer>, Arc<SessionState>)> {
        let mut peers = self.peers.lock().expect("peers lock");
        peers.retain(|p| !p.peer.is_transport_closed());
        peers
            .iter()
            .filter(|p| want(&p.state))
            .map(|p| (p.peer.clone(), p.state.clone()))
            .collect()
    }

    fn all_sinks(&self) -> Vec<SubscriptionSink> {
        let sinks = self.sinks.lock().expect("sinks lock");
        sinks.values().map(|(s, _)| s.clone()).collect()
    }

    /// Listen streams whose opener may see resource `uri`.
    fn sinks_seeing(&self, uri: &str) -> Vec<SubscriptionSink> {
        let sinks = self.sinks.lock().expect("sinks lock");
        sinks
            .values()
            .filter(|(_, caller)| self.visibility.sees_uri(caller, uri))
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// `notifications/resources/updated` for a client-side URI: to sessions
    /// that subscribed to it and to listen streams whose filter names it.
    pub fn resource_updated(&self, uri: &str) {
        // The policy is asked again: it may have hidden the URI since the
        // session subscribed (a reload, or a provider that appeared later).
        let sees = |s: &SessionState| self.visibility.sees_uri(&s.caller(), uri);
        for peer in self.live_peers(|s| s.wants(uri) && sees(s)) {
            let p = ResourceUpdatedNotificationParam::new(uri);
            tokio::spawn(async move {
                match tokio::time::timeout(SEND_TIMEOUT, peer.notify_resource_updated(p)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!(error = %e, "resource update not delivered"),
                    Err(_) => tracing::debug!("resource update delivery timed out"),
                }
            });
        }
        for sink in self.sinks_seeing(uri) {
            let wanted = sink
                .accepted()
                .resource_subscriptions
                .as_ref()
                .is_some_and(|u| u.iter().any(|u| u == uri));
            if !wanted {
                continue;
            }
            let uri = uri.to_string();
            tokio::spawn(async move {
                if let Ok(Err(e)) =
                    tokio::time::timeout(SEND_TIMEOUT, sink.notify_resource_updated(uri)).await
                {
                    tracing::debug!(error = %e, "resource update not delivered to subscription");
                }
            });
        }
    }

    /// `notifications/message` to 2025-11-25 sessions (2026-07-28 has no
    /// logging on listen streams; they can read `events://recent`).
    #[allow(deprecated)]
    pub fn log(&self, param: LoggingMessageNotificationParam, provider: Option<&str>) {
        let visible = |s: &SessionState| {
            provider.is_none_or(|p| self.visibility.sees_provider(&s.caller(), p))
        };
        for (peer, state) in self.live_sessions(|s| s.logs(param.level) && visible(s)) {
            if state.log_busy.swap(true, Ordering::AcqRel) {
                metrics::counter!("mcp_gateway_log_messages_dropped_total").increment(1);
                continue;
            }
            let p = param.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(SEND_TIMEOUT, peer.notify_logging_message(p)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!(error = %e, "log message not delivered"),
                    Err(_) => tracing::debug!("log message delivery timed out"),
                }
                state.log_busy.store(false, Ordering::Release);
            });
        }
    }

    pub fn add_sink(&self, sink: SubscriptionSink, caller: pb::Caller) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.sinks
            .lock()
            .expect("sinks lock")
            .insert(id, (sink, caller));
        id
    }

    pub fn remove_sink(&self, id: u64) {
        self.sinks.lock().expect("sinks lock").remove(&id);
    }

    /// Live sessions plus open subscriptions.
    pub fn count(&self) -> usize {
        self.live_peers(|_| true).len() + self.sinks.lock().expect("sinks lock").len()
    }

    /// Forwards catalog changes to every client until the registry goes away.
    pub fn spawn_forwarder(self: &Arc<Self>, mut rx: broadcast::Receiver<ListChanges>) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(changes) => this.notify(changes),
                    // Missed some: tell everyone everything changed.
                    Err(broadcast::error::RecvError::Lagged(_)) => this.notify_all_lists(),
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// Every list may have changed for every session (e.g. a new policy).
    pub fn notify_all_lists(&self) {
        self.notify(ListChanges {
            tools: true,
            prompts: true,
            resources: true,
        });
    }

    fn notify(&self, ch: ListChanges) {
        for peer in self.live_peers(|_| true) {
            tokio::spawn(async move {
                let send = async {
                    if ch.tools {
                        peer.notify_tool_list_changed().await?;
                    }
                    if ch.prompts {
                        peer.notify_prompt_list_changed().await?;
                    }
                    if ch.resources {
                        peer.notify_resource_list_changed().await?;
                    }
                    Ok::<_, rmcp::service::ServiceError>(())
                };
                match tokio::time::timeout(SEND_TIMEOUT, send).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!(error = %e, "list_changed not delivered"),
                    Err(_) => tracing::debug!("list_changed delivery timed out"),
                }
            });
        }
        for sink in self.all_sinks() {
            tokio::spawn(async move {
                let send = async {
                    if ch.tools {
                        sink.notify_tool_list_changed().await?;
                    }
                    if ch.prompts {
                        sink.notify_prompt_list_changed().await?;
                    }
                    if ch.resources {
                        sink.notify_resource_list_changed().await?;
                    }
                    Ok::<_, rmcp::service::SubscriptionSendError>(())
                };
                if let Ok(Err(e)) = tokio::time::timeout(SEND_TIMEOUT, send).await {
                    tracing::debug!(error = %e, "list_changed not delivered to subscription");
                }
            });
        }
    }
}
