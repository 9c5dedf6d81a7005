//! Reading files that someone else's job may have replaced with something that is not a file.
//!
//! Run directories are written by other people's jobs, sometimes on a shared machine, and read
//! by long-lived processes (the dashboard). Opening a FIFO for reading blocks until a writer
//! appears, and a device can be endless, so one `mkfifo runs/x/y/status.json` would hang every
//! reader. Every reader of the run-directory contract goes through [`open_regular`]: anything
//! but a regular file (after following links) is refused before it is opened, and the file is
//! opened non-blocking and checked again, so a swap between the check and the open cannot
//! block either.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The I/O error payload for a path that exists but is not a regular file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a regular file ({kind}); not opened")]
pub struct NotRegularFile {
    /// What it is instead: `a FIFO`, `a character device`, ...
    pub kind: &'static str,
}

impl NotRegularFile {
    /// The payload of `err`, when `err` is a refusal by [`open_regular`].
    pub fn of(err: &io::Error) -> Option<&NotRegularFile> {
        err.get_ref().and_then(|e| e.downcast_ref())
    }
}

fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

fn refuse(file_type: std::fs::FileType) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        NotRegularFile {
            kind: kind_of(file_type),
        },
    )
}

/// Checks, without opening it, that `path` (following links) is a regular file.
pub fn check_regular(path: &Path) -> io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        Ok(())
    } else {
        Err(refuse(meta.file_type()))
    }
}

/// Opens `path` for reading if it is a regular file; anything else is refused with a
/// [`NotRegularFile`] error (kind `InvalidInput`) and never opened for reading.
pub fn open_regular(path: &Path) -> io::Result<File> {
    check_regular(path)?;
    // Non-blocking, so a FIFO swapped in after the check does not block the open; reads of a
    // regular file ignore the flag.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if meta.is_file() {
        Ok(file)
    } else {
        Err(refuse(meta.file_type()))
    }
}

/// The whole content of a regular file.
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The whole content of a regular file, as UTF-8 text.
pub fn read_regular_to_string(path: &Path) -> io::Result<String> {
    let bytes = read_regular(path)?;
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("status.json");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let started = Instant::now();
        let err = read_regular(&fifo).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(NotRegularFile::of(&err).unwrap().kind, "a FIFO");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // A link to it is refused too; a directory is not a file either.
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        assert!(NotRegularFile::of(&read_regular(&link).unwrap_err()).is_some());
        assert_eq!(
            NotRegularFile::of(&read_regular(dir.path()).unwrap_err())
                .unwrap()
                .kind,
            "a directory"
        );
        // A regular file reads; a missing one is NotFound, not a refusal.
        let file = dir.path().join("ok.json");
        std::fs::write(&file, "{}").unwrap();
        assert_eq!(read_regular_to_string(&file).unwrap(), "{}");
        let missing = read_regular(&dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert!(NotRegularFile::of(&missing).is_none());
        let dev = read_regular(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(NotRegularFile::of(&dev).unwrap().kind, "a character device");
    }
}
