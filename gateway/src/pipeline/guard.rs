//! The guard around one provider call: the bulkhead (at most
//! `max_concurrency` at once, refused past it), the circuit breaker, one
//! deadline for all attempts, the client's cancellation, and retries with
//! backoff while the caller says a repeat is safe. It knows nothing of gRPC
//! channels: the call is a closure, so tests drive it with paused time.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    backoff::Backoff, config::Retries, pipeline::error::GatewayError, southbound::Breaker,
};

/// What bounds calls to one provider.
pub(crate) struct CallLimits<'a> {
    pub provider: &'a str,
    /// The request's, for the log.
    pub correlation_id: &'a str,
    pub slots: &'a Arc<Semaphore>,
    pub max_concurrency: usize,
    pub breaker: &'a Arc<Breaker>,
    /// One deadline for every attempt together.
    pub budget: Duration,
    pub retries: &'a Retries,
}

/// Runs `call` under `limits`. `classify` turns a failed attempt's status
/// into the gateway's error; only unavailability (and a deadline) count
/// against the provider, and only unavailability is retried, while
/// `repeatable()` holds.
pub(crate) async fn run<T, F, Fut>(
    limits: CallLimits<'_>,
    cancel: &CancellationToken,
    repeatable: impl Fn() -> bool,
    classify: impl Fn(tonic::Status) -> GatewayError,
    mut call: F,
) -> Result<T, GatewayError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let provider = limits.provider;
    let _slot = limits
        .slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| GatewayError::Overloaded {
            provider: provider.to_string(),
            limit: limits.max_concurrency,
        })?;
    let deadline = tokio::time::Instant::now() + limits.budget;
    let mut attempt = 1;
    let mut delays = Backoff::new(limits.retries.backoff, limits.budget);
    loop {
        let permit = limits
            .breaker
            .acquire()
            .map_err(|open| GatewayError::Provider {
                provider: provider.to_string(),
                code: tonic::Code::Unavailable,
                message: format!(
                    "provider unavailable: circuit open after repeated failures; next attempt in {}",
                    humantime::format_duration(Duration::from_secs(open.retry_in.as_secs().max(1)))
                ),
            })?;
        // Only for an exporter (see `trace::exporting`); without one,
        // events inside show the request's span and correlation ID.
        let span = if mcp_gateway_proto::trace::exporting() {
            tracing::info_span!(
                "provider call",
                otel.name = %format!("provider {provider}"),
                otel.kind = "client",
                rpc.system = "grpc",
                provider,
                attempt,
            )
        } else {
            tracing::Span::none()
        };
        let outcome = tokio::select! {
            // Dropping the call resets the HTTP/2 stream: the provider sees
            // the RPC cancelled.
            _ = cancel.cancelled() => return Err(GatewayError::Cancelled),
            r = tokio::time::timeout_at(deadline, call()).instrument(span) => r,
        };
        let err = match outcome {
            Ok(Ok(v)) => {
                permit.record(true);
                return Ok(v);
            }
            Err(_) => GatewayError::deadline(provider, limits.budget),
            Ok(Err(status)) => classify(status),
        };
        let code = match &err {
            GatewayError::Provider { code, .. } => Some(*code),
            _ => None,
        };
        let provider_fault = matches!(
            code,
            Some(tonic::Code::Unavailable | tonic::Code::DeadlineExceeded)
        );
        permit.record(!provider_fault);
        let wait = delays.next_delay();
        let retry = code == Some(tonic::Code::Unavailable)
            && attempt < limits.retries.max_attempts
            && tokio::time::Instant::now() + wait < deadline
            && repeatable();
        if !retry {
            return Err(err);
        }
        let correlation_id = limits.correlation_id;
        tracing::info!(provider, correlation_id, attempt, error = %err, "retrying a repeatable call");
        attempt += 1;
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::southbound::BreakerState;

    struct Fixture {
        slots: Arc<Semaphore>,
        breaker: Arc<Breaker>,
        retries: Retries,
        calls: Arc<AtomicU32>,
    }

    impl Fixture {
        fn new(max_attempts: u32) -> Self {
            Self {
                slots: Arc::new(Semaphore::new(1)),
                breaker: Breaker::new(3, Duration::from_secs(30)),
                retries: Retries {
                    max_attempts,
                    backoff: Duration::from_millis(50),
                },
                calls: Arc::default(),
            }
        }

        fn limits(&self) -> CallLimits<'_> {
            CallLimits {
                provider: "p",
                correlation_id: "c",
                slots: &self.slots,
                max_concurrency: 1,
                breaker: &self.breaker,
                budget: Duration::from_secs(1),
                retries: &self.retries,
            }
        }

        /// Runs a call whose attempt `n` (from 1) answers `answer(n)`.
        async fn run(
            &self,
            repeatable: bool,
            answer: impl Fn(u32) -> Option<Result<&'static str, tonic::Status>>,
        ) -> Result<&'static str, GatewayError> {
            let calls = self.calls.clone();
            run(
                self.limits(),
                &CancellationToken::new(),
                || repeatable,
                |s| GatewayError::from_status("p", s),
                || {
                    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                    let a = answer(n);
                    async move {
                        match a {
                            Some(r) => r,
                            None => std::future::pending().await,
                        }
                    }
                },
            )
            .await
        }

        fn calls(&self) -> u32 {
            self.calls.load(Ordering::SeqCst)
        }
    }

    fn unavailable() -> tonic::Status {
        tonic::Status::unavailable("down")
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeatable_call_is_retried_after_unavailable() {
        let f = Fixture::new(3);
        let r = f
            .run(true, |n| {
                Some(if n == 1 { Err(unavailable()) } else { Ok("ok") })
            })
            .await;
        assert_eq!(r.unwrap(), "ok");
        assert_eq!(f.calls(), 2);
        assert_eq!(f.breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_is_not_repeatable_fails_at_once() {
        let f = Fixture::new(3);
        let e = f
            .run(false, |_| Some(Err(unavailable())))
            .await
            .unwrap_err();
        assert!(matches!(
            e,
            GatewayError::Provider {
                code: tonic::Code::Unavailable,
                ..
            }
        ));
        assert_eq!(f.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_max_attempts_and_open_the_breaker() {
        let f = Fixture::new(3);
        let e = f.run(true, |_| Some(Err(unavailable()))).await.unwrap_err();
        assert!(matches!(e, GatewayError::Provider { .. }));
        assert_eq!(f.calls(), 3);
        assert_eq!(
            f.breaker.state(),
            BreakerState::Open,
            "three failures in a row"
        );
        // Open: refused without calling the provider.
        let e = f.run(true, |_| Some(Ok("never"))).await.unwrap_err();
        assert!(e.to_string().contains("circuit open"), "{e}");
        assert_eq!(f.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn one_deadline_covers_every_attempt_and_is_not_retried() {
        let f = Fixture::new(5);
        let start = tokio::time::Instant::now();
        let e = f.run(true, |_| None).await.unwrap_err();
        assert_eq!(tokio::time::Instant::now() - start, Duration::from_secs(1));
        assert!(
            e.to_string().contains("no answer within the 1s deadline"),
            "{e}"
        );
        assert_eq!(f.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_whose_backoff_would_pass_the_deadline() {
        let mut f = Fixture::new(5);
        f.retries.backoff = Duration::from_secs(2);
        let e = f.run(true, |_| Some(Err(unavailable()))).await.unwrap_err();
        assert!(matches!(
            e,
            GatewayError::Provider {
                code: tonic::Code::Unavailable,
                ..
            }
        ));
        assert_eq!(f.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tool_error_is_not_the_providers_fault() {
        let f = Fixture::new(3);
        for _ in 0..5 {
            let e = f
                .run(true, |_| Some(Err(tonic::Status::invalid_argument("bad"))))
                .await
                .unwrap_err();
            assert!(matches!(
                e,
                GatewayError::Provider {
                    code: tonic::Code::InvalidArgument,
                    ..
                }
            ));
        }
        assert_eq!(f.calls(), 5, "never retried");
        assert_eq!(f.breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_bulkhead_calls_are_refused() {
        let f = Fixture::new(1);
        let _held = f.slots.clone().try_acquire_owned().unwrap();
        let e = f.run(true, |_| Some(Ok("ok"))).await.unwrap_err();
        assert!(
            matches!(e, GatewayError::Overloaded { limit: 1, .. }),
            "{e:?}"
        );
        assert_eq!(f.calls(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_clients_cancellation_ends_the_call() {
        let f = Fixture::new(3);
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            c.cancel();
        });
        let e = run(
            f.limits(),
            &cancel,
            || true,
            |s| GatewayError::from_status("p", s),
            std::future::pending::<Result<(), tonic::Status>>,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, GatewayError::Cancelled));
        assert_eq!(
            f.breaker.state(),
            BreakerState::Closed,
            "a cancel is nobody's fault"
        );
    }
}
