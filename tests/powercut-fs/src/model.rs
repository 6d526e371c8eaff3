//! The pure in-memory model: inodes, their durable and volatile state, and the cut.
//!
//! Nothing here knows about FUSE; errors are plain `errno` values. The FUSE glue
//! (`fuse.rs`) holds one `Model` behind one mutex, which is what makes a cut exact.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use crate::{Cut, CutReport, FileCut};

/// The root directory's inode number (FUSE's `FUSE_ROOT_ID`).
pub const ROOT: u64 = 1;

pub type Errno = i32;
pub type Res<T> = Result<T, Errno>;

/// An unsynced change to a file's content, kept in issue order for `Cut::Prefix`.
#[derive(Clone, Debug)]
enum DataOp {
    Write { off: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct FileData {
    /// What reads see now.
    current: Vec<u8>,
    /// Content as of the last fsync/fdatasync.
    durable: Vec<u8>,
    /// Changes since `durable`; replaying them on `durable` gives `current`.
    pending: Vec<DataOp>,
}

#[derive(Debug)]
enum Body {
    File(FileData),
    Dir {
        entries: BTreeMap<OsString, u64>,
        parent: u64,
    },
}

#[derive(Debug)]
struct Node {
    body: Body,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    /// Names in the current namespace (0 or 1: no hard links).
    nlink: u32,
    /// Open handles of the current power epoch.
    opens: u32,
}

/// One namespace change not yet durable: the entries it sets, applied atomically,
/// and the inodes it concerns (an fsync of any of them commits it).
#[derive(Debug)]
struct NsOp {
    changes: Vec<(u64, OsString, Option<u64>)>,
    concerns: Vec<u64>,
    /// mkdir, rmdir or a directory's rename: these stay in order among themselves so that
    /// the durable directories always form a tree that existed.
    dir_op: bool,
}

/// Whether committing `later` needs `earlier` (issued before it) committed too: it changes
/// the same entry (they must land in order), it creates the directory `later` changes, or
/// both reshape the directory tree.
fn depends(later: &NsOp, earlier: &NsOp) -> bool {
    (later.dir_op && earlier.dir_op)
        || later.changes.iter().any(|(dir, name, _)| {
            earlier
                .changes
                .iter()
                .any(|(d, n, t)| (d == dir && n == name) || *t == Some(*dir))
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// What `stat` shows of an inode.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

/// Attribute changes of a `setattr`; `None` leaves a field alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SystemTime>,
    pub mtime: Option<SystemTime>,
}

#[derive(Debug)]
pub struct Model {
    /// False between `cut` and `power_on`: the glue fails every operation with EIO.
    pub powered: bool,
    /// Bumped by each cut; file handles carry it so that handles opened before a cut
    /// never work again (a process that outlived the cut cannot land a write).
    pub epoch: u64,
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    /// The durable namespace: each durable directory's entries.
    durable_dirs: HashMap<u64, BTreeMap<OsString, u64>>,
    /// Namespace changes since `durable_dirs`, in order, like a file system journal:
    /// committing one commits every earlier one too.
    journal: Vec<NsOp>,
    /// Kernel lookup counts (entry replies minus forgets): the inodes the kernel may cache.
    lookups: HashMap<u64, u64>,
}

impl Default for Model {
    fn default() -> Self {
        Self::new()
    }
}

impl Model {
    pub fn new() -> Model {
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, new_node(new_dir(ROOT), 0o755, 0, 0));
        let mut durable_dirs = HashMap::new();
        durable_dirs.insert(ROOT, BTreeMap::new());
        Model {
            powered: true,
            epoch: 0,
            nodes,
            next_ino: ROOT + 1,
            durable_dirs,
            journal: Vec::new(),
            lookups: HashMap::new(),
        }
    }

    fn node(&self, ino: u64) -> Res<&Node> {
        self.nodes.get(&ino).ok_or(libc::ESTALE)
    }

    fn node_mut(&mut self, ino: u64) -> Res<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(libc::ESTALE)
    }

    fn entries(&self, dir: u64) -> Res<&BTreeMap<OsString, u64>> {
        match &self.node(dir)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            Body::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: u64) -> Res<&mut BTreeMap<OsString, u64>> {
        match &mut self.node_mut(dir)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            Body::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Res<&mut FileData> {
        match &mut self.node_mut(ino)?.body {
            Body::File(f) => Ok(f),
            Body::Dir { .. } => Err(libc::EISDIR),
        }
    }

    pub fn stat(&self, ino: u64) -> Res<Stat> {
        let n = self.node(ino)?;
        let (kind, size) = match &n.body {
            Body::File(f) => (Kind::File, f.current.len() as u64),
            Body::Dir { .. } => (Kind::Dir, 4096),
        };
        Ok(Stat {
            ino,
            kind,
            size,
            perm: n.perm,
            nlink: if kind == Kind::Dir { 2 } else { n.nlink },
            uid: n.uid,
            gid: n.gid,
            atime: n.atime,
            mtime: n.mtime,
            ctime: n.ctime,
        })
    }

    /// Records that the kernel got an entry for `ino` (it may now cache the inode).
    pub fn note_lookup(&mut self, ino: u64) {
        *self.lookups.entry(ino).or_default() += 1;
    }

    pub fn forget(&mut self, ino: u64, n: u64) {
        if let Some(c) = self.lookups.get_mut(&ino) {
            *c = c.saturating_sub(n);
            if *c == 0 {
                self.lookups.remove(&ino);
            }
        }
    }

    /// Inodes the kernel may hold cached attributes or pages for.
    pub fn known_inodes(&self) -> Vec<u64> {
        self.lookups.keys().copied().collect()
    }

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Res<Stat> {
        let ino = *self.entries(parent)?.get(name).ok_or(libc::ENOENT)?;
        self.stat(ino)
    }

    /// Creates a file; with `excl` an existing name fails with EEXIST, without it the
    /// existing file is returned (the kernel's lookup and our create can race).
    pub fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        uid: u32,
        gid: u32,
        excl: bool,
    ) -> Res<Stat> {
        if let Some(&ino) = self.entries(parent)?.get(name) {
            if excl {
                return Err(libc::EEXIST);
            }
            return self.stat(ino);
        }
        let body = Body::File(FileData::default());
        self.link_new(parent, name, body, mode, uid, gid)
    }

    pub fn mkdir(&mut self, parent: u64, name: &OsStr, mode: u32, uid: u32, gid: u32) -> Res<Stat> {
        if self.entries(parent)?.contains_key(name) {
            return Err(libc::EEXIST);
        }
        self.link_new(parent, name, new_dir(parent), mode, uid, gid)
    }

    fn link_new(
        &mut self,
        parent: u64,
        name: &OsStr,
        body: Body,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Res<Stat> {
        let ino = self.next_ino;
        self.next_ino += 1; // never reused: the kernel identifies inodes by number
        let dir_op = matches!(body, Body::Dir { .. });
        let mut node = new_node(body, (mode & 0o7777) as u16, uid, gid);
        node.nlink = 1;
        self.nodes.insert(ino, node);
        self.entries_mut(parent)?.insert(name.to_owned(), ino);
        self.touch_dir(parent);
        self.journal.push(NsOp {
            changes: vec![(parent, name.to_owned(), Some(ino))],
            concerns: vec![parent, ino],
            dir_op,
        });
        self.stat(ino)
    }

    pub fn unlink(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        self.remove(parent, name, Kind::File)
    }

    pub fn rmdir(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        self.remove(parent, name, Kind::Dir)
    }

    fn remove(&mut self, parent: u64, name: &OsStr, want: Kind) -> Res<()> {
        let ino = *self.entries(parent)?.get(name).ok_or(libc::ENOENT)?;
        match (&self.node(ino)?.body, want) {
            (Body::File(_), Kind::Dir) => return Err(libc::ENOTDIR),
            (Body::Dir { .. }, Kind::File) => return Err(libc::EISDIR),
            (Body::Dir { entries, .. }, Kind::Dir) if !entries.is_empty() => {
                return Err(libc::ENOTEMPTY)
            }
            _ => {}
        }
        self.entries_mut(parent)?.remove(name);
        self.node_mut(ino)?.nlink = 0;
        self.touch_dir(parent);
        self.journal.push(NsOp {
            changes: vec![(parent, name.to_owned(), None)],
            concerns: vec![parent, ino],
            dir_op: want == Kind::Dir,
        });
        self.gc();
        Ok(())
    }

    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        noreplace: bool,
    ) -> Res<()> {
        let ino = *self.entries(parent)?.get(name).ok_or(libc::ENOENT)?;
        self.entries(new_parent)?; // ENOTDIR/ESTALE before any change
        let replaced = self.entries(new_parent)?.get(new_name).copied();
        if let Some(old) = replaced {
            if old == ino {
                return Ok(());
            }
            if noreplace {
                return Err(libc::EEXIST);
            }
            match (&self.node(ino)?.body, &self.node(old)?.body) {
                (Body::File(_), Body::Dir { .. }) => return Err(libc::EISDIR),
                (Body::Dir { .. }, Body::File(_)) => return Err(libc::ENOTDIR),
                (_, Body::Dir { entries, .. }) if !entries.is_empty() => {
                    return Err(libc::ENOTEMPTY)
                }
                _ => {}
            }
            self.node_mut(old)?.nlink = 0;
        }
        self.entries_mut(parent)?.remove(name);
        self.entries_mut(new_parent)?
            .insert(new_name.to_owned(), ino);
        if let Body::Dir { parent: p, .. } = &mut self.node_mut(ino)?.body {
            *p = new_parent;
        }
        self.touch_dir(parent);
        self.touch_dir(new_parent);
        let mut concerns = vec![parent, new_parent, ino];
        concerns.extend(replaced);
        let dir_op = matches!(self.node(ino)?.body, Body::Dir { .. });
        self.journal.push(NsOp {
            changes: vec![
                (parent, name.to_owned(), None),
                (new_parent, new_name.to_owned(), Some(ino)),
            ],
            concerns,
            dir_op,
        });
        self.gc();
        Ok(())
    }

    fn touch_dir(&mut self, dir: u64) {
        if let Some(n) = self.nodes.get_mut(&dir) {
            let now = SystemTime::now();
            n.mtime = now;
            n.ctime = now;
        }
    }

    /// Entries of a directory, with "." and "..".
    pub fn readdir(&self, dir: u64) -> Res<Vec<(u64, Kind, OsString)>> {
        let Body::Dir { entries, parent } = &self.node(dir)?.body else {
            return Err(libc::ENOTDIR);
        };
        let mut out = vec![
            (dir, Kind::Dir, OsString::from(".")),
            (*parent, Kind::Dir, OsString::from("..")),
        ];
        for (name, &ino) in entries {
            out.push((ino, self.stat(ino)?.kind, name.clone()));
        }
        Ok(out)
    }

    pub fn read(&self, ino: u64, off: u64, size: u32) -> Res<Vec<u8>> {
        match &self.node(ino)?.body {
            Body::File(f) => {
                let start = (off as usize).min(f.current.len());
                let end = start.saturating_add(size as usize).min(f.current.len());
                Ok(f.current[start..end].to_vec())
            }
            Body::Dir { .. } => Err(libc::EISDIR),
        }
    }

    pub fn write(&mut self, ino: u64, off: u64, data: &[u8]) -> Res<()> {
        let f = self.file_mut(ino)?;
        write_at(&mut f.current, off, data);
        f.pending.push(DataOp::Write {
            off,
            data: data.to_vec(),
        });
        self.touch_file(ino);
        Ok(())
    }

    pub fn setattr(&mut self, ino: u64, a: SetAttr) -> Res<Stat> {
        if let Some(len) = a.size {
            let f = self.file_mut(ino)?;
            f.current.resize(len as usize, 0);
            f.pending.push(DataOp::SetLen(len));
            self.touch_file(ino);
        }
        let n = self.node_mut(ino)?;
        if let Some(mode) = a.mode {
            n.perm = (mode & 0o7777) as u16;
        }
        n.uid = a.uid.unwrap_or(n.uid);
        n.gid = a.gid.unwrap_or(n.gid);
        n.atime = a.atime.unwrap_or(n.atime);
        n.mtime = a.mtime.unwrap_or(n.mtime);
        n.ctime = SystemTime::now();
        self.stat(ino)
    }

    fn touch_file(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            let now = SystemTime::now();
            n.mtime = now;
            n.ctime = now;
        }
    }

    /// fsync / fdatasync of a file, or fsync of a directory: its content becomes durable, and
    /// so does every namespace change that concerns it (a directory is concerned by changes of
    /// its entries and of its own name; a file by changes of its name), with what those
    /// depend on (see [`depends`]).
    pub fn fsync(&mut self, ino: u64) -> Res<()> {
        if let Body::File(f) = &mut self.node_mut(ino)?.body {
            f.durable = f.current.clone();
            f.pending.clear();
        }
        let mut pick: Vec<bool> = self
            .journal
            .iter()
            .map(|op| op.concerns.contains(&ino))
            .collect();
        let mut work: Vec<usize> = (0..pick.len()).filter(|&i| pick[i]).collect();
        if work.is_empty() {
            return Ok(());
        }
        while let Some(i) = work.pop() {
            for (j, picked) in pick.iter_mut().enumerate().take(i) {
                if !*picked && depends(&self.journal[i], &self.journal[j]) {
                    *picked = true;
                    work.push(j);
                }
            }
        }
        let journal = std::mem::take(&mut self.journal);
        for (op, picked) in journal.into_iter().zip(pick) {
            if picked {
                for (dir, name, target) in op.changes {
                    self.commit_entry(dir, name, target);
                }
            } else {
                self.journal.push(op);
            }
        }
        self.gc();
        Ok(())
    }

    fn commit_entry(&mut self, dir: u64, name: OsString, target: Option<u64>) {
        let old = match target {
            Some(ino) => self.durable_dirs.entry(dir).or_default().insert(name, ino),
            None => self
                .durable_dirs
                .get_mut(&dir)
                .and_then(|m| m.remove(&name)),
        };
        // A directory whose durable name is gone keeps no durable entries.
        if let Some(old) = old.filter(|&o| Some(o) != target) {
            self.durable_dirs.remove(&old);
        }
        if let Some(ino) = target {
            if matches!(
                self.nodes.get(&ino).map(|n| &n.body),
                Some(Body::Dir { .. })
            ) {
                self.durable_dirs.entry(ino).or_default();
            }
        }
    }

    pub fn open(&mut self, ino: u64) -> Res<()> {
        self.node_mut(ino)?.opens += 1;
        Ok(())
    }

    pub fn release(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.opens = n.opens.saturating_sub(1);
            if n.opens == 0 && n.nlink == 0 {
                self.gc();
            }
        }
    }

