//! MCP over stdin/stdout: newline-delimited JSON-RPC, one client.
//! - Every line is checked ([`crate::front::jsonrpc`]); a malformed one is answered
//!   with `-32700`/`-32600`/`-32602` and logged, not dropped.
//! - A last line without a newline still counts at EOF.
//! - 2025-11-25: `initialize` opens the one session; 2026-07-28 requests
//!   carry their `_meta` and need none.
//! - Requests run concurrently; answers are written as they finish.
//! - At EOF, calls in flight finish (within the shutdown grace) and are
//!   answered; open subscriptions end.
//! - A failed write to stdout (the parent stopped reading) ends the session
//!   at once: no answer can reach anyone, so calls in flight are cancelled.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use rmcp::model::{ErrorCode, ErrorData};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader},
    sync::mpsc,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::front::jsonrpc::{self, Message};
use crate::front::{
    engine::{self, Call, Engine, Exchange, Reply, error_answer},
    session::Session,
};
use crate::security::auth::Identity;

/// Lines waiting for stdout.
const QUEUE: usize = 256;

/// The line without its newline (and a `\r` before it).
fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Writes whole lines to stdout until every sender is gone; `gone` fires
/// when stdout is closed.
async fn write_out(
    mut lines: mpsc::Receiver<Bytes>,
    mut stdout: impl AsyncWrite + Unpin,
    gone: CancellationToken,
) {
    while let Some(line) = lines.recv().await {
        let written = async {
            stdout.write_all(&line).await?;
            stdout.write_all(b"\n").await?;
            stdout.flush().await
        };
        if let Err(e) = written.await {
            tracing::warn!(error = %e, "stdout is closed; ending the session");
            gone.cancel();
            return;
        }
    }
}

/// The state of the one stdio client.
struct Client {
    engine: Arc<Engine>,
    identity: Arc<Identity>,
    out: mpsc::Sender<Bytes>,
    /// The 2025-11-25 session, once `initialize` opened it.
    session: Option<Arc<Session>>,
    /// Calls of 2026-07-28 requests, for `notifications/cancelled`.
    stateless: Arc<Session>,
    tasks: TaskTracker,
    /// Ends listen streams (EOF) and cancels calls (stdout gone).
    closing: CancellationToken,
    cancel_all: CancellationToken,
}

impl Client {
    /// Queues a line in order; only a full queue defers it.
    fn send(&self, line: Bytes) {
        if let Err(mpsc::error::TrySendError::Full(line)) = self.out.try_send(line) {
            let out = self.out.clone();
            self.tasks.spawn(async move {
                let _ = out.send(line).await;
            });
        }
    }

    fn line(&mut self, text: &[u8]) {
        let request = match jsonrpc::decode(text, false) {
            Ok(Message::Request(r)) => r,
            Ok(Message::Notification { method, params }) => {
                if method == "notifications/cancelled" {
                    self.engine
                        .notification(Some(&self.stateless), &method, params);
                }
                self.engine
                    .notification(self.session.as_ref(), &method, params);
                return;
            }
            Ok(Message::Response) => return,
            Err(rejected) => {
                tracing::warn!(code = rejected.code(), reason = %rejected, "malformed message on stdin answered with an error");
                self.send(Bytes::from(rejected.to_json().to_string()));
                return;
            }
        };
        let call = Call::new(request);
        if call.method == "initialize" && call.meta_version().is_none() {
            self.initialize(call);
            return;
        }
        let stateless = call.meta_version().is_some() || call.method == "server/discover";
        if stateless && let Some(e) = meta_error(&call) {
            self.send(error_answer(Some(&call.id), &e).body);
            return;
        }
        if !stateless && self.session.is_none() && call.method != "ping" {
            let e = ErrorData::invalid_request(
                "initialize first, or send a 2026-07-28 request with its _meta",
                None,
            );
            self.send(error_answer(Some(&call.id), &e).body);
            return;
        }
        let cancel = self.cancel_all.child_token();
        let tracked = stateless.then(|| self.stateless.track(call.id.get(), cancel.clone()));
        let x = Exchange {
            identity: self.identity.clone(),
            correlation_id: crate::new_correlation_id(),
            traceparent: None,
            session: if stateless {
                None
            } else {
                self.session.clone()
            },
            early: Some(self.out.clone()),
            cancel,
        };
        let engine = self.engine.clone();
        let out = self.out.clone();
        let closing = self.closing.clone();
        self.tasks.spawn(async move {
            let _tracked = tracked;
            match engine.request(x, call).await {
                Reply::Answer(a) => {
                    let _ = out.send(a.body).await;
                }
                Reply::Listen(l) => {
                    let engine::Listen {
                        first,
                        mut rx,
                        registration,
                    } = l;
                    let _registration = registration;
                    if out.send(first).await.is_err() {
                        return;
                    }
                    loop {
                        tokio::select! {
                            m = rx.recv() => match m {
                                Some(m) => if out.send(m).await.is_err() { return },
                                None => return,
                            },
                            _ = closing.cancelled() => return,
                        }
                    }
                }
            }
        });
    }

