//! Who to tell when the catalog changes or an event arrives: 2025-11-25
//! sessions (with their `resources/subscribe` URIs and log level), and
//! 2026-07-28 `subscriptions/listen` streams. Messages are serialized here
//! once and handed to each client's [`Outbox`] as bytes; a client that does
//! not read loses messages rather than growing the gateway.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
#[allow(deprecated)] // logging is deprecated in rmcp, still valid for 2025-11-25
use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::{
    pipeline::catalog::ListChanges, pipeline::dispatch::Visibility, security::policy::Kind,
};
use mcp_gateway_proto::provider as pb;

/// Messages kept for a session's stream: replayed on reconnection
/// (`Last-Event-ID`) and delivered when a stream opens after they were sent.
const KEPT: usize = 64;
/// Messages in flight to one stream before further ones are dropped.
const STREAM_QUEUE: usize = 64;

/// Where one client's server-initiated messages go: a live stream when one
/// is attached, and the last few messages, numbered, for replay.
#[derive(Default)]
pub struct Outbox {
    inner: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    next: u64,
    kept: VecDeque<(u64, Bytes)>,
    /// The newest message a stream took.
    delivered: u64,
    live: Option<mpsc::Sender<(u64, Bytes)>>,
    /// Which attach `live` belongs to.
    generation: u64,
}

/// A stream attached to an [`Outbox`]: where it resumes from, and its
/// messages.
pub struct Attached {
    /// The id the stream starts after (its priming event carries it, so a
    /// reconnection resumes exactly there).
    pub from: u64,
    pub generation: u64,
    pub rx: mpsc::Receiver<(u64, Bytes)>,
}

/// Subscriptions one session may hold, and the longest URI it may name.
pub const MAX_SUBSCRIPTIONS: usize = 1024;
pub const MAX_URI_BYTES: usize = 4096;

impl Outbox {
    /// Queues `message`; `false` when it was dropped (a full stream).
    pub fn push(&self, message: Bytes) -> bool {
        let mut r = self.inner.lock().expect("outbox");
        r.next += 1;
        let id = r.next;
        if r.kept.len() == KEPT {
            r.kept.pop_front();
        }
        r.kept.push_back((id, message.clone()));
        let Some(live) = &r.live else { return true };
        match live.try_send((id, message)) {
            Ok(()) => {
                r.delivered = id;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                r.live = None;
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("mcp_gateway_notifications_dropped_total").increment(1);
                false
            }
        }
    }

    /// Attaches a new stream (replacing any other): first the kept messages
    /// after `after` (default: those no stream took yet), then live ones.
    pub fn attach(&self, after: Option<u64>) -> Attached {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE + KEPT);
        let mut r = self.inner.lock().expect("outbox");
        let from = after.unwrap_or(r.delivered);
        for (id, m) in r.kept.iter().filter(|(id, _)| *id > from) {
            let _ = tx.try_send((*id, m.clone()));
        }
        r.delivered = r.next;
        r.live = Some(tx);
        r.generation += 1;
        Attached {
            from,
            generation: r.generation,
            rx,
        }
    }

    /// Ends the stream of attach `generation`, unless a newer one replaced it.
    pub fn detach(&self, generation: u64) -> bool {
        let mut r = self.inner.lock().expect("outbox");
        if r.generation != generation {
            return false;
        }
        r.live = None;
        true
    }
}

/// Resource subscriptions held by the sessions of this process, and
/// sessions that asked for log messages. While one is zero, an event needs
/// no look at the sessions, however many there are. Process-wide: more
/// gateways in one process only make that look happen more often.
static SUBSCRIBED: AtomicUsize = AtomicUsize::new(0);
static LOGGING: AtomicUsize = AtomicUsize::new(0);

/// No `logging/setLevel` yet.
const NO_LEVEL: u8 = u8::MAX;

/// What one 2025-11-25 session asked for, and where its messages go.
pub struct SessionState {
    uris: Mutex<HashSet<String>>,
    /// Minimum `notifications/message` severity (rank), or [`NO_LEVEL`]:
    /// the session never asked (`logging/setLevel`), so it gets no log
    /// messages. An atomic: every `tools/call` reads it.
    log_level: AtomicU8,
    /// Who the session's latest request came from, for event filtering.
    caller: Mutex<Option<pb::Caller>>,
    pub outbox: Outbox,
}

impl Default for SessionState {
    fn default() -> Self {
        Self {
            uris: Mutex::default(),
            log_level: AtomicU8::new(NO_LEVEL),
            caller: Mutex::default(),
            outbox: Outbox::default(),
        }
    }
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

