//! Rate limits (`rate_limits:` in the config): token buckets (GCRA, via
//! `governor`) per principal and per tool. The per-principal limit is
//! checked by the HTTP front door before the JSON-RPC layer (429 with
//! `Retry-After`); the per-tool limit by the dispatcher (a JSON-RPC error
//! carrying `retry_after_ms`).

use std::{collections::HashMap, num::NonZeroU32, time::Duration};

use governor::{
    DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota,
    clock::{Clock, DefaultClock},
};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Sustained rate.
    pub per_second: u32,
    /// Bucket size: requests allowed at once after a quiet spell.
    pub burst: u32,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// One bucket per authenticated principal (all its HTTP requests).
    pub per_principal: Option<Limit>,
    /// One bucket per tool (all callers together), unless `tools` names it.
    pub per_tool: Option<Limit>,
    /// Per exposed tool name; overrides `per_tool`.
    pub tools: HashMap<String, Limit>,
}

impl RateLimitConfig {
    pub(crate) fn problems(&self, bad: &mut impl FnMut(String, String)) {
        let mut check = |field: String, l: &Limit| {
            if l.per_second == 0 || l.burst == 0 {
                bad(field, "per_second and burst must be at least 1".into());
            }
        };
        if let Some(l) = &self.per_principal {
            check("rate_limits.per_principal".into(), l);
        }
        if let Some(l) = &self.per_tool {
            check("rate_limits.per_tool".into(), l);
        }
        for (name, l) in &self.tools {
            check(format!("rate_limits.tools.{name}"), l);
        }
    }
}

fn quota(l: &Limit) -> Quota {
    let nz = |n: u32| NonZeroU32::new(n.max(1)).expect("max(1)");
    Quota::per_second(nz(l.per_second)).allow_burst(nz(l.burst))
}

pub struct RateLimits {
    clock: DefaultClock,
    principals: Option<DefaultKeyedRateLimiter<String>>,
    tools: Option<DefaultKeyedRateLimiter<String>>,
    named: HashMap<String, DefaultDirectRateLimiter>,
}

impl RateLimits {
    pub fn new(cfg: &RateLimitConfig) -> Self {
        Self {
            clock: DefaultClock::default(),
            principals: cfg
                .per_principal
                .as_ref()
                .map(|l| DefaultKeyedRateLimiter::keyed(quota(l))),
            tools: cfg
                .per_tool
                .as_ref()
                .map(|l| DefaultKeyedRateLimiter::keyed(quota(l))),
            named: cfg
                .tools
                .iter()
                .map(|(k, l)| (k.clone(), DefaultDirectRateLimiter::direct(quota(l))))
                .collect(),
        }
    }

    /// `Err(wait)` when `principal` is over its limit.
    pub fn check_principal(&self, principal: &str) -> Result<(), Duration> {
        let Some(l) = &self.principals else {
            return Ok(());
        };
        l.check_key(&principal.to_string())
            .map_err(|n| n.wait_time_from(self.clock.now()))
    }

    /// `Err(wait)` when `tool` (exposed name) is over its limit.
    pub fn check_tool(&self, tool: &str) -> Result<(), Duration> {
        if let Some(l) = self.named.get(tool) {
            return l.check().map_err(|n| n.wait_time_from(self.clock.now()));
        }
        let Some(l) = &self.tools else { return Ok(()) };
        l.check_key(&tool.to_string())
            .map_err(|n| n.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refused_with_a_wait() {
        let r = RateLimits::new(&RateLimitConfig {
            per_principal: Some(Limit {
                per_second: 1,
                burst: 2,
            }),
            ..Default::default()
        });
        assert!(r.check_principal("a").is_ok());
        assert!(r.check_principal("a").is_ok());
        let wait = r.check_principal("a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Buckets are per principal.
        assert!(r.check_principal("b").is_ok());
        // No per-tool limit configured.
        assert!(r.check_tool("x").is_ok());
    }
}
