//! The component, compiled once and linked with WASI and WASI HTTP: the shape of `wasmtime
//! serve` (`ProxyPre` once, a fresh `Store` per request). `replica_server` serves it.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::engine::{self, EngineOptions, Loaded};
use crate::limits::Limits;

/// The compiled component, ready to instantiate per request. Cheap to share (`Arc`).
pub struct Runtime {
    pub(crate) component: Component,
    pub(crate) pre: ProxyPre<RequestState>,
    /// One permit per instance the engine can hold at once (the pool's slots), shared by
    /// every replica on this runtime: a request that finds none gets 503, not a failed
    /// instantiation.
    pub(crate) slots: Arc<Semaphore>,
}

impl Runtime {
    /// Compiles the component at `wasm` with the default engine (pooling sized for the
    /// default limits, no code cache) and links WASI + WASI HTTP.
    pub fn load(wasm: &Path) -> Result<Self> {
        let limits = Limits::default();
        Ok(Self::load_with(
            wasm,
            &EngineOptions::default(),
            &limits,
            limits.max_concurrent,
        )?
        .0)
    }

    /// As `load`, with the engine `options` chose, sized for `instances` concurrent requests.
    pub fn load_with(
        wasm: &Path,
        options: &EngineOptions,
        limits: &Limits,
        instances: usize,
    ) -> Result<(Self, Loaded)> {
        let engine = engine::engine(options, limits, instances)?;
        engine::spawn_epoch_ticker(&engine);
        let (component, loaded) = engine::load_component(&engine, wasm, options)
            .with_context(|| format!("loading component {}", wasm.display()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        let pre = ProxyPre::new(linker.instantiate_pre(&component)?)?;
        let slots = match options.allocator {
            engine::Allocator::Pooling => engine::pool_slots(instances),
            engine::Allocator::OnDemand => Semaphore::MAX_PERMITS,
        };
        let slots = Arc::new(Semaphore::new(slots));
        Ok((
            Runtime {
                component,
                pre,
                slots,
            },
            loaded,
        ))
    }
}

/// What one request's `Store` holds.
pub(crate) struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl RequestState {
    /// A fresh store for one request (or one timed instantiation), held to `limits`.
    pub(crate) fn store(
        engine: &Engine,
        wasi: WasiCtx,
        limits: StoreLimits,
    ) -> Store<RequestState> {
        let state = RequestState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limits);
        store
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}
