//! 2025-11-25 sessions: who owns each one, what it holds, and how many
//! there may be.
//! - A session id is 256 random bits, and belongs to the principal (under
//!   the auth mode) whose `initialize` opened it: anyone else presenting it
//!   gets the same 404 as for an id that never existed.
//! - Sessions are capped globally and per principal (per client address
//!   when auth is off), with a 503 past the cap.
//! - A session idle for longer than `limits.session_idle_timeout` ends; an
//!   open stream counts as activity.
//! - What a session holds is small: its owner, its subscriptions and log
//!   level, a short replay buffer, and the calls it has in flight.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::pipeline::notify::{Notifier, SessionState};
use crate::security::auth::{AuthMode, Identity};

/// Who may use a session: the principal and the auth mode it came in under
/// (and the client address, which the per-client cap counts when auth is off).
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    mode: AuthMode,
    principal: String,
    client: Option<IpAddr>,
}

impl Owner {
    pub(crate) fn new(mode: AuthMode, id: &Identity, client: Option<IpAddr>) -> Self {
        Self {
            mode,
            principal: id.principal.clone(),
            client,
        }
    }

    /// What the per-client cap counts: the principal, or the client address
    /// when auth is off (everyone is `anonymous` then). Made when a session
    /// opens or ends, not on every request that names one.
    fn quota(&self) -> String {
        match (self.mode, self.client) {
            (AuthMode::None, Some(ip)) => format!("address {ip}"),
            _ => format!("principal '{}'", self.principal),
        }
    }

    fn same_principal(&self, other: &Owner) -> bool {
        self.mode == other.mode && self.principal == other.principal
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionLimits {
    pub max_sessions: usize,
    pub max_per_client: usize,
    pub idle: Duration,
}

/// Why a new session was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SessionRefused {
    #[error("the gateway holds its maximum of {0} sessions (limits.max_sessions)")]
    Full(usize),
    #[error("{who} holds its maximum of {max} sessions (limits.max_sessions_per_client)")]
    ClientFull { who: String, max: usize },
}

/// One session.
pub(crate) struct Session {
    id: String,
    /// What logs, audit records and providers get instead of the id.
    pub reference: String,
    owner: Owner,
    /// The protocol revision `initialize` agreed on.
    pub version: String,
    pub state: Arc<SessionState>,
    /// Calls in flight by raw request id, for `notifications/cancelled`,
    /// each with the serial of its registration.
    inflight: Mutex<HashMap<String, (u64, CancellationToken)>>,
    serial: AtomicU64,
    /// Milliseconds since the table's epoch.
    last_seen: AtomicU64,
    streaming: AtomicBool,
    /// Fires when the session ends: its streams close.
    pub ended: CancellationToken,
    /// What the client can answer, and the gateway's requests to it.
    pub outbound: super::outbound::Outbound,
}

impl Session {
    /// A session of a transport with a single client (stdio).
    pub(crate) fn single(version: &str) -> Arc<Self> {
        Arc::new(Self::new(
            "stdio".into(),
            Owner::new(AuthMode::None, &Identity::anonymous(), None),
            version,
            CancellationToken::new(),
        ))
    }

    fn new(id: String, owner: Owner, version: &str, ended: CancellationToken) -> Self {
        Self {
            reference: session_ref(&id),
            id,
            owner,
            version: version.to_string(),
            state: Arc::default(),
            inflight: Mutex::default(),
            serial: AtomicU64::default(),
            last_seen: AtomicU64::default(),
            streaming: AtomicBool::default(),
            ended,
            outbound: Default::default(),
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Registers a call, cancelled by `notifications/cancelled` naming
    /// `request_id`; the guard unregisters it. A call registered after the
    /// session ended is cancelled at once.
    pub(crate) fn track(self: &Arc<Self>, request_id: &str, cancel: CancellationToken) -> Tracked {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let mut inflight = self.inflight.lock().expect("inflight");
        // `end` marks the session ended before it drains this map.
        if self.ended.is_cancelled() {
            cancel.cancel();
        } else {
            inflight.insert(request_id.to_string(), (serial, cancel));
        }
        Tracked {
            session: self.clone(),
            id: request_id.to_string(),
            serial,
        }
    }

    pub(crate) fn cancel(&self, request_id: &str) {
        if let Some((_, ct)) = self.inflight.lock().expect("inflight").remove(request_id) {
            ct.cancel();
        }
    }

    /// While the guard lives, an open stream keeps the session alive; a
    /// newer stream replaces it.
    pub(crate) fn streaming(self: &Arc<Self>, generation: u64) -> Streaming {
        self.streaming.store(true, Ordering::Relaxed);
        Streaming {
            session: self.clone(),
            generation,
        }
    }
}

pub(crate) struct Tracked {
    session: Arc<Session>,
    id: String,
    serial: u64,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut inflight = self.session.inflight.lock().expect("inflight");
        // Another call may have reused the id since: its entry stays.
        if inflight
            .get(&self.id)
            .is_some_and(|(s, _)| *s == self.serial)
        {
            inflight.remove(&self.id);
        }
    }
}

pub(crate) struct Streaming {
    session: Arc<Session>,
    generation: u64,
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if self.session.state.outbox.detach(self.generation) {
            self.session.streaming.store(false, Ordering::Relaxed);
        }
    }
}

/// What audit records, logs and providers get instead of a session id: a
/// stable reference that cannot be turned back into the id (a session id
/// is a bearer secret).
pub(crate) fn session_ref(id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.as_bytes());
    format!("s-{}", hex::encode(&digest[..8]))
}

