//! Real mounts under a temporary directory, driven by std::fs calls through the kernel.
//! They need root and /dev/fuse, and fail loudly without them.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use powercut_fs::{Cut, PowerCutFs};

struct Mounted {
    fs: PowerCutFs,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Mounted {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

fn mounted() -> Mounted {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root && Path::new("/dev/fuse").exists(),
        "these tests need root and /dev/fuse (mounting FUSE without fusermount)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mnt");
    fs::create_dir(&dir).unwrap();
    let fs = PowerCutFs::mount(&dir).expect("mount");
    Mounted { fs, dir, _tmp: tmp }
}

fn is_eio(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EIO)
}

/// 100 bytes, fdatasync, 64 more bytes; the file was also read through the kernel so that
/// its page cache holds all 164 bytes when the power goes.
fn synced_100_then_64(m: &Mounted) -> Vec<u8> {
    let data: Vec<u8> = (0..164u32).map(|i| (i % 251 + 1) as u8).collect();
    let mut f = File::create(m.path("f")).unwrap();
    f.write_all(&data[..100]).unwrap();
    f.sync_data().unwrap();
    f.write_all(&data[100..]).unwrap();
    assert_eq!(fs::read(m.path("f")).unwrap(), data);
    data
}

#[test]
fn drop_loses_unsynced_writes_and_a_fresh_open_sees_it() {
    let m = mounted();
    let data = synced_100_then_64(&m);
    let report = m.fs.cut(Cut::Drop, 1);
    assert_eq!(report.files.len(), 1);
    let c = &report.files[0];
    assert_eq!((c.synced_len, c.len_before, c.len_after), (100, 164, 100));
    assert!(report.to_string().contains("f: synced 100 B"), "{report}");
    m.fs.power_on();
    // Through the kernel, which had 164 bytes cached.
    assert_eq!(fs::read(m.path("f")).unwrap(), &data[..100]);
    assert_eq!(fs::metadata(m.path("f")).unwrap().len(), 100);
    assert_eq!(m.fs.read(Path::new("f")).unwrap(), &data[..100]);
    // An O_APPEND open after the cut appends at the post-cut end, not at the kernel's old one.
    let mut a = OpenOptions::new().append(true).open(m.path("f")).unwrap();
    a.write_all(b"0123456789").unwrap();
    assert_eq!(fs::read(m.path("f")).unwrap().len(), 110);
}

#[test]
fn zeros_keep_the_length_but_not_the_bytes() {
    let m = mounted();
    let data = synced_100_then_64(&m);
    m.fs.cut(Cut::Zeros, 1);
    m.fs.power_on();
    let got = fs::read(m.path("f")).unwrap();
    assert_eq!(got.len(), 164);
    assert_eq!(&got[..100], &data[..100]);
    assert!(got[100..].iter().all(|&b| b == 0), "{:?}", &got[100..]);
}

#[test]
fn prefix_keeps_a_prefix_of_the_writes() {
    let m = mounted();
    let data = synced_100_then_64(&m);
    let report = m.fs.cut(Cut::Prefix, 0x5eed);
    m.fs.power_on();
    let got = fs::read(m.path("f")).unwrap();
    assert!((100..=164).contains(&got.len()), "{report}");
    assert_eq!(got[..], data[..got.len()]);
    assert_eq!(report.files[0].len_after, got.len() as u64);
    // The same seed on the same history gives the same outcome.
    let again = mounted();
    synced_100_then_64(&again);
    assert_eq!(
        again.fs.cut(Cut::Prefix, 0x5eed).files[0].len_after,
        got.len() as u64
    );
}

