//! The log as the append path opens it, and what `file_log` reads of an open log.
//!
//! Natively the log is a `std::fs::File` in append mode. Under WASI it is a `wasi:filesystem`
//! descriptor, and a record goes out as one `blocking-write-and-flush` on its append stream:
//! std's `write` on an `O_APPEND` file goes through the stream's non-blocking `write`, which
//! wasmtime always runs on another thread and waits for: two thread switches per visit (GET /
//! at 16 connections went from about 11.3k to 14.1k req/s without them). The blocking call
//! runs the same `pwritev2(RWF_APPEND)` on the request's own thread. The log's open and stat
//! also make two `statx` calls where std's made four.

use std::io;
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;

/// What `file_log` needs of an open log: its kind and length, and bytes at an offset.
pub trait RecordFile {
    /// Whether it is a regular file, and its length in bytes.
    fn kind_and_len(&mut self) -> io::Result<(bool, u64)>;
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl RecordFile for std::fs::File {
    fn kind_and_len(&mut self) -> io::Result<(bool, u64)> {
        let meta = self.metadata()?;
        Ok((meta.is_file(), meta.len()))
    }

    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        self.seek(SeekFrom::Start(offset))?;
        self.read_exact(buf)
    }
}

/// `name` in `dir`, opened to read and append, created if missing.
#[cfg(not(target_arch = "wasm32"))]
pub fn open(dir: &Path, name: &str) -> io::Result<AppendFile> {
    std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(dir.join(name))
        .map(AppendFile)
}

#[cfg(not(target_arch = "wasm32"))]
pub struct AppendFile(std::fs::File);

#[cfg(not(target_arch = "wasm32"))]
impl AppendFile {
    /// Appends `bytes` with one write call; returns how many were written.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<usize> {
        io::Write::write(&mut self.0, bytes)
    }

    /// `fdatasync`: what was appended is on stable storage.
    pub fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

/// Syncs `dir` itself, so that a file created in it survives a power cut.
#[cfg(not(target_arch = "wasm32"))]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_data()
}

#[cfg(not(target_arch = "wasm32"))]
impl RecordFile for AppendFile {
    fn kind_and_len(&mut self) -> io::Result<(bool, u64)> {
        self.0.kind_and_len()
    }

    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
}

#[cfg(target_arch = "wasm32")]
pub use wasi_file::{open, sync_dir, AppendFile};

#[cfg(target_arch = "wasm32")]
mod wasi_file {
    use std::io;
    use std::path::{Component, Path, PathBuf};

    use wasi::filesystem::preopens::get_directories;
    use wasi::filesystem::types::{
        filesystem_error_code, Descriptor, DescriptorFlags, DescriptorType, ErrorCode, OpenFlags,
        PathFlags,
    };
    use wasi::io::streams::StreamError;

    pub struct AppendFile(Descriptor);