#[derive(Default)]
struct Table {
    sessions: HashMap<String, Arc<Session>>,
    /// Sessions per quota key.
    held: HashMap<String, usize>,
}

pub(crate) struct Sessions {
    table: Mutex<Table>,
    limits: SessionLimits,
    epoch: Instant,
    /// Ends every session (shutdown).
    all: CancellationToken,
    /// Told when sessions end, so it forgets them.
    notifier: Option<Arc<Notifier>>,
}

impl Sessions {
    pub(crate) fn new(
        limits: SessionLimits,
        all: CancellationToken,
        notifier: Option<Arc<Notifier>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            table: Mutex::default(),
            limits,
            epoch: Instant::now(),
            all,
            notifier,
        })
    }

    /// Ends sessions idle for longer than the limit, until shutdown.
    pub(crate) fn spawn_reaper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every =
            (self.limits.idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let all = self.all.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = all.cancelled() => return,
                }
                let Some(this) = weak.upgrade() else { return };
                this.reap();
            }
        });
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn reap(&self) {
        let now = self.now();
        let idle = self.limits.idle.as_millis() as u64;
        let expired: Vec<String> = {
            let t = self.table.lock().expect("session table");
            t.sessions
                .values()
                .filter(|s| {
                    !s.streaming.load(Ordering::Relaxed)
                        && s.inflight.lock().expect("inflight").is_empty()
                        && now.saturating_sub(s.last_seen.load(Ordering::Relaxed)) > idle
                })
                .map(|s| s.id.clone())
                .collect()
        };
        let any = !expired.is_empty();
        for id in expired {
            tracing::debug!(session = %session_ref(&id), "session expired");
            self.end(&id);
        }
        if any {
            self.forgotten();
        }
    }

    /// Live sessions.
    pub(crate) fn count(&self) -> usize {
        self.table.lock().expect("session table").sessions.len()
    }

    /// Session `id` if `owner` may use it; an unknown id answers alike.
    pub(crate) fn get(&self, id: &str, owner: &Owner) -> Option<Arc<Session>> {
        let t = self.table.lock().expect("session table");
        let s = t
            .sessions
            .get(id)
            .filter(|s| s.owner.same_principal(owner))?;
        s.last_seen.store(self.now(), Ordering::Relaxed);
        Some(s.clone())
    }

    /// A new session for `owner`, or which cap refuses it.
    pub(crate) fn open(&self, owner: Owner, version: &str) -> Result<Arc<Session>, SessionRefused> {
        let mut t = self.table.lock().expect("session table");
        if t.sessions.len() >= self.limits.max_sessions {
            return Err(SessionRefused::Full(self.limits.max_sessions));
        }
        let quota = owner.quota();
        let held = t.held.entry(quota.clone()).or_default();
        if *held >= self.limits.max_per_client {
            return Err(SessionRefused::ClientFull {
                who: quota,
                max: self.limits.max_per_client,
            });
        }
        *held += 1;
        let s = Arc::new(Session::new(
            new_session_id(),
            owner,
            version,
            self.all.child_token(),
        ));
        s.last_seen.store(self.now(), Ordering::Relaxed);
        t.sessions.insert(s.id.clone(), s.clone());
        Ok(s)
    }

    /// Ends session `id`: its streams close and its calls are cancelled.
    pub(crate) fn close(&self, id: &str) {
        self.end(id);
        self.forgotten();
    }

    fn forgotten(&self) {
        if let Some(n) = &self.notifier {
            n.prune();
        }
        crate::control::memory::freed();
    }

    fn end(&self, id: &str) {
        let s = {
            let mut t = self.table.lock().expect("session table");
            let Some(s) = t.sessions.remove(id) else {
                return;
            };
            let quota = s.owner.quota();
            if let Some(n) = t.held.get_mut(&quota) {
                *n -= 1;
                if *n == 0 {
                    t.held.remove(&quota);
                }
            }
            // A map keeps its peak capacity: after a burst of sessions
            // ends, give it back (see crate::control::memory).
            if shrinkable(t.sessions.len(), t.sessions.capacity()) {
                t.sessions.shrink_to_fit();
                t.held.shrink_to_fit();
            }
            s
        };
        s.ended.cancel();
        for (_, (_, ct)) in s.inflight.lock().expect("inflight").drain() {
            ct.cancel();
        }
    }
}

