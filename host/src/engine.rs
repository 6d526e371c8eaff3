//! How the engine is built and where compiled code comes from: the instance allocator
//! (pooling by default: preallocated slots make instantiation a copy-on-write reset, not a
//! series of mmaps) and a disk cache of compiled code, so a restart does not recompile.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::limits::Limits;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Allocator {
    /// Preallocated instance slots, reset between requests (fast instantiation).
    Pooling,
    /// Fresh memory for every instance (wasmtime's default; slower, no reservation).
    OnDemand,
}

#[derive(Clone, Debug, clap::Args)]
pub struct EngineOptions {
    /// Instance allocator for the per-request instances.
    #[arg(long, value_enum, default_value_t = Allocator::Pooling, env = "APP_WASM_ALLOCATOR")]
    pub allocator: Allocator,
    /// Directory for compiled code, keyed by the component's bytes and the engine's settings
    /// [default: $XDG_CACHE_HOME/app-wasm or ~/.cache/app-wasm]. Only point it at a
    /// directory no one else can write: its files are loaded as native code.
    #[arg(long, env = "APP_WASM_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile on every start; read and write no cache.
    #[arg(long)]
    pub no_cache: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            allocator: Allocator::Pooling,
            cache_dir: None,
            no_cache: true,
        }
    }
}

impl EngineOptions {
    fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            Some(base.join("app-wasm"))
        })
    }
}

/// Bytes of each pool slot reset by memset and kept resident between requests.
const KEEP_RESIDENT: usize = 1 << 20;

/// The most instances one pool holds, whatever `--replicas` x `--max-concurrent` asks: each
/// slot reserves address space for its memories (about 4 GiB each, for guard-free bounds
/// checks), and 20 replicas x 1,024 slots would not fit in a 47-bit address space.
pub const MAX_POOL_SLOTS: usize = 4096;

/// The slots of a pool asked to serve `instances` at once.
pub fn pool_slots(instances: usize) -> usize {
    instances.clamp(1, MAX_POOL_SLOTS)
}

/// An engine for `instances` concurrent requests, each within `limits`.
pub fn engine(options: &EngineOptions, limits: &Limits, instances: usize) -> Result<Engine> {
    let mut config = Config::new();
    // Lets a store be given a deadline; the runtime's ticker advances the epoch.
    config.epoch_interruption(true);
    if options.allocator == Allocator::Pooling {
        let slots = u32::try_from(pool_slots(instances)).unwrap_or(u32::MAX);
        let mut pool = PoolingAllocationConfig::default();
        // A wasm32-wasip2 component is a handful of core instances (the program plus WASI
        // shims), one or two memories and a few tables: room for 8, 2 and 4 per request.
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(8))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(4))
            .max_memory_size(limits.memory_bytes())
            // Reset a freed slot with memset rather than madvise: madvise drops the pages
            // and costs a TLB shootdown on every core, which perf showed as a quarter of the
            // host's CPU under load. A request touches well under a MiB.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT / 16)
            .async_stack_keep_resident(KEEP_RESIDENT / 8)
            // Batch the decommits that remain, so their shootdowns are shared.
            .decommit_batch_size(16)
            // Linux >= 6.7: reset only the pages a request dirtied (PAGEMAP_SCAN), so a slot
            // keeps resident what the guest touched, not all of KEEP_RESIDENT.
            .pagemap_scan(Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config).map_err(anyhow::Error::from)
}

/// Where the component's code came from, for the runner's start-up line.
pub enum Loaded {
    Compiled(Duration),
    CompiledAndCached(Duration, PathBuf),
    FromCache(Duration, PathBuf),
}

/// The component at `wasm`, from the cache when its compiled code is there.
pub fn load_component(
    engine: &Engine,
    wasm: &Path,
    options: &EngineOptions,
) -> Result<(Component, Loaded)> {
    let started = Instant::now();
    let bytes =
        std::fs::read(wasm).with_context(|| format!("reading component {}", wasm.display()))?;
    let Some(dir) = options.cache_dir() else {
        let component = Component::new(engine, &bytes).map_err(anyhow::Error::from)?;
        release_compiler_heap();
        return Ok((component, Loaded::Compiled(started.elapsed())));
    };
    let mut key = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut key);
    engine.precompile_compatibility_hash().hash(&mut key);
    let path = dir.join(format!("app-wasm-{:016x}.cwasm", key.finish()));
    if path.is_file() {
        // SAFETY: the file was written by `precompile_component` below into a directory the
        // user chose for this cache, and its name binds it to these bytes and this engine.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &path) } {
            return Ok((component, Loaded::FromCache(started.elapsed(), path)));
        }
    }
    let compiled = engine
        .precompile_component(&bytes)
        .map_err(anyhow::Error::from)?;
    // SAFETY: these bytes were produced by this engine a moment ago.
    let component =
        unsafe { Component::deserialize(engine, &compiled) }.map_err(anyhow::Error::from)?;
    let elapsed = started.elapsed();
    // A cache that cannot be written only costs the next start its compile.
    let stored = std::fs::create_dir_all(&dir).and_then(|()| {
        let tmp = dir.join(format!(".{}.tmp", std::process::id()));
        std::fs::write(&tmp, &compiled)?;
        std::fs::rename(&tmp, &path)
    });
    drop(compiled);
    release_compiler_heap();
    Ok(match stored {
        Ok(()) => {
            prune_cache(&dir, &path, CACHE_KEEP);
            (component, Loaded::CompiledAndCached(elapsed, path))
        }
        Err(_) => (component, Loaded::Compiled(elapsed)),
    })
}

/// Gives the heap Cranelift used back to the system. glibc keeps freed memory resident in
/// its arenas, so a runner that compiled at start held more for its whole life than one that
/// loaded the cache (VmRSS after 64 connections: 48.4 MiB, 38.9 with this; 31.3 from the cache).
fn release_compiler_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Compiled components kept in the cache: each rebuild of the component or of the runner
/// adds one (a few MB), so without a bound the cache only grows.
pub const CACHE_KEEP: usize = 4;

/// Removes all but the `keep` most recently written `app-wasm-*.cwasm` files in `dir`, never
/// `current` (the one just written).
pub fn prune_cache(dir: &Path, current: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut cached: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("app-wasm-") && n.ends_with(".cwasm"))
                && p != current
        })
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    cached.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    for (_, old) in cached.into_iter().skip(keep.saturating_sub(1)) {
        let _ = std::fs::remove_file(old);
    }
}

/// How often the epoch advances: the resolution of the per-request deadline.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Advances `engine`'s epoch every `EPOCH_TICK` until the engine is dropped.
pub(crate) fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_the_newest_few_and_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let now = std::time::SystemTime::now();
        for i in 0..6u64 {
            let p = dir.path().join(format!("app-wasm-{i:016x}.cwasm"));
            std::fs::write(&p, "x").unwrap();
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(now - Duration::from_secs(100 - i)).unwrap();
        }
        std::fs::write(dir.path().join("unrelated.txt"), "x").unwrap();
        let current = dir.path().join(format!("app-wasm-{:016x}.cwasm", 0));
        prune_cache(dir.path(), &current, 3);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "app-wasm-0000000000000000.cwasm",
                "app-wasm-0000000000000004.cwasm",
                "app-wasm-0000000000000005.cwasm",
                "unrelated.txt"
            ]
        );
    }
}
