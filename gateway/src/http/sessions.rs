//! 2025-11-25 sessions over Streamable HTTP: who owns each one, and how many
//! there may be. rmcp's local session manager runs the sessions; this table
//! wraps it so that
//! - a session id is 256 random bits, and belongs to the principal (under the
//!   auth mode) whose `initialize` opened it: anyone else presenting it gets
//!   the same 404 as for an id that never existed;
//! - sessions are capped globally and per principal (per client address when
//!   auth is off), with a 503 past the cap;
//! - every session that holds memory is counted, initialized or not.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::Stream;
use rmcp::{
    model::{ClientJsonRpcMessage, ServerJsonRpcMessage},
    transport::{
        WorkerTransport,
        common::server_side_http::{ServerSseMessage, SessionId},
        streamable_http_server::session::{
            RestoreOutcome, SessionManager,
            local::{LocalSessionManager, LocalSessionManagerError, LocalSessionWorker},
        },
    },
};

use crate::auth::{AuthMode, Identity};

/// Who may use a session: the principal and the auth mode it came in under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    mode: AuthMode,
    principal: String,
    /// What the per-client cap counts: the principal, or the client address
    /// when auth is off (everyone is `anonymous` then).
    quota: String,
}

impl Owner {
    pub(crate) fn new(mode: AuthMode, id: &Identity, client: Option<IpAddr>) -> Self {
        let quota = match (mode, client) {
            (AuthMode::None, Some(ip)) => format!("address {ip}"),
            _ => format!("principal '{}'", id.principal),
        };
        Self {
            mode,
            principal: id.principal.clone(),
            quota,
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
}

/// Why a new session was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SessionRefused {
    #[error("the gateway holds its maximum of {0} sessions (limits.max_sessions)")]
    Full(usize),
    #[error("{who} holds its maximum of {max} sessions (limits.max_sessions_per_client)")]
    ClientFull { who: String, max: usize },
}

/// The caller of one HTTP request that may open a session. rmcp creates a
/// session only for an `initialize`, from inside the request's own task, so
/// the front door hands the caller down in a task-local and reads back
/// whether the session was refused.
pub(crate) struct Opener {
    owner: Owner,
    refused: Mutex<Option<SessionRefused>>,
}

tokio::task_local! {
    static OPENER: Arc<Opener>;
}

impl Opener {
    /// Runs `request` with `owner` as the opener of any session it creates;
    /// `Err` when it tried and the caps refused.
    pub(crate) async fn scope<T>(
        owner: Owner,
        request: impl Future<Output = T>,
    ) -> Result<T, SessionRefused> {
        let opener = Arc::new(Opener {
            owner,
            refused: Mutex::new(None),
        });
        let out = OPENER.scope(opener.clone(), request).await;
        match opener.refused.lock().expect("opener").take() {
            Some(refused) => Err(refused),
            None => Ok(out),
        }
    }
}

#[derive(Default)]
struct Table {
    owners: HashMap<SessionId, Owner>,
    /// Sessions per quota key.
    held: HashMap<String, usize>,
}

pub(crate) struct SessionTable {
    inner: LocalSessionManager,
    table: Mutex<Table>,
    limits: SessionLimits,
}

impl SessionTable {
    pub(crate) fn new(limits: SessionLimits, idle: Duration) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(idle);
        Self {
            inner,
            table: Mutex::default(),
            limits,
        }
    }

    /// Live sessions, including those whose `initialize` is not finished.
    pub(crate) fn count(&self) -> usize {
        self.table.lock().expect("session table").owners.len()
    }

    /// Whether `owner` may use session `id`; an unknown id answers alike.
    pub(crate) fn owned_by(&self, id: &str, owner: &Owner) -> bool {
        let t = self.table.lock().expect("session table");
        t.owners.get(id).is_some_and(|o| o.same_principal(owner))
    }

    /// Records session `id` for `owner`, or says which cap refuses it.
    fn admit(&self, id: &SessionId, owner: &Owner) -> Result<(), SessionRefused> {
        let mut t = self.table.lock().expect("session table");
        if t.owners.len() >= self.limits.max_sessions {
            return Err(SessionRefused::Full(self.limits.max_sessions));
        }
        let held = t.held.entry(owner.quota.clone()).or_default();
        if *held >= self.limits.max_per_client {
            return Err(SessionRefused::ClientFull {
                who: owner.quota.clone(),
                max: self.limits.max_per_client,
            });
        }
        *held += 1;
        t.owners.insert(id.clone(), owner.clone());
        Ok(())
    }

    fn forget(&self, id: &SessionId) {
        crate::memory::freed();
        let mut t = self.table.lock().expect("session table");
        if let Some(owner) = t.owners.remove(id)
            && let Some(n) = t.held.get_mut(&owner.quota)
        {
            *n -= 1;
            if *n == 0 {
                t.held.remove(&owner.quota);
            }
        }
        if shrinkable(t.owners.len(), t.owners.capacity()) {
            t.owners.shrink_to_fit();
        }
    }
}

/// Forgets an admitted session unless [`Undo::keep`] is called.
struct Undo<'a> {
    table: &'a SessionTable,
    id: Option<SessionId>,
}