    /// `name` in `dir`, opened through the preopen that holds `dir` (as wasi-libc resolves
    /// a path: the longest preopen name that is a prefix), following links as std does.
    pub fn open(dir: &Path, name: &str) -> io::Result<AppendFile> {
        let (preopen, inside) = preopen_of(dir).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "no preopened directory holds it")
        })?;
        let path = inside.join(name);
        let path = path.to_str().expect("built from UTF-8 parts");
        preopen
            .open_at(
                PathFlags::SYMLINK_FOLLOW,
                path,
                OpenFlags::CREATE,
                DescriptorFlags::READ | DescriptorFlags::WRITE,
            )
            .map(AppendFile)
            .map_err(io_error)
    }

    fn preopen_of(dir: &Path) -> Option<(Descriptor, PathBuf)> {
        let dir: PathBuf = dir
            .components()
            .filter(|c| *c != Component::CurDir)
            .collect();
        get_directories()
            .into_iter()
            .filter_map(|(preopen, name)| {
                let name: PathBuf = Path::new(&name)
                    .components()
                    .filter(|c| *c != Component::CurDir)
                    .collect();
                let inside = dir.strip_prefix(&name).ok()?.to_owned();
                Some((name.as_os_str().len(), preopen, inside))
            })
            .max_by_key(|(len, _, _)| *len)
            .map(|(_, preopen, inside)| (preopen, inside))
    }

    impl AppendFile {
        /// Appends `bytes` (at most 4096, the call's limit) in one call on this thread.
        pub fn append(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let stream = self.0.append_via_stream().map_err(io_error)?;
            match stream.blocking_write_and_flush(bytes) {
                Ok(()) => Ok(bytes.len()),
                Err(StreamError::LastOperationFailed(e)) => Err(match filesystem_error_code(&e) {
                    Some(code) => io_error(code),
                    None => io::Error::other("the append failed"),
                }),
                Err(StreamError::Closed) => Err(io::Error::other("the log's stream was closed")),
            }
        }

        /// WASI `sync-data`: what was appended is on stable storage.
        pub fn sync_data(&mut self) -> io::Result<()> {
            self.0.sync_data().map_err(io_error)
        }
    }

    /// Syncs `dir` itself (WASI `sync-data` on it), so that a file created in it survives a
    /// power cut.
    pub fn sync_dir(dir: &Path) -> io::Result<()> {
        let (preopen, inside) = preopen_of(dir).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "no preopened directory holds it")
        })?;
        if inside.as_os_str().is_empty() {
            return preopen.sync_data().map_err(io_error);
        }
        let inside = inside.to_str().expect("built from UTF-8 parts");
        preopen
            .open_at(
                PathFlags::SYMLINK_FOLLOW,
                inside,
                OpenFlags::DIRECTORY,
                DescriptorFlags::READ,
            )
            .and_then(|d| d.sync_data())
            .map_err(io_error)
    }

    impl super::RecordFile for AppendFile {
        fn kind_and_len(&mut self) -> io::Result<(bool, u64)> {
            let stat = self.0.stat().map_err(io_error)?;
            Ok((stat.type_ == DescriptorType::RegularFile, stat.size))
        }

        fn read_exact_at(&mut self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
            while !buf.is_empty() {
                let (bytes, _) = self.0.read(buf.len() as u64, offset).map_err(io_error)?;
                if bytes.is_empty() {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let (done, rest) = buf.split_at_mut(bytes.len());
                done.copy_from_slice(&bytes);
                buf = rest;
                offset += bytes.len() as u64;
            }
            Ok(())
        }
    }

    /// The `io::Error` kind std would give for `code` (wasi-libc's errno, then std's kind).
    fn io_error(code: ErrorCode) -> io::Error {
        use io::ErrorKind as K;
        let kind = match code {
            ErrorCode::NoEntry => K::NotFound,
            ErrorCode::Access | ErrorCode::NotPermitted => K::PermissionDenied,
            ErrorCode::Exist => K::AlreadyExists,
            ErrorCode::InsufficientSpace | ErrorCode::Quota => K::StorageFull,
            ErrorCode::ReadOnly => K::ReadOnlyFilesystem,
            ErrorCode::IsDirectory => K::IsADirectory,
            ErrorCode::NotDirectory => K::NotADirectory,
            ErrorCode::FileTooLarge => K::FileTooLarge,
            ErrorCode::Busy => K::ResourceBusy,
            ErrorCode::Interrupted => K::Interrupted,
            ErrorCode::WouldBlock => K::WouldBlock,
            ErrorCode::Invalid => K::InvalidInput,
            ErrorCode::InsufficientMemory => K::OutOfMemory,
            ErrorCode::Unsupported => K::Unsupported,
            _ => K::Other,
        };
        match kind {
            // The WIT name says which error it was: `io`, `no-device`, ...
            K::Other => io::Error::new(kind, code.name()),
            kind => kind.into(),
        }
    }
}
