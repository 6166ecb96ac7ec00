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
/// Requests running at once; further lines wait on stdin.
const MAX_IN_FLIGHT: usize = 256;

enum Line {
    Text,
    TooLong,
    End,
}

/// One line into `line`, at most `max` bytes; the rest of a longer line is
/// read and dropped.
async fn read_line(
    input: &mut (impl AsyncBufReadExt + Unpin),
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    use tokio::io::AsyncReadExt;
    let n = (&mut *input)
        .take(max as u64 + 1)
        .read_until(b'\n', line)
        .await?;
    if n == 0 {
        return Ok(Line::End);
    }
    if line.len() <= max || line.ends_with(b"\n") && line.len() <= max + 1 {
        return Ok(Line::Text);
    }
    // Skip to the end of this line.
    let mut rest = Vec::new();
    loop {
        rest.clear();
        let n = (&mut *input)
            .take(64 * 1024)
            .read_until(b'\n', &mut rest)
            .await?;
        if n == 0 || rest.ends_with(b"\n") {
            break;
        }
    }
    line.clear();
    Ok(Line::TooLong)
}

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

/// What a line asks of the loop.
enum Next {
    /// An answer to write now.
    Answer(Bytes),
    /// A request to run.
    Run(Box<Run>),
}

struct Run {
    x: Exchange,
    call: Call,
    tracked: Option<crate::front::session::Tracked>,
}

impl Client {
    fn line(&mut self, text: &[u8]) -> Option<Next> {
        let request = match jsonrpc::decode(text, false) {
            Ok(Message::Request(r)) => r,
            Ok(Message::Notification { method, params }) => {
                if method == "notifications/cancelled" {
                    self.engine
                        .notification(Some(&self.stateless), &method, params);
                }
                self.engine
                    .notification(self.session.as_ref(), &method, params);
                return None;
            }
            Ok(Message::Response { id, answer }) => {
                if let Some(s) = &self.session
                    && !s.outbound.answer(id, answer)
                {
                    tracing::debug!("a response to no open request");
                }
                return None;
            }
            Err(rejected) => {
                tracing::warn!(code = rejected.code(), reason = %rejected, "malformed message on stdin answered with an error");
                return Some(Next::Answer(Bytes::from(rejected.to_json().to_string())));
            }
        };
        let call = Call::new(request);
        if call.method == "initialize" && call.meta_version().is_none() {
            return Some(Next::Answer(self.initialize(call)));
        }
        let stateless = call.meta_version().is_some() || call.method == "server/discover";
        if stateless && let Some(e) = meta_error(&call) {
            return Some(Next::Answer(error_answer(Some(&call.id), &e).body));
        }
        if !stateless && self.session.is_none() {
            // `ping` may come before `initialize`.
            if call.method == "ping" {
                return Some(Next::Answer(engine::result_bytes(
                    &call.id,
                    &serde_json::json!({}),
                )));
            }
            let e = ErrorData::invalid_request(
                "initialize first, or send a 2026-07-28 request with its _meta",
                None,
            );
            return Some(Next::Answer(error_answer(Some(&call.id), &e).body));
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
        Some(Next::Run(Box::new(Run { x, call, tracked })))
    }

    /// Runs a request in its own task, holding `permit` (a place among the
    /// requests in flight) until it is answered.
    fn spawn(&self, run: Run, permit: tokio::sync::OwnedSemaphorePermit) {
        let Run { x, call, tracked } = run;
        let engine = self.engine.clone();
        let out = self.out.clone();
        let closing = self.closing.clone();
        self.tasks.spawn(async move {
            let _tracked = tracked;
            let _permit = permit;
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

    fn initialize(&mut self, call: Call) -> Bytes {
        let asked = call
            .params
            .get("protocolVersion")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let session = Session::single(Engine::negotiate(asked));
        let a = self.engine.initialize(&call, &session, &self.identity);
        // Server messages (list changes, logs, resource updates) go out as
        // they come.
        let mut rx = session.state.outbox.attach(None).rx;
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
        a.body
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
    max_line: usize,
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
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    tokio::pin!(shutdown);
    let stopped = 'reading: loop {
        line.clear();
        let next = tokio::select! {
            r = read_line(&mut input, &mut line, max_line) => match r {
                Ok(Line::End) => break false,
                Ok(Line::TooLong) => {
                    tracing::warn!(max_line, "stdin line over limits.max_payload_bytes answered with an error");
                    let e = crate::front::jsonrpc::Rejection::Invalid(format!(
                        "the message exceeds limits.max_payload_bytes ({max_line} bytes)"
                    ));
                    Some(Next::Answer(Bytes::from(e.to_json().to_string())))
                }
                Ok(Line::Text) => {
                    let text = trim_line(&line);
                    if text.is_empty() { None } else { client.line(text) }
                }
                Err(_) => break false,
            },
            _ = gone.cancelled() => break true,
            _ = &mut shutdown => break false,
        };
        // Waiting here, for stdout or for a place among the requests in
        // flight, holds the input back: a parent that does not read cannot
        // make the gateway queue without bound.
        match next {
            None => {}
            Some(Next::Answer(answer)) => tokio::select! {
                r = client.out.send(answer) => if r.is_err() { break 'reading true },
                _ = gone.cancelled() => break 'reading true,
                _ = &mut shutdown => break 'reading false,
            },
            Some(Next::Run(run)) => {
                let permit = tokio::select! {
                    p = in_flight.clone().acquire_owned() => p.expect("never closed"),
                    _ = gone.cancelled() => break 'reading true,
                    _ = &mut shutdown => break 'reading false,
                };
                client.spawn(*run, permit);
            }
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
