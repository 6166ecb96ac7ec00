//! Who to tell when the catalog changes: 2025-11-25 session peers, and
//! 2026-07-28 `subscriptions/listen` streams.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rmcp::{Peer, RoleServer, service::SubscriptionSink};
use tokio::sync::broadcast;

use crate::upstream::ListChanges;

/// One slow client must not hold up the others.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Sessions {
    peers: Mutex<Vec<Peer<RoleServer>>>,
    sinks: Mutex<HashMap<u64, SubscriptionSink>>,
    next: AtomicU64,
}

impl Sessions {
    pub fn add_peer(&self, peer: Peer<RoleServer>) {
        let mut peers = self.peers.lock().expect("peers lock");
        peers.retain(|p| !p.is_transport_closed());
        peers.push(peer);
    }

    pub fn add_sink(&self, sink: SubscriptionSink) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.sinks.lock().expect("sinks lock").insert(id, sink);
        id
    }

    pub fn remove_sink(&self, id: u64) {
        self.sinks.lock().expect("sinks lock").remove(&id);
    }

    /// Live sessions plus open subscriptions.
    pub fn count(&self) -> usize {
        let mut peers = self.peers.lock().expect("peers lock");
        peers.retain(|p| !p.is_transport_closed());
        peers.len() + self.sinks.lock().expect("sinks lock").len()
    }

    /// Forwards catalog changes to every client until the registry goes away.
    pub fn spawn_forwarder(self: &Arc<Self>, mut rx: broadcast::Receiver<ListChanges>) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(changes) => this.notify(changes),
                    // Missed some: tell everyone everything changed.
                    Err(broadcast::error::RecvError::Lagged(_)) => this.notify(ListChanges {
                        tools: true,
                        prompts: true,
                        resources: true,
                    }),
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    fn notify(&self, ch: ListChanges) {
        let peers: Vec<_> = {
            let mut peers = self.peers.lock().expect("peers lock");
            peers.retain(|p| !p.is_transport_closed());
            peers.clone()
        };
        for peer in peers {
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
        let sinks: Vec<_> = self
            .sinks
            .lock()
            .expect("sinks lock")
            .values()
            .cloned()
            .collect();
        for sink in sinks {
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
