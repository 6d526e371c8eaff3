"""Builds the store-design candidates as SQLite-flavour components into target/store-designs:
today/fewer/retry/keepwal/keepretry are 553503b's src/sqlite_log.rs with another append (in a
git worktree); kvlog is 8de2e6f (visits through Spin's key-value store), chosen is HEAD
(kvlog, with the probe's retry).
Run as root from anywhere: python3 bench/store-designs/make.py"""
import os, shutil, subprocess
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "target/store-designs"); WT = os.path.join(OUT, "wt")
os.makedirs(OUT, exist_ok=True)
if not os.path.exists(WT):
    subprocess.run(["git", "worktree", "add", "-q", "--detach", WT, "553503b"], cwd=ROOT, check=True)
orig = open(f"{WT}/src/sqlite_log.rs").read()
OLD = """        fn append(&self, timestamp: &str) -> Result<(), StoreError> {
            let db = self.connect()?;
            self.execute(&db, INSERT_VISIT, &[Value::Text(timestamp.to_owned())])?;
            Ok(())
        }"""
assert OLD in orig
APPENDS = {
 "today": OLD,
 # open + INSERT: two host calls and the drop (rusqlite's 5 s busy timeout, FULL by default)
 "fewer": """        fn append(&self, timestamp: &str) -> Result<(), StoreError> {
            let db = Connection::open(DATABASE).map_err(to_store_error)?;
            self.execute(&db, INSERT_VISIT, &[Value::Text(timestamp.to_owned())])?;
            Ok(())
        }""",
 # busy_timeout 1 ms in SQLite, the wait in the guest: 1 ms on the monotonic clock, 5 s total
 "retry": """        fn append(&self, timestamp: &str) -> Result<(), StoreError> {
            let db = Connection::open(DATABASE).map_err(to_store_error)?;
            db.execute("PRAGMA busy_timeout = 1", &[]).map_err(to_store_error)?;
            let mut tries = 0;
            loop {
                match self.execute(&db, INSERT_VISIT, &[Value::Text(timestamp.to_owned())]) {
                    Err(StoreError::Busy(_)) if tries < 5000 => {
                        tries += 1;
                        wasi::clocks::monotonic_clock::subscribe_duration(1_000_000).block();
                    }
                    other => return other.map(drop),
                }
            }
        }""",
 # today's SQL path plus the key-value store opened on the same file, on the hypothesis that
 # its connection, kept for the app's life, stops the last SQL connection from checkpointing
 # and deleting the WAL (bench/README: the -wal file was still deleted)
 "keepwal": """        fn append(&self, timestamp: &str) -> Result<(), StoreError> {
            let kv = spin_sdk::wit::wasi::keyvalue::store::open(DATABASE)
                .map_err(|e| StoreError::Io(format!("{e:?}")))?;
            let _ = kv.exists("keep-open");
            let db = Connection::open(DATABASE).map_err(to_store_error)?;
            db.execute("PRAGMA busy_timeout = 10000", &[]).map_err(to_store_error)?;
            self.execute(&db, INSERT_VISIT, &[Value::Text(timestamp.to_owned())])?;
            Ok(())
        }""",
 # keepwal's key-value open with retry's SQL path
}
APPENDS["keepretry"] = APPENDS["keepwal"].split("            let db =")[0] + "            let db =" + APPENDS["retry"].split("            let db =", 1)[1]
def build(name, tree):
    subprocess.run(["cargo", "build", "-q", "--release", "--target", "wasm32-wasip2", "-p",
                    "app-wasm", "--features", "spin-sqlite", "--target-dir", f"{OUT}/target"],
                   cwd=tree, check=True)
    shutil.copy(f"{OUT}/target/wasm32-wasip2/release/app_wasm.wasm", f"{OUT}/{name}.wasm")
for name, body in APPENDS.items():
    if os.environ.get("ONLY") and name not in os.environ["ONLY"].split(","): continue
    open(f"{WT}/src/sqlite_log.rs", "w").write(orig.replace(OLD, body))
    build(name, WT); print("built", name, flush=True)
open(f"{WT}/src/sqlite_log.rs", "w").write(orig)
if not os.environ.get("ONLY"):
    subprocess.run(["git", "checkout", "-q", "--detach", "8de2e6f"], cwd=WT, check=True)
    build("kvlog", WT); print("built kvlog")
    build("chosen", ROOT); print("built chosen")
    subprocess.run(["cargo", "build", "-q", "--release", "--target", "wasm32-wasip2", "-p",
                    "app-wasm-hello", "--target-dir", f"{OUT}/target"], cwd=ROOT, check=True)
    shutil.copy(f"{OUT}/target/wasm32-wasip2/release/app_wasm_hello.wasm", f"{OUT}/hello.wasm")
