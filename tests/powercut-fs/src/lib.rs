//! `powercut-fs`: an in-memory FUSE file system that simulates a power cut.
//!
//! A test mounts it ([`PowerCutFs::mount`]), runs a program on it (as a child process: the
//! FUSE session runs on background threads of the caller), cuts the power at some moment
//! ([`PowerCutFs::cut`]), kills the program, powers back on ([`PowerCutFs::power_on`]) and
//! restarts the program on what is left.
//!
//! # What is modelled
//!
//! **Data.** Each file has a *durable* content (as of its last `fsync` or `fdatasync`: both
//! make the data and the length durable) and the ordered list of changes since then (writes
//! with their offset and bytes, truncates). Reads always see the current, volatile content.
//! At a cut, each file keeps its durable content plus its unsynced changes resolved by a
//! [`Cut`] policy: all lost ([`Cut::Drop`]), lengths kept but written bytes zeroed
//! ([`Cut::Zeros`]), or a random prefix in issue order with the last write possibly torn
//! ([`Cut::Prefix`]). `Zeros` zeroes *every* unsynced write, in-place overwrites of synced
//! bytes included, which is harsher than a real file system (that would show old or new).
//!
//! **Namespace.** Each create, mkdir, unlink, rmdir and rename is a pending change until it
//! becomes durable, at the next fsync of its parent directory (FUSE `fsyncdir`) or the next
//! fsync/fdatasync of the file it concerns (ext4 and XFS commit a new file's entry with the
//! file's fsync; a rename concerns the moved file and the one it replaced). Committing a
//! change also commits the earlier pending changes it needs: those of the same name (so they
//! land in order), the creation of its directory, and, for directory-shaping changes (mkdir,
//! rmdir, renaming a directory), every earlier one of those, so the durable directories
//! always form a tree that really existed. Unrelated changes are not committed (real ext4
//! commits its whole journal on any fsync; this is harsher). At a cut every change not yet
//! durable is undone: a file created but never synced vanishes (whatever its data), an
//! unlink that never became durable is undone and the file is back with its durable content,
//! a rename likewise goes back.
//!
//! **Not modelled.** Metadata other than names and lengths (modes, owners, times) is kept
//! as it is across a cut. No hard links, symlinks or special files. No space limit.
//!
//! **Power.** From [`PowerCutFs::cut`] on, every operation fails with EIO, including
//! `getattr` and `lookup`. Every request takes the one mutex the whole state lives behind, so
//! an operation racing with the cut either completes before it (and is an unsynced change
//! like any other) or fails. File handles opened before a cut stay dead after
//! [`PowerCutFs::power_on`] (EIO), so a process that outlived the cut, or its dirty mmap
//! pages, cannot land anything later.
//!
//! **Kernel caches.** Entry and attribute TTLs are zero, so names and lengths are asked
//! again after a cut. Opens never set `FOPEN_KEEP_CACHE`: each open drops the file's cached
//! pages, so a fresh open after `power_on` reads what survived even if the kernel held the
//! pre-cut bytes. `power_on` also sends an inode invalidation for every inode the kernel knows
//! *before* turning the power back on: dirty mmap pages are written back while writes still
//! fail (lost, as in a real cut) and clean cached pages are dropped. With the dead handles
//! above, either measure alone was enough in the tests; both are kept. Writeback caching and
//! `direct_io` stay off, so shared writable mmap (SQLite's `-shm`) works through the page
//! cache and `O_APPEND` writes arrive with the end-of-file offset. POSIX and `flock` locks are
//! left to the kernel (no `getlk`/`setlk`).
//!
//! # Do not map files of the mount in the process that mounted it
//!
//! The session threads live in the caller's process. A `munmap` (or exit) of a dirty shared
//! mapping of a file on the mount holds that process's mmap lock while it waits for the
//! writeback, which these threads must serve; their page faults and allocations (`mprotect`
//! growing a malloc arena) need the same lock: a kernel deadlock, unkillable, that only
//! aborting the FUSE connection (`/sys/fs/fuse/connections/N/abort`) ends. So SQLite in WAL
//! mode, or any mmap, on the mount runs in a child process (as the server under test does);
//! the test's own checks use [`PowerCutFs::read`] or plain `read`/`write` calls.
//!
//! # Mounting
//!
//! Root only, and no libfuse or `fusermount` (no apt package): [`PowerCutFs::mount`] opens
//! `/dev/fuse`, calls `mount(2)` with `fd=N,rootmode=40000,user_id=…,group_id=…,
//! default_permissions,allow_other` and hands the descriptor to `fuser::Session::from_fd`.
//! Dropping the [`PowerCutFs`] detaches the mount (`MNT_DETACH`) and joins the session
//! threads, which end once nothing uses the mount any more.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fuser::{BackgroundSession, Config, INodeNo, Notifier, Session, SessionACL};

mod fuse;
mod model;

use fuse::{lock, PowerCutFuse};
use model::Model;

/// A mounted power-cut file system. Dropping it unmounts (`MNT_DETACH`) and stops the
/// session threads.
pub struct PowerCutFs {
    model: Arc<Mutex<Model>>,
    dir: PathBuf,
    notifier: Notifier,
    session: Option<BackgroundSession>,
}

