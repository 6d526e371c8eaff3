//! FUSE glue: each request takes the model's one mutex, fails with EIO while the power is
//! off, and otherwise maps one-to-one onto a `Model` call.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};

use crate::model::{Kind, Model, Res, SetAttr, Stat};

/// Zero: the kernel must ask again after a cut rather than trust what it cached.
const TTL: Duration = Duration::ZERO;

pub struct PowerCutFuse {
    pub model: Arc<Mutex<Model>>,
}

pub fn lock(model: &Mutex<Model>) -> MutexGuard<'_, Model> {
    // A panic in one request must not wedge the mount: the model stays usable.
    model.lock().unwrap_or_else(|e| e.into_inner())
}

impl PowerCutFuse {
    /// Runs `f` on the model if the power is on; EIO otherwise.
    fn on<T>(&self, f: impl FnOnce(&mut Model) -> Res<T>) -> Result<T, Errno> {
        let mut m = lock(&self.model);
        if !m.powered {
            return Err(Errno::EIO);
        }
        f(&mut m).map_err(Errno::from_i32)
    }

    /// Like `on`, for a request on a handle: handles opened before a cut stay dead, so a
    /// process that outlived the cut cannot land a write (nor its dirty mmap pages).
    fn on_fh<T>(&self, fh: FileHandle, f: impl FnOnce(&mut Model) -> Res<T>) -> Result<T, Errno> {
        self.on(|m| {
            if fh.0 == m.epoch {
                f(m)
            } else {
                Err(libc::EIO)
            }
        })
    }

    /// An entry reply: the kernel now holds a lookup reference on the inode.
    fn entry(&self, reply: ReplyEntry, r: Result<Stat, Errno>) {
        match r {
            Ok(s) => reply.entry(&TTL, &attr(&s), Generation(0)),
            Err(e) => reply.error(e),
        }
    }
}

fn attr(s: &Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(s.ino),
        size: s.size,
        blocks: s.size.div_ceil(512),
        atime: s.atime,
        mtime: s.mtime,
        ctime: s.ctime,
        crtime: s.ctime,
        kind: kind(s.kind),
        perm: s.perm,
        nlink: s.nlink,
        uid: s.uid,
        gid: s.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn kind(k: Kind) -> FileType {
    match k {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

fn empty(reply: ReplyEmpty, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

// Not implemented on purpose: getlk/setlk (the kernel then keeps POSIX and flock locks
// locally, which is all SQLite needs), link/symlink/mknod (fuser's EPERM/ENOSYS defaults).
impl Filesystem for PowerCutFuse {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = self.on(|m| {
            let s = m.lookup(parent.0, name)?;
            m.note_lookup(s.ino);
            Ok(s)
        });
        self.entry(reply, r);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        // Bookkeeping only, so it is honoured even with the power off.
        lock(&self.model).forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = match fh {
            Some(fh) => self.on_fh(fh, |m| m.stat(ino.0)),
            None => self.on(|m| m.stat(ino.0)),
        };
        match r {
            Ok(s) => reply.attr(&TTL, &attr(&s)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let a = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time),
            mtime: mtime.map(time),
        };
        let r = match fh {
            Some(fh) => self.on_fh(fh, |m| m.setattr(ino.0, a)),
            None => self.on(|m| m.setattr(ino.0, a)),
        };
        match r {
            Ok(s) => reply.attr(&TTL, &attr(&s)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        // The kernel has applied the umask already (no FUSE_DONT_MASK).
        let r = self.on(|m| {
            let s = m.mkdir(parent.0, name, mode, req.uid(), req.gid())?;
            m.note_lookup(s.ino);
            Ok(s)
        });
        self.entry(reply, r);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.on(|m| m.unlink(parent.0, name)));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.on(|m| m.rmdir(parent.0, name)));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            return reply.error(Errno::EINVAL); // RENAME_EXCHANGE / WHITEOUT: not modelled
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        empty(
            reply,
            self.on(|m| m.rename(parent.0, name, newparent.0, newname, noreplace)),
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // No FOPEN_KEEP_CACHE: every open drops the kernel's cached pages, so a fresh open
        // after a cut reads what survived. No FOPEN_DIRECT_IO: shared mmap must work.
        match self.on(|m| m.open(ino.0).map(|()| m.epoch)) {
            Ok(epoch) => reply.opened(FileHandle(epoch), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let excl = flags & libc::O_EXCL != 0;
        let r = self.on(|m| {
            let s = m.create(parent.0, name, mode, req.uid(), req.gid(), excl)?;
            m.note_lookup(s.ino);
            m.open(s.ino)?;
            Ok((s, m.epoch))
        });
        match r {
            Ok((s, epoch)) => reply.created(
                &TTL,
                &attr(&s),
                Generation(0),
                FileHandle(epoch),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.on_fh(fh, |m| m.read(ino.0, offset, size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // The offset is right for O_APPEND too: without writeback cache the kernel puts
        // the end of the file there, under the inode lock.
        match self.on_fh(fh, |m| m.write(ino.0, offset, data)) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        empty(reply, self.on_fh(fh, |_| Ok(())));
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Bookkeeping, like forget: the kernel ignores a release's error anyway.
        let mut m = lock(&self.model);
        if fh.0 == m.epoch {
            m.release(ino.0);
        }
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, fh: FileHandle, _ds: bool, reply: ReplyEmpty) {
        // fsync and fdatasync alike: both make the data and the length durable.
        empty(reply, self.on_fh(fh, |m| m.fsync(ino.0)));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.on(|m| m.stat(ino.0).map(|_| m.epoch)) {
            Ok(epoch) => reply.opened(FileHandle(epoch), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.on_fh(fh, |m| m.readdir(ino.0)) {
            Ok(entries) => {
                for (i, (child, k, name)) in entries.into_iter().enumerate().skip(offset as usize) {
                    // The offset handed back is the index of the next entry.
                    if reply.add(INodeNo(child), i as u64 + 1, kind(k), name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, _ds: bool, reply: ReplyEmpty) {
        empty(reply, self.on_fh(fh, |m| m.fsync(ino.0)));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.on(|_| Ok(())) {
            // 64 GiB free in 4 KiB blocks, a million free inodes: never the limit.
            Ok(()) => reply.statfs(1 << 24, 1 << 24, 1 << 24, 1 << 20, 1 << 20, 4096, 255, 4096),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // default_permissions: the kernel checks modes itself; this only says "exists".
        empty(reply, self.on(|m| m.stat(ino.0).map(|_| ())));
    }
}
