//! Who is calling and what they may do: authentication, the visibility
//! policy, rate limits, and keeping secrets out of logs.

pub mod auth;
pub mod policy;
pub mod ratelimit;
pub mod redact;
pub mod seal;
pub mod secret;
