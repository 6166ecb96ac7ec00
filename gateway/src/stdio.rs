//! The stdio transport's framing, owned here rather than by the MCP layer:
//! newline-delimited JSON-RPC on stdin and stdout.
//! - Every line from stdin is checked ([`crate::jsonrpc`]); a malformed one
//!   is answered with `-32700`/`-32600`/`-32602` and logged, not dropped.
//! - A last line without a newline still counts at EOF.
//! - EOF on stdin is signalled, so open subscriptions end with the session.
//! - A failed write to stdout (the parent stopped reading) is signalled: no
//!   answer can reach anyone, so the session ends and in-flight calls are
//!   cancelled instead of running on.
//!
//! The MCP layer reads and writes the two ends of in-memory pipes.

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream},
    sync::mpsc,
};
use tokio_util::sync::CancellationToken;

/// Largest line either way: the MCP layer's own limit is the payload limit.
const PIPE: usize = 64 * 1024;

/// The MCP layer's ends of the transport, and the signals.
pub struct Stdio {
    pub input: DuplexStream,
    pub output: DuplexStream,
    /// stdin reached EOF.
    pub eof: CancellationToken,
    /// stdout is closed.
    pub gone: CancellationToken,
}

/// Starts the two pumps between `stdin`/`stdout` and the MCP layer.
pub fn pump(
    stdin: impl AsyncRead + Unpin + Send + 'static,
    stdout: impl AsyncWrite + Unpin + Send + 'static,
) -> Stdio {
    let (input, mut to_mcp) = tokio::io::duplex(PIPE);
    let (from_mcp, output) = tokio::io::duplex(PIPE);
    let (answers_tx, answers) = mpsc::channel::<Vec<u8>>(16);
    let (eof, gone) = (CancellationToken::new(), CancellationToken::new());
    let signal = eof.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdin);
        let mut line = Vec::new();
        loop {
            line.clear();
            match lines.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = trim_line(&line);
            if text.is_empty() {
                continue;
            }
            match crate::jsonrpc::check(text, false) {
                Ok(()) => {
                    let sent = async {
                        to_mcp.write_all(text).await?;
                        to_mcp.write_all(b"\n").await
                    };
                    if sent.await.is_err() {
                        break; // the session ended
                    }
                }
                Err(rejected) => {
                    tracing::warn!(code = rejected.code(), reason = %rejected, "malformed message on stdin answered with an error");
                    let mut answer = rejected.to_json().to_string().into_bytes();
                    answer.push(b'\n');
                    if answers_tx.send(answer).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_mcp.shutdown().await;
        signal.cancel();
    });
    tokio::spawn(write_out(from_mcp, answers, stdout, gone.clone()));
    Stdio {
        input,
        output,
        eof,
        gone,
    }
}

/// The line without its newline (and a `\r` before it).
fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Whole lines from the MCP layer and our own answers, in turn, to stdout.
async fn write_out(
    from_mcp: DuplexStream,
    mut answers: mpsc::Receiver<Vec<u8>>,
    mut stdout: impl AsyncWrite + Unpin,
    gone: CancellationToken,
) {
    let mut from_mcp = BufReader::new(from_mcp);
    // Kept across turns: a read cut short by an answer leaves a partial
    // line here, and the next read appends to it.
    let mut line = Vec::new();
    loop {
        // `None`: a whole line from the MCP layer is in `line`.
        let answer: Option<Vec<u8>> = tokio::select! {
            r = from_mcp.read_until(b'\n', &mut line) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => None,
            },
            Some(a) = answers.recv() => Some(a),
        };
        let out = answer.as_deref().unwrap_or(&line);
        let written = async {
            stdout.write_all(out).await?;
            stdout.flush().await
        };
        if let Err(e) = written.await {
            tracing::warn!(error = %e, "stdout is closed; ending the session");
            gone.cancel();
            return;
        }
        if answer.is_none() {
            line.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn good_lines_reach_the_mcp_layer_bad_ones_are_answered() {
        let input = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n{bad\n\n[]\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}";
        let (stdout, mut parent) = tokio::io::duplex(PIPE);
        let mut s = pump(&input[..], stdout);
        let mut got = String::new();
        s.input.read_to_string(&mut got).await.unwrap();
        assert_eq!(
            got,
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n",
            "the last line counts without its newline"
        );
        s.eof.cancelled().await;
        s.output.write_all(b"{\"answer\":1}\n").await.unwrap();
        drop(s.output);
        let mut out = String::new();
        parent.read_to_string(&mut out).await.unwrap();
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let codes: Vec<_> = lines
            .iter()
            .filter_map(|l| l["error"]["code"].as_i64())
            .collect();
        assert_eq!(codes, [-32700, -32600]);
        assert!(lines.iter().any(|l| l["answer"] == 1));
    }
}