    /// `false` when the session holds [`MAX_SUBSCRIPTIONS`] already.
    pub fn subscribe(&self, uri: &str) -> bool {
        let mut uris = self.uris.lock().expect("uris lock");
        if uris.len() >= MAX_SUBSCRIPTIONS && !uris.contains(uri) {
            return false;
        }
        if uris.insert(uri.to_string()) {
            SUBSCRIBED.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    pub fn unsubscribe(&self, uri: &str) {
        if self.uris.lock().expect("uris lock").remove(uri) {
            SUBSCRIBED.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn wants(&self, uri: &str) -> bool {
        self.uris.lock().expect("uris lock").contains(uri)
    }

    #[allow(deprecated)]
    pub fn set_log_level(&self, level: LoggingLevel) {
        if self.log_level.swap(level as u8, Ordering::Relaxed) == NO_LEVEL {
            LOGGING.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The least severe level the session asked for (`logging/setLevel`),
    /// as a rank (`LoggingLevel as u8`); `None` if it never asked.
    pub fn log_rank(&self) -> Option<u8> {
        let rank = self.log_level.load(Ordering::Relaxed);
        (rank != NO_LEVEL).then_some(rank)
    }

    #[allow(deprecated)]
    fn logs(&self, level: LoggingLevel) -> bool {
        self.log_rank().is_some_and(|min| level as u8 >= min)
    }
}

impl Drop for SessionState {
    fn drop(&mut self) {
        let uris = self
            .uris
            .get_mut()
            .map_or_else(|e| e.into_inner().len(), |u| u.len());
        SUBSCRIBED.fetch_sub(uris, Ordering::Relaxed);
        if *self.log_level.get_mut() != NO_LEVEL {
            LOGGING.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What a 2026-07-28 `subscriptions/listen` stream accepted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub tools: bool,
    pub prompts: bool,
    pub resources: bool,
    pub uris: Vec<String>,
}

struct Listener {
    filter: Filter,
    principal: String,
    caller: pb::Caller,
    /// The listen request's id, raw JSON: `_meta.subscriptionId`.
    id: Box<serde_json::value::RawValue>,
    tx: mpsc::Sender<Bytes>,
}

pub struct Notifier {
    sessions: Mutex<Vec<Weak<SessionState>>>,
    listeners: Mutex<HashMap<u64, Listener>>,
    next: AtomicU64,
    /// Who may be told what: the dispatcher's own.
    visibility: Arc<Visibility>,
    /// Open listen streams at most, in all and per principal (the session
    /// limits: a listen stream is what a 2026-07-28 client holds instead).
    max_listeners: usize,
    max_listeners_per_principal: usize,
}

/// A JSON-RPC notification, serialized.
pub(crate) fn notification(method: &str, params: Value) -> Bytes {
    let m = if params.is_null() {
        json!({"jsonrpc": "2.0", "method": method})
    } else {
        json!({"jsonrpc": "2.0", "method": method, "params": params})
    };
    Bytes::from(serde_json::to_vec(&m).expect("a notification serializes"))
}

impl Notifier {
    pub fn with_caps(visibility: Arc<Visibility>, max: usize, per_principal: usize) -> Self {
        Self {
            sessions: Mutex::default(),
            listeners: Mutex::default(),
            next: AtomicU64::default(),
            visibility,
            max_listeners: max,
            max_listeners_per_principal: per_principal,
        }
    }

    /// Tells `state` about changes from now on, until it is dropped.
    pub fn add_session(&self, state: &Arc<SessionState>) {
        let mut s = self.sessions.lock().expect("sessions lock");
        s.retain(|w| w.strong_count() > 0);
        s.push(Arc::downgrade(state));
    }

    /// Forgets sessions that ended (and the room they took).
    pub fn prune(&self) {
        let mut s = self.sessions.lock().expect("sessions lock");
        s.retain(|w| w.strong_count() > 0);
        if s.capacity() >= 64 && s.len() < s.capacity() / 4 {
            s.shrink_to_fit();
        }
    }

    fn live_sessions(&self, want: impl Fn(&SessionState) -> bool) -> Vec<Arc<SessionState>> {
        let mut s = self.sessions.lock().expect("sessions lock");
        s.retain(|w| w.strong_count() > 0);
        s.iter()
            .filter_map(Weak::upgrade)
            .filter(|s| want(s))
            .collect()
    }

    /// Registers a listen stream; messages for it go to `tx`. Refused, with
    /// the reason, past the caps.
    pub(crate) fn add_listener(
        &self,
        filter: Filter,
        caller: pb::Caller,
        id: Box<serde_json::value::RawValue>,
        tx: mpsc::Sender<Bytes>,
    ) -> Result<u64, String> {
        let mut listeners = self.listeners.lock().expect("listeners");
        listeners.retain(|_, l| !l.tx.is_closed());
        if listeners.len() >= self.max_listeners {
            return Err(format!(
                "the gateway holds its maximum of {} listen streams (limits.max_sessions)",
                self.max_listeners
            ));
        }
        let held = listeners
            .values()
            .filter(|l| l.principal == caller.principal)
            .count();
        if held >= self.max_listeners_per_principal {
            return Err(format!(
                "principal '{}' holds its maximum of {} listen streams (limits.max_sessions_per_client)",
                caller.principal, self.max_listeners_per_principal
            ));
        }
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let l = Listener {
            filter,
            principal: caller.principal.clone(),
            caller,
            id,
            tx,
        };
        listeners.insert(key, l);
        Ok(key)
    }

    pub fn remove_listener(&self, key: u64) {
        self.listeners.lock().expect("listeners").remove(&key);
    }

    /// Sends to every listener for which `want` holds, with its subscription id.
    fn to_listeners(&self, method: &str, params: Value, want: impl Fn(&Listener) -> bool) {
        let mut listeners = self.listeners.lock().expect("listeners");
        listeners.retain(|_, l| !l.tx.is_closed());
        for l in listeners.values().filter(|l| want(l)) {
            let mut p = params.clone();
            if !p.is_object() {
                p = json!({});
            }
            let id: Value = serde_json::from_str(l.id.get()).unwrap_or(Value::Null);
            p["_meta"] = json!({"io.modelcontextprotocol/subscriptionId": id});
            if l.tx.try_send(notification(method, p)).is_err() {
                metrics::counter!("mcp_gateway_notifications_dropped_total").increment(1);
            }
        }
    }

    /// `notifications/resources/updated` for a client-side URI: to sessions
    /// that subscribed to it and to listen streams whose filter names it.
    pub fn resource_updated(&self, uri: &str) {
        // The policy is asked again: it may have hidden the URI since the
        // session subscribed (a reload, or a provider that appeared later).
        let sees = |c: &pb::Caller| self.visibility.sees_uri(c, uri);
        let params = || json!({"uri": uri});
        let targets = match SUBSCRIBED.load(Ordering::Relaxed) {
            0 => Vec::new(),
            _ => self.live_sessions(|s| s.wants(uri) && sees(&s.caller())),
        };
        if !targets.is_empty() {
            let message = notification("notifications/resources/updated", params());
            for s in targets {
                s.outbox.push(message.clone());
            }
        }
        if !self.listeners.lock().expect("listeners").is_empty() {
            self.to_listeners("notifications/resources/updated", params(), |l| {
                l.filter.uris.iter().any(|u| u == uri) && sees(&l.caller)
            });
        }
    }

    /// `notifications/message` to 2025-11-25 sessions (2026-07-28 has no
    /// logging on listen streams; they can read `events://recent`). `data`
    /// is only built when some session wants the message.
    #[allow(deprecated)]
    pub fn log(
        &self,
        level: LoggingLevel,
        logger: &str,
        provider: Option<&str>,
        data: impl FnOnce() -> Value,
    ) {
        if LOGGING.load(Ordering::Relaxed) == 0 {
            return;
        }
        let visible = |s: &SessionState| {
            provider.is_none_or(|p| self.visibility.sees_provider(&s.caller(), p))
        };
        let targets = self.live_sessions(|s| s.logs(level) && visible(s));
        if targets.is_empty() {
            return;
        }
        let param = LoggingMessageNotificationParam::new(level, data()).with_logger(logger);
        let params = serde_json::to_value(&param).unwrap_or(Value::Null);
        let message = notification("notifications/message", params);
        for s in targets {
            if !s.outbox.push(message.clone()) {
                metrics::counter!("mcp_gateway_log_messages_dropped_total").increment(1);
            }
        }
    }

    /// Live sessions plus open subscriptions.
    pub fn count(&self) -> usize {
        self.live_sessions(|_| true).len() + self.listeners.lock().expect("listeners").len()
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
        self.notify(ListChanges::everything());
    }

    /// Tells each client of the lists in which an item it may see changed.
    fn notify(&self, ch: ListChanges) {
        let v = &self.visibility;
        let kinds = [
            (
                &ch.tools,
                Some(Kind::Tool),
                "notifications/tools/list_changed",
            ),
            (
                &ch.prompts,
                Some(Kind::Prompt),
                "notifications/prompts/list_changed",
            ),
            (&ch.resources, None, "notifications/resources/list_changed"),
        ];
        let sessions = self.live_sessions(|_| true);
        for (i, (items, kind, method)) in kinds.into_iter().enumerate() {
            if !ch.all && items.is_empty() {
                continue;
            }
            let sees = |caller: &pb::Caller| {
                ch.all
                    || items.iter().any(|it| match kind {
                        Some(kind) => v.visible(caller, kind, &it.provider, &it.name),
                        None => v.visible_resource(caller, &it.provider, &it.name),
                    })
            };
            let message = notification(method, Value::Null);
            for s in &sessions {
                if sees(&s.caller()) {
                    s.outbox.push(message.clone());
                }
            }
            self.to_listeners(method, Value::Null, |l| {
                let wants = match i {
                    0 => l.filter.tools,
                    1 => l.filter.prompts,
                    _ => l.filter.resources,
                };
                wants && sees(&l.caller)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outbox_replays_what_no_stream_took_and_resumes_after_an_id() {
        let o = Outbox::default();
        o.push(Bytes::from_static(b"1"));
        o.push(Bytes::from_static(b"2"));
        let mut first = o.attach(None);
        assert_eq!(first.from, 0);
        let rx = &mut first.rx;
        assert_eq!(rx.try_recv().unwrap(), (1, Bytes::from_static(b"1")));
        assert_eq!(rx.try_recv().unwrap(), (2, Bytes::from_static(b"2")));
        o.push(Bytes::from_static(b"3"));
        assert_eq!(rx.try_recv().unwrap().0, 3);
        // Reconnecting after id 1: 2 and 3 again, nothing twice otherwise.
        let mut again = o.attach(Some(1));
        assert_eq!(again.rx.try_recv().unwrap().0, 2);
        assert_eq!(again.rx.try_recv().unwrap().0, 3);
        assert!(again.rx.try_recv().is_err());
        let fresh = o.attach(None);
        assert_eq!(fresh.from, 3, "primed after what was delivered");
        // The replaced streams' guards cannot end the newest one.
        assert!(!o.detach(first.generation));
        assert!(!o.detach(again.generation));
        o.push(Bytes::from_static(b"4"));
        let mut fresh = fresh;
        assert_eq!(fresh.rx.try_recv().unwrap().0, 4);
        assert!(o.detach(fresh.generation));
    }

    #[tokio::test]
    async fn listen_streams_are_capped_in_all_and_per_principal() {
        let config = crate::config::Config::parse("providers: []\n").unwrap();
        let registry = crate::pipeline::registry::Registry::new(&config).unwrap();
        let policy = Arc::new(crate::security::policy::Policy::new(&config.policy));
        let visibility = Arc::new(Visibility::new(registry, policy));
        let n = Notifier::with_caps(visibility, 3, 2);
        let caller = |p: &str| pb::Caller {
            principal: p.into(),
            ..Default::default()
        };
        let id = || serde_json::value::RawValue::from_string("1".into()).unwrap();
        let mut open = Vec::new();
        let listen = |p: &str, open: &mut Vec<mpsc::Receiver<Bytes>>| {
            let (tx, rx) = mpsc::channel(1);
            open.push(rx);
            n.add_listener(Filter::default(), caller(p), id(), tx)
        };
        listen("alice", &mut open).unwrap();
        listen("alice", &mut open).unwrap();
        let refused = listen("alice", &mut open).unwrap_err();
        assert!(
            refused.contains("limits.max_sessions_per_client"),
            "{refused}"
        );
        listen("bob", &mut open).unwrap();
        let refused = listen("carol", &mut open).unwrap_err();
        assert!(refused.contains("limits.max_sessions"), "{refused}");
        // A stream whose client went away frees its place.
        open.remove(0);
        listen("carol", &mut open).unwrap();
    }

    #[test]
    fn subscriptions_are_capped_per_session() {
        let s = SessionState::default();
        for i in 0..MAX_SUBSCRIPTIONS {
            assert!(s.subscribe(&format!("x://{i}")));
        }
        assert!(!s.subscribe("x://one-more"));
        assert!(s.subscribe("x://0"), "one it holds is no more");
        s.unsubscribe("x://0");
        assert!(s.subscribe("x://one-more"));
    }

    #[test]
    fn a_stream_that_does_not_read_loses_messages_instead_of_growing() {
        let o = Outbox::default();
        let _attached = o.attach(None);
        let sent = (0..STREAM_QUEUE + KEPT + 10)
            .filter(|_| o.push(Bytes::from_static(b"x")))
            .count();
        assert_eq!(sent, STREAM_QUEUE + KEPT);
        assert_eq!(o.inner.lock().unwrap().kept.len(), KEPT);
    }
}
