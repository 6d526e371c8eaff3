//! The local runner binary (`app-wasm`, this package's bin) as users run it: a child process
//! we can SIGTERM (graceful) or SIGKILL (a crash), found by the state file it writes. Cargo
//! builds the binary with the tests (`CARGO_BIN_EXE_app-wasm`): one build of wasmtime.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::component;

/// The runner binary Cargo built for these tests.
pub fn runner_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_app-wasm"))
}

/// `app-wasm up --listen 127.0.0.1:0 --data DATA` plus `extra` args, running.
pub struct Runner {
    child: Option<Child>,
    pub data: PathBuf,
    /// The front's URL, or the single replica's.
    pub base: String,
    /// Each replica's name and URL, in ordinal order.
    pub replicas: Vec<(String, String)>,
}

impl Runner {
    /// `up --quiet`: warnings and errors on the test's stderr.
    pub fn start(data: &Path, extra: &[&str]) -> Runner {
        let mut cmd = Command::new(runner_bin());
        cmd.arg("up").arg("--quiet").stderr(Stdio::inherit());
        Runner::spawn(cmd, data, extra)
    }

    /// `up` logging as users see it, into `log`; `rust_log` is `RUST_LOG` (unset if `None`).
    pub fn start_logged(data: &Path, extra: &[&str], log: &Path, rust_log: Option<&str>) -> Runner {
        let mut cmd = Command::new(runner_bin());
        cmd.arg("up")
            .stderr(std::fs::File::create(log).unwrap())
            .env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        Runner::spawn(cmd, data, extra)
    }

    /// `cmd` (`app-wasm up` with its own environment) plus the test's listen, data and wasm.
    pub fn spawn(mut cmd: Command, data: &Path, extra: &[&str]) -> Runner {
        // A state file left by a killed run would point at dead ports.
        let _ = std::fs::remove_file(data.join("replicas.json"));
        let child = cmd
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .arg("--wasm")
            .arg(component())
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning app-wasm up");
        let mut runner = Runner {
            child: Some(child),
            data: data.to_owned(),
            base: String::new(),
            replicas: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let state = loop {
            if let Ok(bytes) = std::fs::read(data.join("replicas.json")) {
                break serde_json::from_slice::<Value>(&bytes).unwrap();
            }
            if let Some(status) = runner.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("app-wasm up exited before serving: {status}");
            }
            assert!(Instant::now() < deadline, "app-wasm up did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        runner.replicas = state["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let field = |k: &str| r[k].as_str().unwrap().to_owned();
                (field("name"), field("url"))
            })
            .collect();
        runner.base = match state["front"].as_str() {
            Some(front) => front.to_owned(),
            None => runner.replicas[0].1.clone(),
        };
        runner
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM, as kubelet and Ctrl-C stop it; waits for the exit and returns its output.
    pub fn terminate(mut self) -> Output {
        let child = self.child.take().unwrap();
        signal(child.id(), "TERM");
        child.wait_with_output().unwrap()
    }

    /// SIGKILL: a crash, no chance to finish anything.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// `app-wasm show --data DATA` plus `args`; asserts it succeeded and returns stdout.
pub fn show(data: &Path, args: &[&str]) -> String {
    let out = Command::new(runner_bin())
        .args(["show", "--data"])
        .arg(data)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "app-wasm show failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
