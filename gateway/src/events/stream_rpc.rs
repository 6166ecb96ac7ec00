//! The embedded event source: each live provider's `Stream` RPC, used when
//! NATS is not configured. Best effort: events sent while no stream is open
//! are lost (NATS is the durable path).

use std::{sync::Arc, sync::atomic::Ordering};

use tonic::Code;

use super::{Events, cloudevent, reconnect_backoff};
use crate::{pipeline::registry::ProviderState, southbound::Upstream};

pub(super) fn spawn_all(events: &Arc<Events>) {
    for up in events.registry.upstreams() {
        tokio::spawn(run(events.clone(), up));
    }
}

/// Subscribes while the provider is up and resubscribes after a disconnect.
/// UNIMPLEMENTED means "no events": wait until the provider is rediscovered.
pub(super) async fn run(events: Arc<Events>, up: Arc<Upstream>) {
    let name = up.name().to_string();
    let mut gave_up_at = None;
    let mut backoff = reconnect_backoff();
    loop {
        // Removed or replaced by a config reload: its successor has its own task.
        if !events
            .registry
            .upstream(&name)
            .is_some_and(|current| Arc::ptr_eq(&current, &up))
        {
            return;
        }
        let (state, generation) = events
            .registry
            .generation(&name)
            .unwrap_or((ProviderState::Down, 0));
        let wait = if state != ProviderState::Ready || gave_up_at == Some(generation) {
            events.registry.retry_interval()
        } else {
            match up.stream(&format!("events-{}", uuid::Uuid::new_v4())).await {
                Ok(stream) => {
                    tracing::info!(provider = %name, "subscribed to provider events");
                    backoff.reset();
                    read(&events, &name, stream).await;
                    backoff.next_delay()
                }
                Err(status) if status.code() == Code::Unimplemented => {
                    tracing::debug!(provider = %name, "provider publishes no events");
                    gave_up_at = Some(generation);
                    continue;
                }
                Err(status) => {
                    tracing::debug!(provider = %name, error = %status, "event stream failed");
                    backoff.next_delay()
                }
            }
        };
        tokio::select! {
            _ = events.stop.cancelled() => return,
            _ = events.registry.stopped() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn read(
    events: &Events,
    name: &str,
    mut stream: crate::southbound::Streaming<mcp_gateway_proto::cloudevents::CloudEvent>,
) {
    events.counters.streams_open.fetch_add(1, Ordering::Relaxed);
    loop {
        let item = tokio::select! {
            biased;
            _ = events.stop.cancelled() => break,
            item = stream.message() => item,
        };
        match item {
            Ok(Some(pb)) => {
                events.counters.received.fetch_add(1, Ordering::Relaxed);
                match cloudevent::from_proto(pb) {
                    Ok(ev) => {
                        events.handle(ev, Some(name));
                    }
                    Err(reason) => events.malformed(&reason, name),
                }
            }
            Ok(None) => {
                tracing::info!(provider = %name, "provider ended its event stream");
                break;
            }
            Err(status) => {
                tracing::info!(provider = %name, error = %status, "provider event stream lost; resubscribing");
                break;
            }
        }
    }
    events.counters.streams_open.fetch_sub(1, Ordering::Relaxed);
}
