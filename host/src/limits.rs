//! What one request may cost the host, each a setting with a default sized for a small pod.
//! The runner exposes every field as a flag (`app-wasm up --help`); the README lists them.

use std::time::Duration;

use crate::server::ConnLimits;

/// Each default, written once: the flags' `default_value_t` and `Limits::default` use these.
mod default {
    pub const MAX_CONCURRENT: usize = 1024;
    pub const MAX_HEAD_BYTES: usize = 16 * 1024;
    pub const MAX_BODY_BYTES: u64 = 64 * 1024;
    pub const HEAD_TIMEOUT_SECS: u64 = 10;
    pub const REQUEST_TIMEOUT_SECS: u64 = 60;
    pub const DRAIN_TIMEOUT_SECS: u64 = 20;
    pub const MEMORY_MIB: usize = 64;
}

#[derive(Clone, Debug, clap::Args)]
pub struct Limits {
    /// Requests in flight per replica beyond which it answers 503 with Retry-After: 1.
    #[arg(long, default_value_t = default::MAX_CONCURRENT, env = "APP_WASM_MAX_CONCURRENT",
          value_parser = at_least_one_usize())]
    pub max_concurrent: usize,
    /// Requests of one replica whose component may run at once until it sends its response
    /// head; the others wait their turn, within their deadline [default: 2 per CPU]. Guests
    /// beyond the cores only add context switches, memory and contention on the log; a
    /// streaming body and /healthz are not counted.
    #[arg(long, env = "APP_WASM_MAX_RUNNING", value_parser = at_least_one_usize())]
    pub max_running: Option<usize>,
    /// Largest request line plus headers, in bytes (at least 8192): beyond it, 431.
    #[arg(long, default_value_t = default::MAX_HEAD_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(8192..))]
    pub max_head_bytes: usize,
    /// Largest declared request body (Content-Length), in bytes: beyond it, 413. No route
    /// takes a body and the component never reads one.
    #[arg(long, default_value_t = default::MAX_BODY_BYTES)]
    pub max_body_bytes: u64,
    /// Seconds a client gets to send a whole request head (slow-client defence).
    #[arg(long, default_value_t = default::HEAD_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub head_timeout_secs: u64,
    /// Seconds one request may take from its head to the last byte of its response: a
    /// runaway guest, a stuck volume or a client that stops reading is cut off then.
    #[arg(long, default_value_t = default::REQUEST_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_secs: u64,
    /// Seconds SIGTERM waits for requests in flight before closing what is left: under a
    /// pod's default 30 s grace period. At least 1, as every time here: 0 would cut off every
    /// request in flight at once.
    #[arg(long, default_value_t = default::DRAIN_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub drain_timeout_secs: u64,
    /// Linear memory one request's component instance may grow to, in MiB.
    #[arg(long, default_value_t = default::MEMORY_MIB, value_parser = at_least_one_usize())]
    pub memory_mib: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent: default::MAX_CONCURRENT,
            max_running: None,
            max_head_bytes: default::MAX_HEAD_BYTES,
            max_body_bytes: default::MAX_BODY_BYTES,
            head_timeout_secs: default::HEAD_TIMEOUT_SECS,
            request_timeout_secs: default::REQUEST_TIMEOUT_SECS,
            drain_timeout_secs: default::DRAIN_TIMEOUT_SECS,
            memory_mib: default::MEMORY_MIB,
        }
    }
}

impl Limits {
    pub fn conn(&self) -> ConnLimits {
        ConnLimits {
            max_head_bytes: self.max_head_bytes,
            head_timeout: Duration::from_secs(self.head_timeout_secs),
            write_timeout: self.request_timeout(),
            drain_timeout: Duration::from_secs(self.drain_timeout_secs),
        }
    }

    /// `--max-running`, or 2 per CPU this process may use (cgroup quotas included).
    pub fn running(&self) -> usize {
        self.max_running.unwrap_or_else(|| {
            2 * std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn memory_bytes(&self) -> usize {
        self.memory_mib << 20
    }
}

/// A count that must be at least 1: 0 would accept requests and never serve one.
fn at_least_one_usize() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}
