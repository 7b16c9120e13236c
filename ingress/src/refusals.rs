//! The sandbox's recent refusals, remembered per client so that a client retrying at once is
//! answered here, cheaply, instead of through the proxy hop and the sandbox's admission.
//!
//! When the sandbox refuses an execution with 503 and a `Retry-After` (the scheduler's estimate
//! of when this client's request would fit, or a full queue or memory budget), the ingress
//! remembers the refused client until then: an anonymous client by its key, a tenant as a
//! whole, as the sandbox's scheduler counts them. Until then its executions are answered 503
//! `overloaded` by the ingress with the `Retry-After` that remains, without reading their body.
//! A client that honours `Retry-After` never meets this; one that retries at once (a flood)
//! costs the service one identification and one rate-limit check per request instead of a
//! whole trip to the sandbox, so a crowd of them leaves the CPU to everyone else.
//!
//! The memory is bounded: at most [`MAX_REMEMBERED`] clients (expired entries are dropped
//! first); past that, a refusal is simply not remembered and the next request goes through.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use contract::tenant::ANONYMOUS;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::rate_limit::ClientKey;

/// Clients remembered at once (about 100 bytes each).
pub const MAX_REMEMBERED: usize = 16_384;
/// The longest a refusal is remembered, whatever `Retry-After` the sandbox gave.
const LONGEST: Duration = Duration::from_secs(60);

/// Who was refused: a tenant as a whole, or one anonymous client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Refused {
    tier: Arc<str>,
    client: Option<IpAddr>,
}

impl Refused {
    fn of(caller: &Caller) -> Self {
        let tier = caller.tier().id.clone();
        let client = match caller.client() {
            ClientKey(client) if *tier == *ANONYMOUS => client,
            _ => None,
        };
        Self { tier, client }
    }
}

/// Refused clients and when each may try again.
#[derive(Debug, Default)]
pub struct Refusals {
    until: Mutex<HashMap<Refused, Instant>>,
}

impl Refusals {
    /// `Err` with the answer to give when `caller` was refused by the sandbox and its
    /// `Retry-After` has not passed yet.
    pub fn check(&self, caller: &Caller) -> Result<(), ApiError> {
        let who = Refused::of(caller);
        let mut until = self.until.lock().expect("refusals");
        let Some(&retry_at) = until.get(&who) else {
            return Ok(());
        };
        let now = Instant::now();
        if retry_at <= now {
            until.remove(&who);
            return Ok(());
        }
        Err(ApiError::RefusedRecently {
            retry_after_secs: (retry_at - now).as_secs_f64().ceil() as u64,
        })
    }

    /// Remembers `caller` as refused when the sandbox answered 503 with a `Retry-After`.
    pub fn remember(&self, caller: &Caller, status: StatusCode, headers: &HeaderMap) {
        if status != StatusCode::SERVICE_UNAVAILABLE {
            return;
        }
        let Some(seconds) = headers
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok())
            .filter(|seconds| *seconds > 0)
        else {
            return;
        };
        let now = Instant::now();
        let retry_at = now + Duration::from_secs(seconds).min(LONGEST);
        let mut until = self.until.lock().expect("refusals");
        if until.len() >= MAX_REMEMBERED {
            until.retain(|_, retry_at| *retry_at > now);
            if until.len() >= MAX_REMEMBERED {
                return;
            }
        }
        until.insert(Refused::of(caller), retry_at);
    }
}
