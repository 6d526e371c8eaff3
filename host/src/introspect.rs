//! What a component imports: what it could ever ask its host for (the sandbox tests).

use std::path::Path;

use anyhow::Result;
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use crate::runtime::Runtime;

impl Runtime {
    /// The interfaces the served component imports: what it could ever ask the host for.
    pub fn imports(&self) -> Vec<String> {
        imports_of(self.pre.engine(), &self.component)
    }
}

/// The interfaces a component imports, e.g. `wasi:filesystem/types@0.2.6`, read by compiling
/// it without linking: works for components this host cannot serve (the Spin SQLite flavour).
pub fn component_imports(wasm: &Path) -> Result<Vec<String>> {
    let engine = Engine::new(&Config::new())?;
    let component = Component::from_file(&engine, wasm).map_err(anyhow::Error::from)?;
    Ok(imports_of(&engine, &component))
}

fn imports_of(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect()
}