#[test]
fn namespace_changes_need_a_sync() {
    let m = mounted();
    // A directory made durable first: its own fsync below commits only its entries.
    fs::create_dir(m.path("sub")).unwrap();
    File::open(&m.dir).unwrap().sync_all().unwrap();

    let mut lost = File::create(m.path("never-synced")).unwrap();
    lost.write_all(b"gone").unwrap();
    let mut kept = File::create(m.path("synced")).unwrap();
    kept.write_all(b"here").unwrap();
    kept.sync_data().unwrap(); // commits its own entry, not never-synced's
    let mut back = File::create(m.path("unlinked")).unwrap();
    back.write_all(b"back").unwrap();
    back.sync_data().unwrap();
    drop(back);
    fs::remove_file(m.path("unlinked")).unwrap();
    // Rename without a directory fsync: undone.
    fs::rename(m.path("synced"), m.path("moved")).unwrap();

    // Rename over an existing name, then fsync the directory: durable.
    fs::write(m.path("sub/db"), b"old").unwrap();
    File::open(m.path("sub/db")).unwrap().sync_all().unwrap();
    let mut tmp = File::create(m.path("sub/db.tmp")).unwrap();
    tmp.write_all(b"new").unwrap();
    tmp.sync_all().unwrap();
    fs::rename(m.path("sub/db.tmp"), m.path("sub/db")).unwrap();
    File::open(m.path("sub")).unwrap().sync_all().unwrap();
    // O_EXCL on an existing name.
    let e = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(m.path("sub/db"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);

    m.fs.cut(Cut::Mixed, 9);
    m.fs.power_on();
    let names = |dir: &Path| {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&m.dir), ["sub", "synced", "unlinked"]);
    assert_eq!(names(&m.path("sub")), ["db"]);
    assert_eq!(fs::read(m.path("synced")).unwrap(), b"here");
    assert_eq!(fs::read(m.path("unlinked")).unwrap(), b"back");
    assert_eq!(fs::read(m.path("sub/db")).unwrap(), b"new");
    assert!(m.fs.read(Path::new("never-synced")).is_none());
    assert_eq!(m.fs.read(Path::new("sub/db")).unwrap(), b"new");

    // A directory fsync commits every pending change of its entries, unlinks included.
    fs::remove_file(m.path("unlinked")).unwrap();
    File::create(m.path("empty")).unwrap();
    File::open(&m.dir).unwrap().sync_all().unwrap();
    m.fs.cut(Cut::Drop, 0);
    m.fs.power_on();
    assert_eq!(names(&m.dir), ["empty", "sub", "synced"]);
}

#[test]
fn everything_fails_while_off_and_old_handles_stay_dead() {
    let m = mounted();
    let mut f = File::create(m.path("f")).unwrap();
    f.write_all(b"before").unwrap();
    f.sync_data().unwrap();
    m.fs.cut(Cut::Drop, 0);
    assert!(is_eio(&f.write_all(b"during").unwrap_err()));
    assert!(is_eio(&f.sync_data().unwrap_err()));
    assert!(is_eio(&fs::metadata(m.path("f")).unwrap_err()));
    assert!(is_eio(&File::create(m.path("g")).unwrap_err()));
    assert!(is_eio(&fs::read_dir(&m.dir).map(|_| ()).unwrap_err()));
    m.fs.power_on();
    // The handle opened before the cut belongs to a process that "died" with the power.
    assert!(is_eio(&f.write_all(b"after").unwrap_err()));
    let mut g = OpenOptions::new().append(true).open(m.path("f")).unwrap();
    g.write_all(b" after").unwrap();
    g.sync_data().unwrap();
    assert_eq!(fs::read(m.path("f")).unwrap(), b"before after");
}

