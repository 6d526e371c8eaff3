//! `app-wasm bench-instantiate`: how long per-request instantiation takes inside the host,
//! for `bench/run` (the only cost the runtime adds before the guest runs).

use std::time::{Duration, Instant};

use anyhow::Result;
use wasmtime::StoreLimitsBuilder;
use wasmtime_wasi::WasiCtx;

use crate::engine::EngineOptions;
use crate::limits::Limits;
use crate::runtime::{RequestState, Runtime};

impl Runtime {
    /// Instantiates the component `n` times as a request would (fresh `Store`, WASI context,
    /// `ProxyPre`), without calling it: how long each took.
    pub async fn time_instantiation(&self, n: usize) -> Result<Vec<Duration>> {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            let mut store = RequestState::store(
                self.pre.engine(),
                WasiCtx::builder().build(),
                StoreLimitsBuilder::new().build(),
            );
            store.set_epoch_deadline(u64::MAX / 2);
            self.pre.instantiate_async(&mut store).await?;
            times.push(started.elapsed());
        }
        Ok(times)
    }
}

/// Loads `wasm`, warms the pool up, times `n` instantiations: `{n, allocator, median_us,
/// p99_us}`.
pub async fn instantiation_report(
    wasm: &std::path::Path,
    engine: &EngineOptions,
    n: usize,
) -> Result<serde_json::Value> {
    let limits = Limits::default();
    let (runtime, _) = Runtime::load_with(wasm, engine, &limits, limits.max_concurrent)?;
    // The first instantiations touch fresh pool slots.
    runtime.time_instantiation(n / 10 + 1).await?;
    let mut us: Vec<f64> = runtime
        .time_instantiation(n)
        .await?
        .iter()
        .map(|d| d.as_secs_f64() * 1e6)
        .collect();
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
    Ok(serde_json::json!({
        "n": n,
        "allocator": format!("{:?}", engine.allocator),
        "median_us": at(0.5),
        "p99_us": at(0.99),
    }))
}
