//! gRPC over one HTTP/2 stream: the length-prefixed message framing, and
//! the status from the response headers or trailers. What `tonic::codec`
//! does for the call path, without a body type per layer (see
//! [`super::conn`] for why the call path has its own client).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tonic::{Code, Status};

/// One message framed for a request body: the uncompressed flag, the
/// length, the protobuf bytes.
pub(crate) fn frame(msg: &impl prost::Message, limit: usize) -> Result<Bytes, Status> {
    let len = msg.encoded_len();
    if len > limit {
        // The wording of tonic's, which the error table reads.
        return Err(Status::out_of_range(format!(
            "Error, encoded message length too large: found {len} bytes, the limit is: {limit} bytes"
        )));
    }
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    msg.encode(&mut buf)
        .map_err(|e| Status::internal(format!("failed to encode Protobuf message: {e}")))?;
    Ok(buf.freeze())
}

/// The messages of one response, read in the caller's task.
pub(crate) struct Streaming<M> {
    body: Option<h2::RecvStream>,
    frames: Frames,
    _msg: std::marker::PhantomData<fn() -> M>,
}

impl<M: prost::Message + Default> Streaming<M> {
    /// Checks the response head: a trailers-only answer (an error, or OK
    /// without messages) or a non-gRPC HTTP status ends the call here.
    pub(crate) fn new(resp: http::Response<h2::RecvStream>, limit: usize) -> Result<Self, Status> {
        let (head, body) = resp.into_parts();
        let ended = body.is_end_stream();
        if let Some(status) = Status::from_header_map(&head.headers) {
            if status.code() != Code::Ok {
                return Err(status);
            }
        } else if head.status != http::StatusCode::OK {
            return Err(from_http(head.status));
        }
        Ok(Self {
            body: (!ended).then_some(body),
            frames: Frames {
                whole: Bytes::new(),
                partial: BytesMut::new(),
                limit,
            },
            _msg: std::marker::PhantomData,
        })
    }

    /// The next message; `None` after an OK status. A status other than
    /// OK in the trailers is the error.
    pub(crate) async fn message(&mut self) -> Result<Option<M>, Status> {
        loop {
            if let Some(frame) = self.frames.next()? {
                return M::decode(frame).map(Some).map_err(|e| {
                    Status::internal(format!("failed to decode Protobuf message: {e}"))
                });
            }
            let Some(body) = self.body.as_mut() else {
                return Ok(None);
            };
            match body.data().await {
                Some(Ok(chunk)) => {
                    let _ = body.flow_control().release_capacity(chunk.len());
                    self.frames.push(chunk);
                }
                Some(Err(e)) => return Err(Status::from(e)),
                None => {
                    let trailers = body.trailers().await.map_err(Status::from)?;
                    self.body = None;
                    if !self.frames.is_empty() {
                        return Err(Status::internal(
                            "the response ended inside a message (truncated)",
                        ));
                    }
                    return match trailers.as_ref().and_then(Status::from_header_map) {
                        Some(s) if s.code() == Code::Ok => Ok(None),
                        Some(s) => Err(s),
                        None => Err(Status::unknown(
                            "protocol error: missing grpc-status trailer",
                        )),
                    };
                }
            }
        }
    }

    /// Reads to the end of the stream, so it closes instead of being reset.
    pub(crate) async fn trailers(&mut self) {
        while let Ok(Some(_)) = self.message().await {}
    }
}

/// Received and not yet decoded: a chunk that messages are cut from without
/// a copy, or, once a message spans chunks, the bytes gathered for it.
struct Frames {
    whole: Bytes,
    partial: BytesMut,
    limit: usize,
}

impl Frames {
    fn push(&mut self, chunk: Bytes) {
        if self.is_empty() {
            self.whole = chunk;
        } else {
            self.partial.extend_from_slice(&self.whole);
            self.whole.clear();
            self.partial.extend_from_slice(&chunk);
        }
    }

    fn is_empty(&self) -> bool {
        self.whole.is_empty() && self.partial.is_empty()
    }