#[test]
fn appends_from_two_threads_land_at_the_end() {
    let m = Arc::new(mounted());
    File::create(m.path("visits.txt")).unwrap();
    let threads: Vec<_> = (0..2u8)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                let mut f = OpenOptions::new()
                    .append(true)
                    .open(m.path("visits.txt"))
                    .unwrap();
                for i in 0..300u32 {
                    let rec = format!("t{t} {i:>28}\n"); // 32 bytes
                    assert_eq!(rec.len(), 32);
                    f.write_all(rec.as_bytes()).unwrap();
                    if i % 50 == 0 {
                        f.sync_data().unwrap();
                    }
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let mut got = String::new();
    File::open(m.path("visits.txt"))
        .unwrap()
        .read_to_string(&mut got)
        .unwrap();
    assert_eq!(got.len(), 2 * 300 * 32);
    let mut recs: Vec<&str> = got.lines().collect();
    recs.sort();
    let mut want: Vec<String> = (0..2)
        .flat_map(|t| (0..300).map(move |i| format!("t{t} {i:>28}")))
        .collect();
    want.sort();
    assert_eq!(recs, want);
}

// --- Child processes --------------------------------------------------------------------
//
// Whatever maps a file of the mount runs in a child process (this test binary run again),
// never in the process serving the mount: munmap of a dirty shared mapping waits, holding
// the mmap lock, for a writeback that our own FUSE threads must answer, and their page
// faults and allocations need that lock: a kernel deadlock. It is also how the test tier
// runs the server: a child that the cut leaves to be killed.

/// Role and argument of a child: `role:path`.
const CHILD: &str = "POWERCUT_FS_TEST_CHILD";

/// Runs `test` (this binary's test of that name) as a child playing `role` on `path`,
/// with its stdout piped back.
fn spawn_child(test: &str, role: &str, path: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, format!("{role}:{}", path.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// In a child: its role and path.
fn child_role() -> Option<(String, PathBuf)> {
    let v = std::env::var(CHILD).ok()?;
    let (role, path) = v.split_once(':')?;
    Some((role.to_owned(), PathBuf::from(path)))
}

/// The rest of `line` after `marker`. Markers are searched, not matched at the start: the
/// child's test harness prints "test <name> ... " without a newline before the test runs.
fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| &line[i + marker.len()..])
}

/// Reads the child's stdout until a line with `marker`; returns what follows it.
fn wait_line(lines: &mut impl Iterator<Item = std::io::Result<String>>, marker: &str) -> String {
    for line in lines {
        if let Some(rest) = after(&line.unwrap(), marker) {
            return rest.to_owned();
        }
    }
    panic!("the child ended before printing {marker:?}");
}

/// The child: maps the 4096-byte file, fills 100 bytes and msyncs them (durable), dirties
/// 100 more without a sync, says so and waits to be killed.
fn mmap_child(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    // SAFETY: a shared mapping of the 4096-byte file; the process is killed with it mapped.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        std::ptr::write_bytes(p.cast::<u8>(), 0xAB, 100);
        assert_eq!(libc::msync(p, 4096, libc::MS_SYNC), 0);
        std::ptr::write_bytes(p.cast::<u8>().add(100), 0xCD, 100);
    }
    println!("DIRTY");
    std::thread::sleep(std::time::Duration::from_secs(60));
}