    /// Drops inodes nothing can reach any more: unnamed now, not named durably, not named by
    /// a pending namespace change (a cut could bring them back) and not open.
    fn gc(&mut self) {
        let mut live: HashSet<u64> = self.durable_dirs.keys().copied().collect();
        live.extend(self.durable_dirs.values().flat_map(|m| m.values().copied()));
        for op in &self.journal {
            live.extend(op.concerns.iter().copied());
        }
        self.nodes
            .retain(|ino, n| *ino == ROOT || n.nlink > 0 || n.opens > 0 || live.contains(ino));
    }

    /// Content of the file at `rel` (relative to the root) in the current namespace.
    pub fn read_path(&self, rel: &Path) -> Option<Vec<u8>> {
        let mut ino = ROOT;
        for c in rel.components() {
            match c {
                Component::Normal(name) => ino = *self.entries(ino).ok()?.get(name)?,
                Component::CurDir => {}
                _ => return None,
            }
        }
        match &self.nodes.get(&ino)?.body {
            Body::File(f) => Some(f.current.clone()),
            Body::Dir { .. } => None,
        }
    }

    /// The power cut: powers off, then replaces the current state by what survives.
    pub fn cut(&mut self, how: Cut, seed: u64) -> CutReport {
        self.powered = false;
        self.epoch += 1;
        self.journal.clear();
        // Walk the durable namespace; what it does not reach is gone.
        let mut reached: HashSet<u64> = HashSet::from([ROOT]);
        let mut files = Vec::new();
        let mut stack = vec![(ROOT, PathBuf::new())];
        while let Some((dir, path)) = stack.pop() {
            let entries = self.durable_dirs.get(&dir).cloned().unwrap_or_default();
            for (name, &ino) in &entries {
                let Some(node) = self.nodes.get_mut(&ino) else {
                    continue; // cannot happen: gc keeps durably named inodes
                };
                reached.insert(ino);
                node.nlink = 1;
                match &mut node.body {
                    Body::Dir { parent, .. } => {
                        *parent = dir;
                        stack.push((ino, path.join(name)));
                    }
                    Body::File(_) => files.push((ino, path.join(name))),
                }
            }
            if let Some(Body::Dir { entries: e, .. }) =
                self.nodes.get_mut(&dir).map(|n| &mut n.body)
            {
                *e = entries;
            }
        }
        self.nodes.retain(|ino, _| reached.contains(ino));
        self.durable_dirs.retain(|ino, _| reached.contains(ino));
        for n in self.nodes.values_mut() {
            n.opens = 0; // handles of the old epoch are dead
        }
        files.sort_by(|a, b| a.1.cmp(&b.1));
        let mut report = CutReport::default();
        for (ino, path) in files {
            let mut rng = Rng::new(seed ^ fnv1a(path.as_os_str().as_encoded_bytes()));
            let applied = match how {
                Cut::Mixed => [Cut::Drop, Cut::Zeros, Cut::Prefix][rng.below(3)],
                h => h,
            };
            let Some(Body::File(f)) = self.nodes.get_mut(&ino).map(|n| &mut n.body) else {
                continue;
            };
            let len_before = f.current.len() as u64;
            let synced_len = f.durable.len() as u64;
            let after = resolve(f, applied, &mut rng);
            report.files.push(FileCut {
                path,
                synced_len,
                len_before,
                len_after: after.len() as u64,
                how: applied,
            });
            // What survived is what is on the disk: durable.
            f.durable = after.clone();
            f.current = after;
            f.pending.clear();
        }
        report
    }
}

