//! What a 200 from `GET /` promises about the visit it recorded: `VISITS_SYNC` in the
//! component's environment (the runner's `--sync`), for the file store.

use std::fmt;

/// The component's environment variable that names the mode.
pub const ENV: &str = "VISITS_SYNC";

/// Whether a visit reaches the volume's stable storage before its 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// `fdatasync` (WASI `sync-data`) after the append, and the directory's on the log's first
    /// record: an acknowledged visit survives a power cut, a VM reset, a detached volume.
    #[default]
    Data,
    /// The append alone: an acknowledged visit survives a crash of the process (the page
    /// cache keeps it), but not of the node; the kernel writes it back within seconds.
    None,
}

impl SyncMode {
    /// The mode `value` names; unset is the safe default.
    pub fn parse(value: Option<&str>) -> Result<SyncMode, InvalidSyncMode> {
        match value {
            None | Some("data") => Ok(SyncMode::Data),
            Some("none") => Ok(SyncMode::None),
            Some(other) => Err(InvalidSyncMode(other.to_owned())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SyncMode::Data => "data",
            SyncMode::None => "none",
        }
    }
}

impl fmt::Display for SyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `VISITS_SYNC` that names no mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSyncMode(pub String);

impl fmt::Display for InvalidSyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ENV}={:?} is neither \"data\" nor \"none\"", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_is_the_safe_side_and_only_the_two_names_parse() {
        assert_eq!(SyncMode::parse(None), Ok(SyncMode::Data));
        for mode in [SyncMode::Data, SyncMode::None] {
            assert_eq!(SyncMode::parse(Some(mode.name())), Ok(mode));
        }
        for bad in ["", "DATA", "off", "fsync"] {
            let err = SyncMode::parse(Some(bad)).unwrap_err();
            assert!(err.to_string().contains("neither"), "{err}");
        }
    }
}