#[test]
fn dirty_mmap_pages_do_not_land_after_a_cut() {
    if let Some((_, path)) = child_role() {
        return mmap_child(&path);
    }
    // Killed while the power is off, or only after it is back on: lost either way.
    for kill_before_power_on in [true, false] {
        let m = mounted();
        let path = m.path("mapped");
        let f = File::create(&path).unwrap();
        f.set_len(4096).unwrap();
        f.sync_all().unwrap();
        drop(f);
        let mut child = spawn_child("dirty_mmap_pages_do_not_land_after_a_cut", "mmap", &path);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        wait_line(&mut lines, "DIRTY");
        m.fs.cut(Cut::Drop, 0);
        if !kill_before_power_on {
            m.fs.power_on();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        if kill_before_power_on {
            m.fs.power_on();
        }
        let got = fs::read(&path).unwrap();
        assert_eq!(got.len(), 4096);
        assert!(
            got[..100].iter().all(|&b| b == 0xAB),
            "the msync'd bytes are durable"
        );
        assert!(
            got[100..].iter().all(|&b| b == 0),
            "a dirty page landed after the cut (killed before power_on: {kill_before_power_on})"
        );
    }
}

// --- SQLite -------------------------------------------------------------------------------

fn seed() -> u64 {
    std::env::var("POWERCUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// The writer child, like the server: 200 rows into a WAL database, each in its own
/// transaction, printing "ROW n" once its commit returned Ok; then it waits to be killed.
fn sqlite_writer(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch(
        "PRAGMA synchronous=FULL; CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT);",
    )
    .unwrap();
    for i in 1..=200 {
        let v = format!("row {i} {}", "x".repeat(i % 97));
        if conn
            .execute("INSERT INTO t(id, v) VALUES (?1, ?2)", (i, v))
            .is_err()
        {
            break;
        }
        println!("ROW {i}");
    }
    std::thread::sleep(std::time::Duration::from_secs(60));
}

/// The checker child, like the restarted server: opens the database (WAL recovery, a new
/// -shm), prints "CHECK <integrity_check>", "IDS <count> <contiguous from 1>", and writes.
fn sqlite_checker(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    println!("CHECK {ok}");
    let ids: Vec<u64> = conn
        .prepare("SELECT id FROM t ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let contiguous = ids.iter().zip(1..).all(|(&a, b)| a == b);
    conn.execute("INSERT INTO t(v) VALUES ('after')", [])
        .unwrap();
    println!("IDS {} {contiguous}", ids.len());
}

#[test]
fn sqlite_wal_survives_a_cut() {
    const NAME: &str = "sqlite_wal_survives_a_cut";
    match child_role() {
        Some((role, db)) if role == "writer" => return sqlite_writer(&db),
        Some((_, db)) => return sqlite_checker(&db),
        None => {}
    }
    let base = seed();
    for round in 0..4 {
        let seed = base.wrapping_add(round);
        let m = mounted();
        let db = m.path("visits.db");
        let cut_at = 1 + seed % 199;
        let mut writer = spawn_child(NAME, "writer", &db);
        let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
        let mut acked: u64 = 0;
        while acked < cut_at {
            acked = wait_line(&mut lines, "ROW ").parse().unwrap();
        }
        let report = m.fs.cut(Cut::Mixed, seed);
        // Rows acknowledged between the cut and the writer's first EIO were synced before it.
        writer.kill().unwrap();
        for line in lines {
            if let Some(n) = after(&line.unwrap(), "ROW ") {
                acked = n.parse().unwrap();
            }
        }
        writer.wait().unwrap();
        m.fs.power_on();

        let mut checker = spawn_child(NAME, "checker", &db);
        let mut lines = BufReader::new(checker.stdout.take().unwrap()).lines();
        let check = wait_line(&mut lines, "CHECK ");
        assert_eq!(check, "ok", "seed {seed}\n{report}");
        let ids = wait_line(&mut lines, "IDS ");
        assert!(checker.wait().unwrap().success(), "seed {seed}");
        let (count, contiguous) = ids.split_once(' ').unwrap();
        let count: u64 = count.parse().unwrap();
        assert!(
            count >= acked && contiguous == "true",
            "seed {seed}: {count} rows after the cut (contiguous: {contiguous}), \
             {acked} acknowledged\n{report}"
        );
    }
}

/// In DELETE journal mode the commit point is the journal's unlink, which only a directory
/// fsync makes durable: synchronous=FULL can lose the last acknowledged transaction to a cut
/// (SQLite documents EXTRA for this), synchronous=EXTRA cannot. No -shm mapping in this
/// mode, so it can run in the test process.
#[test]
fn sqlite_delete_mode_needs_synchronous_extra() {
    for (sync, survives) in [("FULL", false), ("EXTRA", true)] {
        let m = mounted();
        let db = m.path("r.db");
        {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.execute_batch(&format!(
                "PRAGMA journal_mode=DELETE; PRAGMA synchronous={sync};
                 CREATE TABLE t(v); INSERT INTO t VALUES ('first');"
            ))
            .unwrap();
            File::open(&m.dir).unwrap().sync_all().unwrap(); // the first commit is durable
            conn.execute("INSERT INTO t VALUES ('second')", []).unwrap();
        }
        let report = m.fs.cut(Cut::Drop, 0);
        m.fs.power_on();
        let conn = rusqlite::Connection::open(&db).unwrap();
        let n: u64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            n,
            if survives { 2 } else { 1 },
            "synchronous={sync}\n{report}"
        );
    }
}
