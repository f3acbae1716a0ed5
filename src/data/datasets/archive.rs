//! Where a dataset comes from (an extracted folder or a `.tgz`), and streaming `.tgz` reading.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::data::DataError;

/// A dataset location: an extracted folder or a gzip'd tar archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An extracted folder.
    Folder(PathBuf),
    /// A `.tgz` / `.tar.gz` archive, read as a stream (never extracted to disk).
    Archive(PathBuf),
}

impl Source {
    /// Classifies `path`: a folder, or a file (taken as a gzip'd tar). Fails when it does not
    /// exist.
    pub fn detect(path: &Path, what: &str) -> Result<Self, DataError> {
        if path.is_dir() {
            Ok(Source::Folder(path.to_path_buf()))
        } else if path.is_file() {
            Ok(Source::Archive(path.to_path_buf()))
        } else {
            Err(DataError::NotFound {
                path: path.to_path_buf(),
                what: what.to_string(),
            })
        }
    }
}

/// The path components of an archive entry name, without empty and `.` parts.
pub(crate) fn components(entry: &str) -> Vec<&str> {
    entry
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// Calls `f(entry_name, reader)` for every regular file of the gzip'd tar `archive`, in archive
/// order. A truncated or corrupt archive gives [`DataError::Archive`]; after the last entry the
/// rest of the gzip stream is read so that a damaged trailer is noticed too.
pub(crate) fn for_each_file(
    archive: &Path,
    mut f: impl FnMut(&str, &mut dyn Read) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let file = File::open(archive).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::NotFound {
            path: archive.to_path_buf(),
            what: "archive".into(),
        },
        _ => DataError::io(archive, e),
    })?;
    if file.metadata().map(|m| m.len() == 0).unwrap_or(false) {
        return Err(DataError::EmptyFile {
            path: archive.to_path_buf(),
        });
    }
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::with_capacity(1 << 16, file)));
    let mut last: Option<String> = None;
    let err = |last: &Option<String>, e: std::io::Error| DataError::Archive {
        path: archive.to_path_buf(),
        entry: last.clone(),
        message: e.to_string(),
    };
    {
        let entries = tar.entries().map_err(|e| err(&None, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| err(&last, e))?;
            let name = entry
                .path()
                .map_err(|e| err(&last, e))?
                .to_string_lossy()
                .into_owned();
            last = Some(name.clone());
            if entry.header().entry_type().is_file() {
                f(&name, &mut entry)?;
            }
        }
    }
    let mut rest = tar.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(|e| err(&last, e))?;
    if last.is_none() {
        return Err(DataError::EmptyFile {
            path: archive.to_path_buf(),
        });
    }
    Ok(())
}

/// Reads an archive entry fully; a read error (truncated archive) becomes
/// [`DataError::Archive`] naming the entry.
pub(crate) fn read_entry(
    archive: &Path,
    name: &str,
    reader: &mut dyn Read,
) -> Result<Vec<u8>, DataError> {
    let mut buf = Vec::new();
    reader
        .read_to_end(&mut buf)
        .map_err(|e| DataError::Archive {
            path: archive.to_path_buf(),
            entry: Some(name.to_string()),
            message: e.to_string(),
        })?;
    Ok(buf)
}

/// Reads a whole file of a folder.
pub(crate) fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::NotFound {
            path: path.to_path_buf(),
            what: what.to_string(),
        },
        _ => DataError::io(path, e),
    })
}

/// Decodes UTF-8 text, naming `path` on failure.
pub(crate) fn utf8(bytes: Vec<u8>, path: &Path) -> Result<String, DataError> {
    String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        DataError::Utf8 {
            path: path.to_path_buf(),
            line: Some(line),
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::test_paths::TempDir;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    /// Builds a `.tgz` at `path` holding `files` (name, content).
    pub(crate) fn make_tgz(path: &Path, files: &[(&str, &[u8])]) {
        let file = File::create(path).unwrap();
        let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::fast()));
        for (name, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *content).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn reads_entries_and_detects_truncation() {
        let dir = TempDir::new("archive");
        let tgz = dir.path().join("a.tgz");
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        make_tgz(&tgz, &[("top/a.txt", b"hello"), ("top/big.bin", &big)]);
        let mut seen = Vec::new();
        for_each_file(&tgz, |name, r| {
            let data = read_entry(&tgz, name, r)?;
            seen.push((name.to_string(), data.len()));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                ("top/a.txt".to_string(), 5),
                ("top/big.bin".to_string(), big.len())
            ]
        );

        let bytes = std::fs::read(&tgz).unwrap();
        for cut in [bytes.len() / 2, bytes.len() - 4, 30] {
            let t = dir.write("cut.tgz", &bytes[..cut]);
            let err = for_each_file(&t, |name, r| read_entry(&t, name, r).map(|_| ())).unwrap_err();
            assert!(matches!(err, DataError::Archive { .. }), "cut {cut}: {err}");
            assert!(err.to_string().contains("cut.tgz"), "{err}");
        }
        let not_gz = dir.write("plain.tgz", b"this is not gzip");
        let err = for_each_file(&not_gz, |_, _| Ok(())).unwrap_err();
        assert!(matches!(err, DataError::Archive { .. }), "{err}");
        let missing = dir.path().join("missing.tgz");
        let err = for_each_file(&missing, |_, _| Ok(())).unwrap_err();
        assert!(matches!(err, DataError::NotFound { .. }), "{err}");
    }
}
