//! The `k8s/` base as it is applied: rendered by `kubectl kustomize` (KUBECTL or `kubectl` on
//! PATH; CI installs it), parsed into JSON values.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

use super::{repo_root, tool_or_skip};

pub struct Rendered(pub Vec<Value>);

impl Rendered {
    /// The base, `k8s/`.
    pub fn load() -> Option<Rendered> {
        Self::load_dir("k8s")
    }

    /// Any kustomization (or component) under the repo, e.g. `k8s/runtimeclass`.
    pub fn load_dir(dir: &str) -> Option<Rendered> {
        let kubectl =
            std::env::var_os("KUBECTL").map_or_else(|| PathBuf::from("kubectl"), PathBuf::from);
        if !tool_or_skip(
            &kubectl,
            ".ci/install-k8s-tools puts one in target/ci-tools/bin",
        ) {
            return None;
        }
        let out = Command::new(&kubectl)
            .arg("kustomize")
            .arg(repo_root().join(dir))
            .output()
            .expect("running kubectl kustomize");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let docs = serde_norway::Deserializer::from_str(&text)
            .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
            .collect();
        Some(Rendered(docs))
    }

    pub fn all(&self, kind: &str) -> Vec<&Value> {
        self.0.iter().filter(|o| o["kind"] == kind).collect()
    }

    pub fn one(&self, kind: &str, name: &str) -> &Value {
        self.0
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} named {name} in the render"))
    }

    pub fn statefulset(&self) -> &Value {
        self.one("StatefulSet", "app-wasm")
    }

    pub fn pod_labels(&self) -> BTreeMap<String, String> {
        labels(&self.statefulset()["spec"]["template"]["metadata"]["labels"])
    }

    pub fn container(&self) -> &Value {
        &self.statefulset()["spec"]["template"]["spec"]["containers"][0]
    }
}

pub fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}
