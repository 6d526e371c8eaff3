//! What one request may cost the host, each a setting with a default sized for a small pod.
//! The runner exposes every field as a flag (`app-wasm up --help`); the README lists them.

use std::time::Duration;

use crate::server::ConnLimits;

#[derive(Clone, Debug, clap::Args)]
pub struct Limits {
    /// Requests in flight per replica beyond which it answers 503 with Retry-After: 1.
    #[arg(long, default_value_t = 1024, env = "APP_WASM_MAX_CONCURRENT")]
    pub max_concurrent: usize,
    /// Largest request line plus headers, in bytes (at least 8192): beyond it, 431.
    #[arg(long, default_value_t = 16 * 1024)]
    pub max_head_bytes: usize,
    /// Largest declared request body (Content-Length), in bytes: beyond it, 413. No route
    /// takes a body and the component never reads one.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_body_bytes: u64,
    /// Seconds a client gets to send a whole request head (slow-client defence).
    #[arg(long, default_value_t = 10)]
    pub head_timeout_secs: u64,
    /// Seconds one request may run in the component, streaming its response included; then
    /// it is stopped (wasmtime epoch interruption) and a worker is never held by a runaway.
    #[arg(long, default_value_t = 60)]
    pub request_timeout_secs: u64,
    /// Linear memory one request's component instance may grow to, in MiB.
    #[arg(long, default_value_t = 64)]
    pub memory_mib: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent: 1024,
            max_head_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            head_timeout_secs: 10,
            request_timeout_secs: 60,
            memory_mib: 64,
        }
    }
}

impl Limits {
    pub fn conn(&self) -> ConnLimits {
        ConnLimits {
            max_head_bytes: self.max_head_bytes,
            head_timeout: Duration::from_secs(self.head_timeout_secs),
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn memory_bytes(&self) -> usize {
        self.memory_mib << 20
    }
}