fn new_node(body: Body, perm: u16, uid: u32, gid: u32) -> Node {
    let now = SystemTime::now();
    Node {
        body,
        perm,
        uid,
        gid,
        atime: now,
        mtime: now,
        ctime: now,
        nlink: 0,
        opens: 0,
    }
}

fn new_dir(parent: u64) -> Body {
    Body::Dir {
        entries: BTreeMap::new(),
        parent,
    }
}

fn write_at(buf: &mut Vec<u8>, off: u64, data: &[u8]) {
    let off = off as usize;
    if buf.len() < off + data.len() {
        buf.resize(off + data.len(), 0);
    }
    buf[off..off + data.len()].copy_from_slice(data);
}

fn apply(buf: &mut Vec<u8>, op: &DataOp) {
    match op {
        DataOp::Write { off, data } => write_at(buf, *off, data),
        DataOp::SetLen(len) => buf.resize(*len as usize, 0),
    }
}

/// A file's content after a cut under policy `how` (never `Mixed`: chosen per file before).
fn resolve(f: &FileData, how: Cut, rng: &mut Rng) -> Vec<u8> {
    let mut out = f.durable.clone();
    match how {
        Cut::Drop | Cut::Mixed => {}
        Cut::Zeros => {
            // Lengths (metadata) landed, the data blocks did not.
            for op in &f.pending {
                match op {
                    DataOp::Write { off, data } => write_at(&mut out, *off, &vec![0; data.len()]),
                    op => apply(&mut out, op),
                }
            }
        }
        Cut::Prefix => {
            let n = f.pending.len();
            let k = rng.below(n + 1);
            f.pending[..k].iter().for_each(|op| apply(&mut out, op));
            // The next write may have landed in part: writes are not atomic.
            if let Some(DataOp::Write { off, data }) = f.pending.get(k) {
                if !data.is_empty() {
                    write_at(&mut out, *off, &data[..rng.below(data.len())]);
                }
            }
        }
    }
    out
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// splitmix64: tiny, seedable, good enough to pick cut outcomes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    fn file(m: &mut Model, dir: u64, n: &str) -> u64 {
        m.create(dir, name(n), 0o644, 0, 0, true).unwrap().ino
    }

    fn content(m: &Model, p: &str) -> Option<Vec<u8>> {
        m.read_path(Path::new(p))
    }

    /// 100 synced bytes then 64 unsynced ones in two writes.
    fn synced_then_more(m: &mut Model) -> u64 {
        let f = file(m, ROOT, "f");
        m.write(f, 0, &[1; 100]).unwrap();
        m.fsync(f).unwrap();
        m.write(f, 100, &[2; 32]).unwrap();
        m.write(f, 132, &[3; 32]).unwrap();
        f
    }

    #[test]
    fn drop_keeps_synced_content() {
        let mut m = Model::new();
        synced_then_more(&mut m);
        let r = m.cut(Cut::Drop, 1);
        assert!(!m.powered);
        assert_eq!(content(&m, "f").unwrap(), vec![1; 100]);
        assert_eq!((r.files[0].synced_len, r.files[0].len_before), (100, 164));
        assert_eq!(r.files[0].len_after, 100);
    }

    #[test]
    fn zeros_keep_length_not_data() {
        let mut m = Model::new();
        synced_then_more(&mut m);
        m.cut(Cut::Zeros, 1);
        let c = content(&m, "f").unwrap();
        assert_eq!(c.len(), 164);
        assert_eq!(&c[..100], &[1; 100][..]);
        assert!(c[100..].iter().all(|&b| b == 0));
    }

    #[test]
    fn prefix_is_a_prefix_of_the_writes() {
        let mut lens = HashSet::new();
        for seed in 0..200 {
            let mut m = Model::new();
            synced_then_more(&mut m);
            m.cut(Cut::Prefix, seed);
            let c = content(&m, "f").unwrap();
            assert!((100..=164).contains(&c.len()), "{}", c.len());
            let want: Vec<u8> = [[1; 100].as_slice(), &[2; 32], &[3; 32]].concat();
            assert_eq!(c[..], want[..c.len()]);
            lens.insert(c.len());
        }
        assert!(lens.len() > 10, "seeds should give many lengths: {lens:?}");
    }

    #[test]
    fn same_seed_same_outcome() {
        let run = |seed| {
            let mut m = Model::new();
            synced_then_more(&mut m);
            let r = m.cut(Cut::Mixed, seed);
            (content(&m, "f"), r.files[0].how)
        };
        assert_eq!(run(7), run(7));
        let hows: HashSet<_> = (0..50).map(|s| format!("{:?}", run(s).1)).collect();
        assert_eq!(hows.len(), 3, "Mixed picks every policy: {hows:?}");
    }

    #[test]
    fn truncate_is_an_operation_too() {
        let mut m = Model::new();
        let f = file(&mut m, ROOT, "f");
        m.write(f, 0, &[1; 10]).unwrap();
        m.fsync(f).unwrap();
        m.setattr(
            f,
            SetAttr {
                size: Some(4),
                ..Default::default()
            },
        )
        .unwrap();
        m.write(f, 4, &[5; 2]).unwrap();
        m.cut(Cut::Zeros, 0);
        assert_eq!(content(&m, "f").unwrap(), vec![1, 1, 1, 1, 0, 0]);
    }

    #[test]
    fn namespace_needs_a_sync() {
        let mut m = Model::new();
        let a = file(&mut m, ROOT, "never-synced");
        m.write(a, 0, b"x").unwrap();
        let b = file(&mut m, ROOT, "synced");
        m.write(b, 0, b"y").unwrap();
        m.fsync(b).unwrap(); // commits b's creation only
        let c = file(&mut m, ROOT, "late");
        m.write(c, 0, b"z").unwrap();
        let t = file(&mut m, ROOT, "temp");
        m.unlink(ROOT, name("temp")).unwrap();
        let _ = t;
        m.cut(Cut::Drop, 0);
        assert_eq!(content(&m, "synced").unwrap(), b"y");
        assert_eq!(content(&m, "never-synced"), None);
        assert_eq!(content(&m, "late"), None);
        assert_eq!(content(&m, "temp"), None);
    }

    #[test]
    fn unsynced_unlink_is_undone() {
        let mut m = Model::new();
        let f = file(&mut m, ROOT, "f");
        m.write(f, 0, b"keep").unwrap();
        m.fsync(f).unwrap();
        m.unlink(ROOT, name("f")).unwrap();
        assert_eq!(content(&m, "f"), None);
        m.cut(Cut::Drop, 0);
        assert_eq!(content(&m, "f").unwrap(), b"keep");
        // ... unless made durable by a directory fsync.
        m.powered = true;
        m.unlink(ROOT, name("f")).unwrap();
        m.fsync(ROOT).unwrap();
        m.cut(Cut::Drop, 0);
        assert_eq!(content(&m, "f"), None);
        assert_eq!(m.nodes.len(), 1, "only the root is left");
    }

    #[test]
    fn rename_over_then_dir_fsync() {
        let mut m = Model::new();
        let old = file(&mut m, ROOT, "db");
        m.write(old, 0, b"old").unwrap();
        m.fsync(old).unwrap();
        let new = file(&mut m, ROOT, "db.tmp");
        m.write(new, 0, b"new").unwrap();
        m.fsync(new).unwrap();
        m.rename(ROOT, name("db.tmp"), ROOT, name("db"), false)
            .unwrap();
        // Without a sync the rename is undone.
        {
            let mut m2 = Model::new();
            let o = file(&mut m2, ROOT, "a");
            m2.write(o, 0, b"old").unwrap();
            m2.fsync(o).unwrap();
            let n = file(&mut m2, ROOT, "b");
            m2.write(n, 0, b"new").unwrap();
            m2.fsync(n).unwrap();
            m2.rename(ROOT, name("b"), ROOT, name("a"), false).unwrap();
            m2.cut(Cut::Drop, 0);
            assert_eq!(content(&m2, "a").unwrap(), b"old");
            assert_eq!(content(&m2, "b").unwrap(), b"new");
        }
        m.fsync(ROOT).unwrap();
        m.cut(Cut::Drop, 0);
        assert_eq!(content(&m, "db").unwrap(), b"new");
        assert_eq!(content(&m, "db.tmp"), None);
    }

    #[test]
    fn new_dir_and_file_durable_by_file_fsync() {
        let mut m = Model::new();
        let d = m.mkdir(ROOT, name("d"), 0o755, 0, 0).unwrap().ino;
        let f = file(&mut m, d, "f");
        m.write(f, 0, b"data").unwrap();
        m.fsync(f).unwrap();
        let g = file(&mut m, d, "g"); // after the commit: lost
        let _ = g;
        m.cut(Cut::Drop, 0);
        assert_eq!(content(&m, "d/f").unwrap(), b"data");
        assert_eq!(content(&m, "d/g"), None);
    }

    #[test]
    fn changes_of_one_name_land_in_order() {
        let mut m = Model::new();
        let a = file(&mut m, ROOT, "n");
        m.write(a, 0, b"first").unwrap();
        m.fsync(a).unwrap();
        m.unlink(ROOT, name("n")).unwrap();
        let b = file(&mut m, ROOT, "n");
        m.write(b, 0, b"second").unwrap();
        // b's creation needs the unlink before it (same name), not anything else.
        let other = file(&mut m, ROOT, "other");
        let _ = other;
        m.fsync(b).unwrap();
        m.fsync(ROOT).unwrap(); // commits "other"; must not bring the unlinked "n" back
        m.cut(Cut::Drop, 0);
        assert_eq!(content(&m, "n").unwrap(), b"second");
        assert_eq!(content(&m, "other").unwrap(), b"");
    }

    #[test]
    fn directory_moves_stay_a_tree() {
        let mut m = Model::new();
        let a = m.mkdir(ROOT, name("a"), 0o755, 0, 0).unwrap().ino;
        let b = m.mkdir(ROOT, name("b"), 0o755, 0, 0).unwrap().ino;
        m.fsync(ROOT).unwrap();
        m.rename(ROOT, name("a"), b, name("a"), false).unwrap(); // b/a
        m.rename(b, name("a"), ROOT, name("a"), false).unwrap(); // back to a
        m.rename(ROOT, name("b"), a, name("b"), false).unwrap(); // a/b
        let f = file(&mut m, b, "f");
        m.write(f, 0, b"x").unwrap();
        m.fsync(f).unwrap(); // needs b's moves, so every earlier directory move
        m.cut(Cut::Drop, 0);
        assert_eq!(content(&m, "a/b/f").unwrap(), b"x");
    }

    #[test]
    fn errors() {
        let mut m = Model::new();
        file(&mut m, ROOT, "f");
        assert_eq!(
            m.create(ROOT, name("f"), 0o644, 0, 0, true).unwrap_err(),
            libc::EEXIST
        );
        let d = m.mkdir(ROOT, name("d"), 0o755, 0, 0).unwrap().ino;
        file(&mut m, d, "x");
        assert_eq!(m.rmdir(ROOT, name("d")).unwrap_err(), libc::ENOTEMPTY);
        assert_eq!(m.unlink(ROOT, name("d")).unwrap_err(), libc::EISDIR);
        assert_eq!(m.rmdir(ROOT, name("f")).unwrap_err(), libc::ENOTDIR);
        assert_eq!(
            m.rename(ROOT, name("f"), d, name("x"), true).unwrap_err(),
            libc::EEXIST
        );
        assert_eq!(m.lookup(ROOT, name("nope")).unwrap_err(), libc::ENOENT);
    }

    #[test]
    fn unlinked_files_are_collected() {
        let mut m = Model::new();
        for i in 0..10 {
            let n = format!("j{i}");
            let f = file(&mut m, ROOT, &n);
            m.open(f).unwrap();
            m.write(f, 0, &[0; 4096]).unwrap();
            m.fsync(f).unwrap();
            m.unlink(ROOT, name(&n)).unwrap();
            m.release(f);
            m.fsync(ROOT).unwrap();
        }
        assert_eq!(m.nodes.len(), 1);
    }
}