    fn initialize(&mut self, call: Call) {
        let asked = call
            .params
            .get("protocolVersion")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let session = Session::single(Engine::negotiate(asked));
        let a = self.engine.initialize(&call, &session, &self.identity);
        // Server messages (list changes, logs, resource updates) go out as
        // they come.
        let mut rx = session.state.outbox.attach(None);
        let out = self.out.clone();
        let closing = self.closing.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = rx.recv() => match m {
                        Some((_, m)) => if out.send(m).await.is_err() { return },
                        None => return,
                    },
                    _ = closing.cancelled() => return,
                }
            }
        });
        if let Some(old) = self.session.replace(session) {
            old.ended.cancel();
        }
        self.send(a.body);
    }
}

/// What is wrong with a 2026-07-28 request's `_meta`, if anything.
fn meta_error(call: &Call) -> Option<ErrorData> {
    let missing = call.missing_meta();
    if !missing.is_empty() {
        return Some(ErrorData::invalid_params(
            format!(
                "request _meta is missing or has malformed required fields: {}",
                missing.join(", ")
            ),
            None,
        ));
    }
    match call.meta_version() {
        Some(v) if v != engine::PER_REQUEST => Some(ErrorData::new(
            ErrorCode::UNSUPPORTED_PROTOCOL_VERSION,
            format!("unsupported protocol version {v}"),
            Some(serde_json::json!({"supported": [engine::PER_REQUEST], "requested": v})),
        )),
        _ => None,
    }
}

/// Serves one client on `stdin`/`stdout` until EOF, a closed stdout, or
/// `shutdown`.
pub(crate) async fn serve(
    engine: Arc<Engine>,
    identity: Identity,
    stdin: impl AsyncRead + Unpin + Send + 'static,
    stdout: impl AsyncWrite + Unpin + Send + 'static,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) {
    let (out, lines) = mpsc::channel(QUEUE);
    let gone = CancellationToken::new();
    let writer = tokio::spawn(write_out(lines, stdout, gone.clone()));
    let mut client = Client {
        engine,
        identity: Arc::new(identity),
        out,
        session: None,
        stateless: Session::single(engine::PER_REQUEST),
        tasks: TaskTracker::new(),
        closing: CancellationToken::new(),
        cancel_all: CancellationToken::new(),
    };
    let mut input = BufReader::new(stdin);
    let mut line = Vec::new();
    tokio::pin!(shutdown);
    let stopped = loop {
        line.clear();
        tokio::select! {
            r = input.read_until(b'\n', &mut line) => match r {
                Ok(0) | Err(_) => break false,
                Ok(_) => {
                    let text = trim_line(&line);
                    if !text.is_empty() {
                        client.line(text);
                    }
                }
            },
            _ = gone.cancelled() => break true,
            _ = &mut shutdown => break false,
        }
    };
    // Input ended: subscriptions end; calls in flight finish and are
    // answered, unless nobody can read the answers.
    client.closing.cancel();
    client.tasks.close();
    if stopped {
        client.cancel_all.cancel();
    }
    tokio::select! {
        _ = client.tasks.wait() => {}
        _ = gone.cancelled() => client.cancel_all.cancel(),
        _ = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over; abandoning calls");
            client.cancel_all.cancel();
        }
    }
    if let Some(s) = &client.session {
        s.ended.cancel();
    }
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}

#[cfg(test)]
mod tests {
    use super::trim_line;

    #[test]
    fn lines_lose_their_newline_and_carriage_return() {
        assert_eq!(trim_line(b"{}\r\n"), b"{}");
        assert_eq!(trim_line(b"{}\n"), b"{}");
        assert_eq!(trim_line(b"{}"), b"{}");
    }
}
