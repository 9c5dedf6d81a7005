//! The `COMPLETE` marker of a checkpoint, and what it promises.
//!
//! A marker alone says only that writing finished; it cannot say that the files are still the
//! ones written. A disk that truncates a file or flips a bit would otherwise be found out by a
//! deserializer error deep in the resume (or not at all, for flipped bytes inside a float), and
//! the run would stop although an older checkpoint was intact. So the marker, written last,
//! records the size and sha256 of every file of the checkpoint, and a reader verifies them
//! before trusting the checkpoint. Markers written before checksums existed are empty; they
//! still mark a checkpoint as complete, which is then loadable but unverified.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::layout::CHECKPOINT_MARKER;

/// Version of the marker's JSON layout.
const MARKER_VERSION: u32 = 1;

/// Size and sha256 of one checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub bytes: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// The contents of a checkpoint's `COMPLETE` marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMarker {
    pub version: u32,
    /// Every file of the checkpoint directory by name (the marker itself excluded).
    pub files: BTreeMap<String, FileDigest>,
}

/// How far a checkpoint could be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// Every file matches the size and sha256 in the marker.
    Verified,
    /// An old marker without checksums: the files exist, their contents are unchecked.
    Unverified,
}

/// What is wrong with a checkpoint; displays as a short clause naming the file.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    #[error("{CHECKPOINT_MARKER} marker is unreadable ({reason})")]
    Marker { reason: String },
    #[error("{file} is missing")]
    Missing { file: String },
    #[error("{file} is {found} bytes, the marker says {expected}")]
    Size {
        file: String,
        expected: u64,
        found: u64,
    },
    #[error("{file} has sha256 {found}, the marker says {expected}")]
    Checksum {
        file: String,
        expected: String,
        found: String,
    },
    #[error("{file}: {error}")]
    Io { file: String, error: io::Error },
}

impl CheckpointMarker {
    /// Size and sha256 of every regular file in `dir` except the marker.
    pub fn of_dir(dir: &Path) -> io::Result<Self> {
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == CHECKPOINT_MARKER || !entry.file_type()?.is_file() {
                continue;
            }
            files.insert(name, digest_file(&entry.path())?);
        }
        Ok(Self {
            version: MARKER_VERSION,
            files,
        })
    }

    /// Writes this marker into `dir` atomically; call it after every other file is on disk.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        crate::write_json_atomic(&dir.join(CHECKPOINT_MARKER), self)
    }

    /// Reads the marker of `dir`: `None` for an old, empty marker.
    pub fn read(dir: &Path) -> Result<Option<Self>, Damage> {
        let path = dir.join(CHECKPOINT_MARKER);
        let bytes = std::fs::read(&path).map_err(|error| Damage::Io {
            file: CHECKPOINT_MARKER.to_string(),
            error,
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Damage::Marker {
                reason: e.to_string(),
            })
    }
}

/// Checks the checkpoint in `dir` against its marker. `required` files must exist (and, under a
/// marker with checksums, be listed in it); every listed file must match its size and sha256.
pub fn verify(dir: &Path, required: &[&str]) -> Result<Integrity, Damage> {
    let Some(marker) = CheckpointMarker::read(dir)? else {
        for file in required {
            if !dir.join(file).is_file() {
                return Err(Damage::Missing {
                    file: file.to_string(),
                });
            }
        }
        return Ok(Integrity::Unverified);
    };
    if let Some(file) = required.iter().find(|f| !marker.files.contains_key(**f)) {
        return Err(Damage::Missing {
            file: file.to_string(),
        });
    }
    for (file, expected) in &marker.files {
        let path = dir.join(file);
        let found_bytes = match std::fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Damage::Missing { file: file.clone() });
            }
            Err(error) => {
                return Err(Damage::Io {
                    file: file.clone(),
                    error,
                });
            }
        };
        if found_bytes != expected.bytes {
            return Err(Damage::Size {
                file: file.clone(),
                expected: expected.bytes,
                found: found_bytes,
            });
        }
        let found = digest_file(&path).map_err(|error| Damage::Io {
            file: file.clone(),
            error,
        })?;
        if found.sha256 != expected.sha256 {
            return Err(Damage::Checksum {
                file: file.clone(),
                expected: expected.sha256.clone(),
                found: found.sha256,
            });
        }
    }
    Ok(Integrity::Verified)
}

