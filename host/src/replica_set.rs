//! The StatefulSet on one machine: N replicas `app-wasm-0..N-1` of one compiled component,
//! each with its own data dir (the twin of its `visits-volume-template-app-wasm-<i>` claim)
//! and loopback port, plus a front when there is more than one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The StatefulSet's name, and so the prefix of every replica's name.
pub const SET_NAME: &str = "app-wasm";

/// Written into the data root while replicas run, for `show` and scripts.
pub const STATE_FILE: &str = "replicas.json";

/// Where one replica listens and keeps its visits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaPlan {
    pub name: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
}

/// The replicas for `up --replicas n --listen listen --data root`. One replica listens on
/// `listen` itself; more sit behind a front there, on the ports right after it (8081, 8082,
/// ... for 8080) or on free ports when `listen` asks for port 0.
pub fn plan(n: usize, listen: SocketAddr, root: &Path) -> Result<Vec<ReplicaPlan>> {
    anyhow::ensure!(n >= 1, "--replicas must be at least 1");
    (0..n)
        .map(|i| {
            let port = match (n, listen.port()) {
                (1, _) => listen.port(),
                (_, 0) => 0,
                (_, base) => u16::try_from(usize::from(base) + 1 + i)
                    .ok()
                    .context("replica ports would run past 65535: choose a lower --listen port")?,
            };
            Ok(ReplicaPlan {
                name: replica_name(i),
                listen: SocketAddr::new(listen.ip(), port),
                data_dir: root.join(replica_name(i)),
            })
        })
        .collect()
}

pub fn replica_name(ordinal: usize) -> String {
    format!("{SET_NAME}-{ordinal}")
}

/// The ordinal in a replica's name, e.g. 2 for `app-wasm-2`.
pub fn ordinal_of(name: &str) -> Option<usize> {
    let digits = name.strip_prefix(SET_NAME)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What is running, as `up` records it in `<data>/replicas.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// The front's URL, when there is one.
    pub front: Option<String>,
    pub replicas: Vec<RunningReplica>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunningReplica {
    pub name: String,
    pub url: String,
    pub data_dir: PathBuf,
}

impl State {
    pub fn path(root: &Path) -> PathBuf {
        root.join(STATE_FILE)
    }

    /// The state of a stopped or never-started set is empty, not an error.
    pub fn load(root: &Path) -> State {
        std::fs::read(Self::path(root))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, root: &Path) -> Result<()> {
        let tmp = root.join(format!(".{STATE_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, Self::path(root))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_replica_takes_the_listen_address_itself() {
        let p = plan(1, addr("127.0.0.1:8080"), Path::new("data")).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "app-wasm-0");
        assert_eq!(p[0].listen, addr("127.0.0.1:8080"));
        assert_eq!(p[0].data_dir, Path::new("data/app-wasm-0"));
    }

    #[test]
    fn more_replicas_sit_on_the_ports_after_the_front() {
        let p = plan(3, addr("127.0.0.1:8080"), Path::new("d")).unwrap();
        let ports: Vec<u16> = p.iter().map(|r| r.listen.port()).collect();
        assert_eq!(ports, [8081, 8082, 8083]);
        assert_eq!(p[2].data_dir, Path::new("d/app-wasm-2"));
        let p = plan(3, addr("127.0.0.1:0"), Path::new("d")).unwrap();
        assert!(p.iter().all(|r| r.listen.port() == 0));
        assert!(plan(2, addr("127.0.0.1:65535"), Path::new("d")).is_err());
        assert!(plan(0, addr("127.0.0.1:8080"), Path::new("d")).is_err());
    }

    #[test]
    fn ordinals_come_from_names_of_this_set_only() {
        assert_eq!(ordinal_of("app-wasm-0"), Some(0));
        assert_eq!(ordinal_of("app-wasm-12"), Some(12));
        for other in [
            "app-wasm",
            "app-wasm-",
            "app-wasm-x",
            "app-wasm-1-2",
            "other-1",
        ] {
            assert_eq!(ordinal_of(other), None, "{other}");
        }
    }
}