/// What becomes of a file's writes since its last sync when the power is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Every write since the file's last sync is lost; length back to the synced length.
    Drop,
    /// The file keeps the length its unsynced writes gave it, but those bytes read as zeros
    /// (XFS, ext4 data=writeback).
    Zeros,
    /// A random prefix (in issue order) of the unsynced writes lands, the last one possibly
    /// only partly (a random byte count of it; writes are NOT atomic across a cut).
    Prefix,
    /// Per file, one of the three above at random.
    Mixed,
}

/// What a cut did to each file that survived it.
#[derive(Clone, Debug, Default)]
pub struct CutReport {
    /// Per file (path relative to the root, after the cut): synced length, length before the
    /// cut, length after the cut, and which policy applied.
    pub files: Vec<FileCut>,
}

/// One surviving file's fate in a [`CutReport`].
#[derive(Clone, Debug)]
pub struct FileCut {
    /// Path relative to the mount root, in the namespace after the cut.
    pub path: PathBuf,
    /// Length as of the file's last fsync/fdatasync.
    pub synced_len: u64,
    /// Length the file had just before the cut.
    pub len_before: u64,
    /// Length it has after the cut.
    pub len_after: u64,
    /// The policy applied (never [`Cut::Mixed`]: the one `Mixed` picked).
    pub how: Cut,
}

impl fmt::Display for CutReport {
    /// One line per file that had unsynced data (its length differed from the synced one or
    /// the cut changed it); files that were fully synced are left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.files {
            if c.len_before != c.synced_len || c.len_after != c.len_before {
                writeln!(
                    f,
                    "{}: synced {} B, {} B before the cut, {} B after ({:?})",
                    c.path.display(),
                    c.synced_len,
                    c.len_before,
                    c.len_after,
                    c.how
                )?;
            }
        }
        Ok(())
    }
}

impl PowerCutFs {
    /// Mounts an empty in-memory file system over `dir` (an existing empty directory).
    /// Needs root and `/dev/fuse`.
    pub fn mount(dir: &Path) -> io::Result<PowerCutFs> {
        let dir = dir.canonicalize()?;
        // std opens with O_CLOEXEC: the program under test never inherits the device.
        let dev: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .map_err(|e| io::Error::new(e.kind(), format!("open /dev/fuse: {e}")))?
            .into();
        let opts = format!(
            "fd={},rootmode=40000,user_id={},group_id={},default_permissions,allow_other",
            dev.as_raw_fd(),
            unsafe { libc::geteuid() },
            unsafe { libc::getegid() },
        );
        let target = CString::new(dir.as_os_str().as_bytes())?;
        let opts = CString::new(opts)?;
        // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
        let rc = unsafe {
            libc::mount(
                c"powercut".as_ptr(),
                target.as_ptr(),
                c"fuse".as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("mount fuse on {}: {e}", dir.display()),
            ));
        }
        let model = Arc::new(Mutex::new(Model::new()));
        let fs = PowerCutFuse {
            model: model.clone(),
        };
        let mut config = Config::default();
        // allow_other: the kernel lets any user in; fuser must not filter by uid either.
        config.acl = SessionACL::All;
        // A second thread answers while the first is busy (e.g. during a writeback).
        config.n_threads = Some(2);
        // from_fd reads and answers the kernel's INIT, queued by the mount above.
        let session = Session::from_fd(fs, dev, SessionACL::All, config)
            .and_then(Session::spawn)
            .inspect_err(|_| detach(&target))?;
        Ok(PowerCutFs {
            model,
            notifier: session.notifier(),
            dir,
            session: Some(session),
        })
    }

    /// Cuts the power now. From this instant every file operation on the mount fails with EIO
    /// (the node is off: nothing written after the cut may land). The surviving state becomes:
    /// every file's content as of its last fsync/fdatasync, plus its writes since then resolved
    /// by `how` (see [`Cut`]); the namespace as of its last durable point (see the crate doc).
    /// `seed` drives every random choice, so a failing cut can be replayed.
    pub fn cut(&self, how: Cut, seed: u64) -> CutReport {
        lock(&self.model).cut(how, seed)
    }

    /// Power back on: operations succeed again, on the state the cut left. First, with the
    /// power still off, the kernel is told to drop what it caches of every inode it knows.
    pub fn power_on(&self) {
        let inodes = lock(&self.model).known_inodes();
        // Not under the lock: invalidating dirty pages makes the kernel send writes, which the
        // session threads must answer (with EIO). Twice: a page whose writeback failed stays
        // cached, clean, until the second pass.
        for _ in 0..2 {
            for &ino in &inodes {
                // An inode the kernel forgot meanwhile answers ENOENT, which fuser ignores.
                let _ = self.notifier.inval_inode(INodeNo(ino), 0, 0);
            }
        }
        lock(&self.model).powered = true;
    }

    /// Content of a file as the mount would show it now (for the test's own checks), by path
    /// relative to the mount root; None if absent or a directory. Reads the model directly,
    /// not through the kernel, and works whether the power is on or off (after a cut it shows
    /// what survived).
    pub fn read(&self, rel: &Path) -> Option<Vec<u8>> {
        lock(&self.model).read_path(rel)
    }
}

impl Drop for PowerCutFs {
    fn drop(&mut self) {
        if let Ok(target) = CString::new(self.dir.as_os_str().as_bytes()) {
            detach(&target);
        }
        let Some(session) = self.session.take() else {
            return;
        };
        // The threads end when the kernel destroys the mount, which a detached mount that a
        // process still uses postpones: then leave them running rather than hang the caller.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !session.guard.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if session.guard.is_finished() {
            let _ = session.join();
        }
    }
}

fn detach(target: &CString) {
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
}