impl Undo<'_> {
    fn keep(mut self) {
        self.id = None;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.table.forget(&id);
        }
    }
}

/// Worth shrinking: mostly empty, and big enough to matter.
fn shrinkable(len: usize, capacity: usize) -> bool {
    capacity >= 1024 && len < capacity / 8
}

/// 256 bits from the OS CSPRNG, hex: not guessable, not derivable.
fn new_session_id() -> SessionId {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    hex::encode(bytes).into()
}

impl SessionManager for SessionTable {
    type Error = LocalSessionManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let id = new_session_id();
        // No opener: not an HTTP request of ours, so nobody could own it.
        let opener = OPENER
            .try_with(Arc::clone)
            .map_err(|_| LocalSessionManagerError::SessionNotFound(id.clone()))?;
        if let Err(refused) = self.admit(&id, &opener.owner) {
            *opener.refused.lock().expect("opener") = Some(refused);
            return Err(LocalSessionManagerError::SessionNotFound(id));
        }
        // Until rmcp runs the session, its entry is ours to undo, also when
        // the request is dropped while waiting for rmcp's lock.
        let undo = Undo {
            table: self,
            id: Some(id.clone()),
        };
        // rmcp's manager takes a chosen id only through restore.
        match self.inner.restore_session(id.clone()).await {
            Ok(RestoreOutcome::Restored(transport)) => {
                undo.keep();
                Ok((id, transport))
            }
            // 256 random bits do not collide, so nothing else comes back.
            other => other.and(Err(LocalSessionManagerError::SessionNotFound(id))),
        }
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.forget(id);
        self.inner.close_session(id).await?;
        // A map keeps its peak capacity: after a burst of sessions ends,
        // give it back (see crate::memory).
        let mut sessions = self.inner.sessions.write().await;
        if shrinkable(sessions.len(), sessions.capacity()) {
            sessions.shrink_to_fit();
        }
        Ok(())
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
    }
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

    fn table(max: usize, per: usize) -> SessionTable {
        SessionTable::new(
            SessionLimits {
                max_sessions: max,
                max_per_client: per,
            },
            Duration::from_secs(60),
        )
    }

    async fn open(t: &SessionTable, o: Owner) -> Result<SessionId, SessionRefused> {
        Opener::scope(o, async { t.create_session().await.map(|(id, _)| id) })
            .await
            .map(|r| r.expect("created"))
    }

    #[tokio::test]
    async fn a_session_belongs_to_its_opener_and_is_forgotten_when_closed() {
        let t = table(10, 10);
        let id = open(&t, key("alice")).await.unwrap();
        assert_eq!(id.len(), 64, "256 bits, hex");
        assert_eq!(t.count(), 1);
        assert!(t.owned_by(&id, &key("alice")));
        assert!(t.owned_by(&id, &owner(AuthMode::ApiKey, "alice", Some("10.1.1.1"))));
        assert!(!t.owned_by(&id, &key("bob")));
        let same_name = owner(AuthMode::Jwt, "alice", None);
        assert!(!t.owned_by(&id, &same_name), "same name, other auth mode");
        assert!(!t.owned_by("not-a-session", &key("alice")));
        t.close_session(&id).await.unwrap();
        assert_eq!(t.count(), 0);
        assert!(!t.owned_by(&id, &key("alice")));
        assert!(t.table.lock().unwrap().held.is_empty());
    }

    #[tokio::test]
    async fn caps_refuse_with_the_reason_and_free_up_when_sessions_end() {
        let t = table(3, 2);
        let a1 = open(&t, key("alice")).await.unwrap();
        open(&t, key("alice")).await.unwrap();
        assert_eq!(
            open(&t, key("alice")).await.err(),
            Some(SessionRefused::ClientFull {
                who: "principal 'alice'".into(),
                max: 2
            })
        );
        open(&t, key("bob")).await.unwrap();
        assert_eq!(
            open(&t, key("carol")).await.err(),
            Some(SessionRefused::Full(3))
        );
        t.close_session(&a1).await.unwrap();
        assert!(open(&t, key("alice")).await.is_ok());
    }

    #[tokio::test]
    async fn without_auth_the_per_client_cap_counts_addresses() {
        let t = table(10, 1);
        let a = || owner(AuthMode::None, "anonymous", Some("10.0.0.1"));
        open(&t, a()).await.unwrap();
        assert!(open(&t, a()).await.is_err());
        open(&t, owner(AuthMode::None, "anonymous", Some("10.0.0.2")))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_opening_request_dropped_midway_holds_no_place() {
        let t = table(1, 1);
        // rmcp's map is locked, so creation waits; then the request goes away.
        let lock = t.inner.sessions.write().await;
        let opening = Opener::scope(key("alice"), t.create_session());
        let dropped = tokio::time::timeout(Duration::from_millis(50), opening).await;
        assert!(dropped.is_err());
        drop(lock);
        assert_eq!(t.count(), 0);
        assert!(
            open(&t, key("alice")).await.is_ok(),
            "the cap has room again"
        );
    }

    #[tokio::test]
    async fn no_session_outside_a_request() {
        assert!(table(1, 1).create_session().await.is_err());
    }
}