/// Worth shrinking: mostly empty, and big enough to matter.
fn shrinkable(len: usize, capacity: usize) -> bool {
    capacity >= 1024 && len < capacity / 8
}

/// 256 bits from the OS CSPRNG, hex: not guessable, not derivable.
fn new_session_id() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(mode: AuthMode, principal: &str, ip: Option<&str>) -> Owner {
        let id = Identity {
            principal: principal.into(),
            ..Identity::anonymous()
        };
        Owner::new(mode, &id, ip.map(|ip| ip.parse().unwrap()))
    }

    fn key(principal: &str) -> Owner {
        owner(AuthMode::ApiKey, principal, Some("127.0.0.1"))
    }

    fn table(max: usize, per: usize) -> Arc<Sessions> {
        Sessions::new(
            SessionLimits {
                max_sessions: max,
                max_per_client: per,
                idle: Duration::from_secs(60),
            },
            CancellationToken::new(),
            None,
        )
    }

    fn open(t: &Sessions, o: Owner) -> Result<String, SessionRefused> {
        t.open(o, "2025-11-25").map(|s| s.id().to_string())
    }

    #[test]
    fn a_session_belongs_to_its_opener_and_is_forgotten_when_closed() {
        let t = table(10, 10);
        let id = open(&t, key("alice")).unwrap();
        assert_eq!(id.len(), 64, "256 bits, hex");
        assert_eq!(t.count(), 1);
        assert!(t.get(&id, &key("alice")).is_some());
        assert!(
            t.get(&id, &owner(AuthMode::ApiKey, "alice", Some("10.1.1.1")))
                .is_some()
        );
        assert!(t.get(&id, &key("bob")).is_none());
        let same_name = owner(AuthMode::Jwt, "alice", None);
        assert!(
            t.get(&id, &same_name).is_none(),
            "same name, other auth mode"
        );
        assert!(t.get("not-a-session", &key("alice")).is_none());
        let s = t.get(&id, &key("alice")).unwrap();
        t.close(&id);
        assert!(s.ended.is_cancelled());
        assert_eq!(t.count(), 0);
        assert!(t.get(&id, &key("alice")).is_none());
        assert!(t.table.lock().unwrap().held.is_empty());
    }

    #[test]
    fn caps_refuse_with_the_reason_and_free_up_when_sessions_end() {
        let t = table(3, 2);
        let a1 = open(&t, key("alice")).unwrap();
        open(&t, key("alice")).unwrap();
        assert_eq!(
            open(&t, key("alice")).err(),
            Some(SessionRefused::ClientFull {
                who: "principal 'alice'".into(),
                max: 2
            })
        );
        open(&t, key("bob")).unwrap();
        assert_eq!(open(&t, key("carol")).err(), Some(SessionRefused::Full(3)));
        t.close(&a1);
        assert!(open(&t, key("alice")).is_ok());
    }

    #[test]
    fn without_auth_the_per_client_cap_counts_addresses() {
        let t = table(10, 1);
        let a = || owner(AuthMode::None, "anonymous", Some("10.0.0.1"));
        open(&t, a()).unwrap();
        assert!(open(&t, a()).is_err());
        open(&t, owner(AuthMode::None, "anonymous", Some("10.0.0.2"))).unwrap();
    }

    #[test]
    fn closing_a_session_cancels_its_calls() {
        let t = table(10, 10);
        let s = t.open(key("alice"), "2025-11-25").unwrap();
        let ct = CancellationToken::new();
        let tracked = s.track("7", ct.clone());
        s.cancel("8");
        assert!(!ct.is_cancelled());
        // The same id again: the first guard leaves the second entry alone.
        let second = CancellationToken::new();
        let tracked_again = s.track("7", second.clone());
        drop(tracked);
        s.cancel("7");
        assert!(second.is_cancelled());
        drop(tracked_again);
        let third = CancellationToken::new();
        let _t = s.track("9", third.clone());
        t.close(s.id());
        assert!(third.is_cancelled());
        assert!(s.inflight.lock().unwrap().is_empty());
        // Registered after the end: cancelled at once.
        let late = CancellationToken::new();
        let _late = s.track("10", late.clone());
        assert!(late.is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sessions_expire_unless_a_stream_is_open() {
        let t = table(10, 10);
        let idle = t.open(key("alice"), "2025-11-25").unwrap();
        let open_stream = t.open(key("bob"), "2025-11-25").unwrap();
        let attached = open_stream.state.outbox.attach(None);
        let _guard = open_stream.streaming(attached.generation);
        tokio::time::advance(Duration::from_secs(61)).await;
        t.reap();
        assert_eq!(t.count(), 1);
        assert!(idle.ended.is_cancelled());
        assert!(!open_stream.ended.is_cancelled());
    }
}