/// Size and lower-case hex sha256 of a file, read in blocks.
pub fn digest_file(path: &Path) -> io::Result<FileDigest> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        bytes += n as u64;
    }
    Ok(FileDigest {
        bytes,
        sha256: hex(&hasher.finalize()),
    })
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a damaged checkpoint directory is moved so that it no longer counts as a checkpoint
/// (rotation and resume see only `step-N`), but nothing in it is lost.
pub fn set_aside_path(dir: &Path, unix_time: u64) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.with_file_name(format!("{name}.damaged-{unix_time}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: &[&str] = &["model.bpk", "optimizer.bpk", "trainer.json"];

    fn checkpoint() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.bpk"), vec![7u8; 3000]).unwrap();
        std::fs::write(dir.path().join("optimizer.bpk"), b"adam moments").unwrap();
        std::fs::write(dir.path().join("trainer.json"), b"{\"step\": 8}").unwrap();
        CheckpointMarker::of_dir(dir.path())
            .unwrap()
            .write(dir.path())
            .unwrap();
        dir
    }

    #[test]
    fn an_untouched_checkpoint_verifies() {
        let dir = checkpoint();
        let marker = CheckpointMarker::read(dir.path()).unwrap().unwrap();
        assert_eq!(marker.files.len(), 3);
        assert_eq!(marker.files["model.bpk"].bytes, 3000);
        assert_eq!(
            marker.files["optimizer.bpk"].sha256,
            sha256_hex(b"adam moments")
        );
        assert_eq!(verify(dir.path(), REQUIRED).unwrap(), Integrity::Verified);
    }

    #[test]
    fn truncation_is_a_size_mismatch() {
        let dir = checkpoint();
        std::fs::write(dir.path().join("model.bpk"), vec![7u8; 1000]).unwrap();
        let err = verify(dir.path(), REQUIRED).unwrap_err();
        assert!(
            matches!(&err, Damage::Size { file, expected: 3000, found: 1000 } if file == "model.bpk"),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "model.bpk is 1000 bytes, the marker says 3000"
        );
    }

    #[test]
    fn a_flipped_byte_is_a_checksum_mismatch() {
        let dir = checkpoint();
        let path = dir.path().join("optimizer.bpk");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[4] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let err = verify(dir.path(), REQUIRED).unwrap_err();
        match &err {
            Damage::Checksum {
                file,
                expected,
                found,
            } => {
                assert_eq!(file, "optimizer.bpk");
                assert_eq!(expected, &sha256_hex(b"adam moments"));
                assert_eq!(found, &sha256_hex(&bytes));
            }
            other => panic!("expected a checksum mismatch, got {other}"),
        }
    }

    #[test]
    fn missing_and_unlisted_files_are_damage() {
        let dir = checkpoint();
        std::fs::remove_file(dir.path().join("trainer.json")).unwrap();
        assert!(matches!(
            verify(dir.path(), REQUIRED),
            Err(Damage::Missing { file }) if file == "trainer.json"
        ));
        let dir = checkpoint();
        let err = verify(dir.path(), &["model.bpk", "config.toml"]).unwrap_err();
        assert!(matches!(err, Damage::Missing { file } if file == "config.toml"));
    }

    #[test]
    fn a_garbled_marker_is_damage() {
        let dir = checkpoint();
        std::fs::write(dir.path().join(CHECKPOINT_MARKER), b"{\"version\": 1, \"fi").unwrap();
        assert!(matches!(
            verify(dir.path(), REQUIRED),
            Err(Damage::Marker { .. })
        ));
    }

    #[test]
    fn an_old_empty_marker_is_unverified_but_needs_its_files() {
        let dir = checkpoint();
        std::fs::write(dir.path().join(CHECKPOINT_MARKER), b"").unwrap();
        // Contents are not checked under an old marker...
        std::fs::write(dir.path().join("model.bpk"), b"x").unwrap();
        assert_eq!(verify(dir.path(), REQUIRED).unwrap(), Integrity::Unverified);
        // ...but the files must be there.
        std::fs::remove_file(dir.path().join("optimizer.bpk")).unwrap();
        assert!(matches!(
            verify(dir.path(), REQUIRED),
            Err(Damage::Missing { file }) if file == "optimizer.bpk"
        ));
    }

    #[test]
    fn set_aside_names_are_not_checkpoint_names() {
        let path = set_aside_path(Path::new("/r/checkpoints/step-24"), 1700000000);
        assert_eq!(path, Path::new("/r/checkpoints/step-24.damaged-1700000000"));
        let dir = tempfile::tempdir().unwrap();
        let run = crate::RunDir::new(dir.path());
        std::fs::create_dir_all(run.checkpoints().join("step-24.damaged-1")).unwrap();
        std::fs::write(
            run.checkpoints()
                .join("step-24.damaged-1")
                .join(CHECKPOINT_MARKER),
            "",
        )
        .unwrap();
        assert!(run.complete_checkpoints().is_empty());
    }
}