    /// The next whole message, if one is in.
    fn next(&mut self) -> Result<Option<Bytes>, Status> {
        let gathered = !self.partial.is_empty();
        let buf: &[u8] = if gathered { &self.partial } else { &self.whole };
        if buf.len() < 5 {
            return Ok(None);
        }
        let compressed = buf[0];
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if len > self.limit {
            return Err(Status::out_of_range(format!(
                "Error, decoded message length too large: found {len} bytes, the limit is: {} bytes",
                self.limit
            )));
        }
        if buf.len() < 5 + len {
            return Ok(None);
        }
        if compressed != 0 {
            // No grpc-accept-encoding is sent, so none may be used.
            return Err(Status::internal(
                "the provider compressed a message although no encoding was offered",
            ));
        }
        Ok(Some(if gathered {
            self.partial.advance(5);
            self.partial.split_to(len).freeze()
        } else {
            self.whole.advance(5);
            self.whole.split_to(len)
        }))
    }
}

/// The status for an HTTP answer without grpc-status (gRPC's mapping).
fn from_http(status: http::StatusCode) -> Status {
    let code = match status {
        http::StatusCode::BAD_REQUEST => Code::Internal,
        http::StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        http::StatusCode::FORBIDDEN => Code::PermissionDenied,
        http::StatusCode::NOT_FOUND => Code::Unimplemented,
        http::StatusCode::TOO_MANY_REQUESTS
        | http::StatusCode::BAD_GATEWAY
        | http::StatusCode::SERVICE_UNAVAILABLE
        | http::StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(
        code,
        format!("the provider answered HTTP {status} without a gRPC status"),
    )
}

/// `grpc-timeout`: at most 8 digits, so milliseconds, else seconds.
pub(crate) fn timeout_header(t: std::time::Duration) -> http::HeaderValue {
    let ms = t.as_millis();
    let v = if ms < 100_000_000 {
        format!("{ms}m")
    } else {
        format!("{}S", t.as_secs().min(99_999_999))
    };
    http::HeaderValue::from_str(&v).expect("digits and a unit letter")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_flag_length_and_message() {
        let msg = mcp_gateway_proto::provider::StreamRequest::default();
        let f = frame(&"ab".to_string(), 100).unwrap();
        assert_eq!(&f[..5], &[0, 0, 0, 0, 4]);
        assert_eq!(frame(&msg, 100).unwrap().as_ref(), &[0, 0, 0, 0, 0]);
        let e = frame(&"x".repeat(50), 10).unwrap_err();
        assert_eq!(e.code(), Code::OutOfRange);
        assert!(
            e.message()
                .contains("found 52 bytes, the limit is: 10 bytes"),
            "{e}"
        );
    }

    fn frames(limit: usize) -> Frames {
        Frames {
            whole: Bytes::new(),
            partial: BytesMut::new(),
            limit,
        }
    }

    #[test]
    fn messages_are_cut_from_one_chunk_or_gathered_across_chunks() {
        let (a, b) = (
            frame(&"a".to_string(), 100).unwrap(),
            frame(&"bb".to_string(), 100).unwrap(),
        );
        let mut f = frames(100);
        f.push([a.clone(), b.clone()].concat().into());
        assert_eq!(f.next().unwrap().unwrap(), a.slice(5..));
        assert_eq!(f.next().unwrap().unwrap(), b.slice(5..));
        assert_eq!(f.next().unwrap(), None);
        assert!(f.is_empty());
        // One message in three pieces, the header itself split.
        f.push(b.slice(..2));
        assert_eq!(f.next().unwrap(), None);
        f.push(b.slice(2..6));
        assert_eq!(f.next().unwrap(), None);
        f.push(b.slice(6..));
        assert_eq!(f.next().unwrap().unwrap(), b.slice(5..));
        assert!(f.is_empty());
    }

    #[test]
    fn a_message_over_the_limit_is_refused_from_its_header() {
        let mut f = frames(3);
        f.push(frame(&"toolong".to_string(), 100).unwrap().slice(..5));
        let e = f.next().unwrap_err();
        assert_eq!(e.code(), Code::OutOfRange);
        assert!(
            e.message().contains("found 9 bytes, the limit is: 3 bytes"),
            "{e}"
        );
    }

    #[test]
    fn timeouts_fit_eight_digits() {
        use std::time::Duration;
        assert_eq!(timeout_header(Duration::from_secs(30)), "30000m");
        assert_eq!(timeout_header(Duration::from_secs(200_000)), "200000S");
    }

    #[test]
    fn an_http_error_without_grpc_status_maps_like_grpc() {
        assert_eq!(
            from_http(http::StatusCode::SERVICE_UNAVAILABLE).code(),
            Code::Unavailable
        );
        assert_eq!(
            from_http(http::StatusCode::NOT_FOUND).code(),
            Code::Unimplemented
        );
    }
}
