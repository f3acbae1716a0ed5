//! The local dataset cache: checksums, safe `.tgz` extraction and atomic installation.
//!
//! Everything written here goes into a staging folder (`.partial-*`) next to its final place and
//! is renamed into place only once complete, so a failed download or a corrupt archive leaves
//! nothing behind. Archive entries are checked before anything is written: absolute paths, `..`
//! components and links that could point outside the extraction root are rejected with
//! [`DownloadError::UnsafeEntry`].

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::data::download::DownloadError;

/// Number of leading bytes fastai hashes with MD5 (`fastdownload.path_stats`: `md5(f.read(2**20))`).
pub const FASTAI_MD5_PREFIX: u64 = 1 << 20;

/// Expected size and digest of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// fastai's record (`fastai/data/download_checks.py`): the file size and the MD5 of the
    /// first MiB only (fastdownload `path_stats`).
    FastaiMd5 {
        /// File size in bytes.
        size: u64,
        /// MD5 of the first [`FASTAI_MD5_PREFIX`] bytes.
        md5_first_mib: [u8; 16],
    },
    /// Size and SHA-256 of the whole file.
    Sha256 {
        /// File size in bytes.
        size: u64,
        /// SHA-256 of the whole file.
        sha256: [u8; 32],
    },
}

impl Checksum {
    /// fastai-style checksum from a size and a 32-digit hex MD5 of the first MiB.
    pub fn parse_fastai_md5(size: u64, hex: &str) -> Result<Self, DownloadError> {
        let md5_first_mib = decode_hex(hex).ok_or_else(|| bad_hex(hex, 16))?;
        Ok(Self::FastaiMd5 {
            size,
            md5_first_mib,
        })
    }

    /// SHA-256 checksum from a size and a 64-digit hex digest.
    pub fn parse_sha256(size: u64, hex: &str) -> Result<Self, DownloadError> {
        let sha256 = decode_hex(hex).ok_or_else(|| bad_hex(hex, 32))?;
        Ok(Self::Sha256 { size, sha256 })
    }

    /// Expected file size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Self::FastaiMd5 { size, .. } | Self::Sha256 { size, .. } => *size,
        }
    }

    /// Name of the digest, as used in error messages.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::FastaiMd5 { .. } => "md5 of first MiB (fastai)",
            Self::Sha256 { .. } => "sha256",
        }
    }

    /// The expected digest in lower-case hex.
    pub fn digest_hex(&self) -> String {
        match self {
            Self::FastaiMd5 { md5_first_mib, .. } => to_hex(md5_first_mib),
            Self::Sha256 { sha256, .. } => to_hex(sha256),
        }
    }

    /// Hashes the file at `path` and compares it with this checksum.
    pub fn verify_file(&self, path: &Path) -> Result<(), DownloadError> {
        let mut file = File::open(path).map_err(|e| DownloadError::io(path, e))?;
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| DownloadError::io(path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n).unwrap_or_default());
        }
        hasher.finish().check(self, &path.display().to_string())
    }
}

fn bad_hex(hex: &str, bytes: usize) -> DownloadError {
    DownloadError::BadChecksum(format!("`{hex}` is not {} hexadecimal digits", bytes * 2))
}

/// Value of one hex digit, `None` for any other byte.
const fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes exactly `2 * N` hex digits; `const` so the registry's checksums are checked at compile time.
pub(crate) const fn decode_hex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        match (hex_digit(bytes[2 * i]), hex_digit(bytes[2 * i + 1])) {
            (Some(hi), Some(lo)) => out[i] = (hi << 4) | lo,
            _ => return None,
        }
        i += 1;
    }
    Some(out)
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Streaming hasher computing everything a [`Checksum`] can ask for in one pass.
#[derive(Debug, Clone, Default)]
pub struct Hasher {
    size: u64,
    md5_first_mib: Md5,
    sha256: Sha256,
}

/// What [`Hasher`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digests {
    /// Number of bytes hashed.
    pub size: u64,
    /// MD5 of the first [`FASTAI_MD5_PREFIX`] bytes (fastai's check).
    pub md5_first_mib: [u8; 16],
    /// SHA-256 of all bytes.
    pub sha256: [u8; 32],
}

impl Hasher {
    /// A hasher that has seen no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, bytes: &[u8]) {
        let left = FASTAI_MD5_PREFIX.saturating_sub(self.size);
        let head = usize::try_from(left).map_or(bytes.len(), |l| l.min(bytes.len()));
        if let Some(prefix) = bytes.get(..head) {
            self.md5_first_mib.update(prefix);
        }
        self.sha256.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// The digests of all bytes fed so far.
    pub fn finish(self) -> Digests {
        Digests {
            size: self.size,
            md5_first_mib: self.md5_first_mib.finalize().into(),
            sha256: self.sha256.finalize().into(),
        }
    }
}

impl Digests {
    /// Compares with `expected`; `file` names the file in the error.
    pub fn check(&self, expected: &Checksum, file: &str) -> Result<(), DownloadError> {
        if self.size != expected.size() {
            return Err(DownloadError::SizeMismatch {
                file: file.to_string(),
                expected: expected.size(),
                actual: self.size,
            });
        }
        let actual: &[u8] = match expected {
            Checksum::FastaiMd5 { .. } => &self.md5_first_mib,
            Checksum::Sha256 { .. } => &self.sha256,
        };
        let expected_hex = expected.digest_hex();
        let actual_hex = to_hex(actual);
        if expected_hex != actual_hex {
            return Err(DownloadError::ChecksumMismatch {
                file: file.to_string(),
                algorithm: expected.algorithm(),
                expected: expected_hex,
                actual: actual_hex,
            });
        }
        Ok(())
    }
}

/// A uniquely named folder that is deleted with its content when dropped, unless renamed away.
#[derive(Debug)]
pub struct StagingDir {
    path: PathBuf,
}

impl StagingDir {
    /// Creates `<parent>/.partial-<label>-<pid>-<time>-<n>` (and `parent` if needed).
    pub fn new_in(parent: &Path, label: &str) -> Result<Self, DownloadError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        fs::create_dir_all(parent).map_err(|e| DownloadError::io(parent, e))?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut last_err = None;
        for _ in 0..16 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!(".partial-{label}-{}-{nanos}-{n}", std::process::id());
            let path = parent.join(name);
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
                Err(e) => return Err(DownloadError::io(&path, e)),
            }
        }
        let e = last_err.unwrap_or_else(|| io::Error::other("no unique name"));
        Err(DownloadError::io(parent, e))
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        // Gone already when its content was renamed into place as a whole.
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Bounds applied while extracting an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Most bytes written in total (decompression-bomb guard). Default 64 GiB (ours; the largest
    /// dataset here, Yelp full, unpacks to about 0.5 GB).
    pub max_bytes: u64,
    /// Most archive entries. Default 10 million (ours; IMDb has about 100 k files).
    pub max_entries: u64,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 30,
            max_entries: 10_000_000,
        }
    }
}

/// What [`extract_tgz`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Regular files (and hard links) written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Returns the path below the extraction root for an archive path, `Ok(None)` for the root
/// itself, or the reason the path is refused.
fn safe_relative(path: &Path) -> Result<Option<PathBuf>, &'static str> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("path has a `..` component"),
            Component::RootDir | Component::Prefix(_) => return Err("path is absolute"),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Extracts the gzip-compressed tar `archive` into the existing folder `dest`.
///
/// Refuses (before writing it) any entry with an absolute path or a `..` component, any symbolic
/// link whose target is absolute or contains `..`, and any hard link whose target is not a
/// plain relative path inside the archive. Symbolic links are created last, so no entry can be
/// written through one. A truncated or corrupt archive (including a bad gzip CRC at the end of
/// the stream) is an error. On error `dest` may hold part of the content: extract into a
/// [`StagingDir`] (as [`install_archive`] does).
pub fn extract_tgz(
    archive: &Path,
    dest: &Path,
    limits: &ExtractLimits,
) -> Result<ExtractStats, DownloadError> {
    let file = File::open(archive).map_err(|e| DownloadError::io(archive, e))?;
    let corrupt = |e: io::Error| DownloadError::Archive {
        archive: archive.to_path_buf(),
        reason: e.to_string(),
    };
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    let mut stats = ExtractStats::default();
    let mut symlinks: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut count = 0u64;
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        count += 1;
        if count > limits.max_entries {
            return Err(DownloadError::TooLarge {
                what: archive.display().to_string(),
                limit: limits.max_entries,
                unit: "entries",
            });
        }
        let raw = entry.path().map_err(corrupt)?.into_owned();
        let unsafe_entry = |reason: &str| DownloadError::UnsafeEntry {
            archive: archive.to_path_buf(),
            entry: raw.display().to_string(),
            reason: reason.to_string(),
        };
        let rel = safe_relative(&raw).map_err(unsafe_entry)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let Some(rel) = rel else {
            if kind.is_dir() {
                continue;
            }
            return Err(unsafe_entry("non-folder entry at the archive root"));
        };
        let target = dest.join(&rel);
        if kind.is_dir() {
            fs::create_dir_all(&target).map_err(|e| DownloadError::io(&target, e))?;
        } else if kind.is_file() || kind.is_contiguous() {
            let size = entry.size();
            if stats.bytes.saturating_add(size) > limits.max_bytes {
                return Err(DownloadError::TooLarge {
                    what: archive.display().to_string(),
                    limit: limits.max_bytes,
                    unit: "bytes unpacked",
                });
            }
            create_parent(&target)?;
            copy_entry(&mut entry, size, archive, &raw, &target)?;
            stats.files += 1;
            stats.bytes += size;
        } else if kind.is_hard_link() || kind.is_symlink() {
            let link = entry
                .link_name()
                .map_err(corrupt)?
                .ok_or_else(|| unsafe_entry("link without a target"))?
                .into_owned();
            let link_rel = match safe_relative(&link) {
                Ok(Some(p)) => p,
                Ok(None) => return Err(unsafe_entry("link target is empty or `.`")),
                Err(why) => {
                    return Err(unsafe_entry(&format!(
                        "link target `{}` points outside the archive: {why}",
                        link.display()
                    )));
                }
            };
            if kind.is_symlink() {
                symlinks.push((target, link_rel));
            } else {
                create_parent(&target)?;
                let source = dest.join(&link_rel);
                fs::hard_link(&source, &target).map_err(|e| DownloadError::io(&target, e))?;
                stats.files += 1;
            }
        } else {
            return Err(DownloadError::UnsupportedEntry {
                archive: archive.to_path_buf(),
                entry: raw.display().to_string(),
                kind: format!("{kind:?}"),
            });
        }
    }
    // Read what follows the end-of-archive marker so the gzip trailer (CRC, length) is checked.
    let mut rest = tar.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(corrupt)?;
    for (path, target) in symlinks {
        make_symlink(archive, &target, &path)?;
    }
    Ok(stats)
}

fn create_parent(path: &Path) -> Result<(), DownloadError> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent).map_err(|e| DownloadError::io(parent, e)),
        None => Ok(()),
    }
}

/// Copies exactly `size` bytes of an entry; fewer means the archive is truncated.
fn copy_entry(
    entry: &mut impl Read,
    size: u64,
    archive: &Path,
    raw: &Path,
    target: &Path,
) -> Result<(), DownloadError> {
    let mut out = File::create(target).map_err(|e| DownloadError::io(target, e))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let n = entry.read(chunk).map_err(|e| DownloadError::Archive {
            archive: archive.to_path_buf(),
            reason: format!("reading `{}`: {e}", raw.display()),
        })?;
        if n == 0 {
            return Err(DownloadError::Archive {
                archive: archive.to_path_buf(),
                reason: format!(
                    "`{}` is truncated: {} of {size} bytes",
                    raw.display(),
                    size - left
                ),
            });
        }
        out.write_all(chunk.get(..n).unwrap_or_default())
            .map_err(|e| DownloadError::io(target, e))?;
        left -= n as u64;
    }
    out.flush().map_err(|e| DownloadError::io(target, e))
}

#[cfg(unix)]
fn make_symlink(_archive: &Path, target: &Path, path: &Path) -> Result<(), DownloadError> {
    std::os::unix::fs::symlink(target, path).map_err(|e| DownloadError::io(path, e))
}

#[cfg(not(unix))]
fn make_symlink(archive: &Path, _target: &Path, path: &Path) -> Result<(), DownloadError> {
    Err(DownloadError::UnsupportedEntry {
        archive: archive.to_path_buf(),
        entry: path.display().to_string(),
        kind: "symbolic link (only supported on Unix)".to_string(),
    })
}

/// The folder holding the dataset inside an extraction: the single top folder if there is
/// exactly one entry and it is a folder, else `dir` itself.
pub fn dataset_root(dir: &Path) -> Result<PathBuf, DownloadError> {
    let mut entries = fs::read_dir(dir).map_err(|e| DownloadError::io(dir, e))?;
    let first = entries
        .next()
        .transpose()
        .map_err(|e| DownloadError::io(dir, e))?;
    let second = entries
        .next()
        .transpose()
        .map_err(|e| DownloadError::io(dir, e))?;
    match (first, second) {
        (Some(only), None) if only.file_type().is_ok_and(|t| t.is_dir()) => Ok(only.path()),
        _ => Ok(dir.to_path_buf()),
    }
}

/// Renames the finished folder `from` to `dest`. If `dest` appeared meanwhile (another process
/// finished the same download first), keeps that one.
pub fn promote(from: &Path, dest: &Path) -> Result<PathBuf, DownloadError> {
    match fs::rename(from, dest) {
        Ok(()) => Ok(dest.to_path_buf()),
        Err(_) if dest.is_dir() => Ok(dest.to_path_buf()),
        Err(e) => Err(DownloadError::io(dest, e)),
    }
}

/// Extracts `archive` into a staging folder next to `dest` and renames the dataset folder
/// (its single top folder, else the whole extraction) to `dest`. On any error nothing is left.
pub fn install_archive(
    archive: &Path,
    dest: &Path,
    limits: &ExtractLimits,
) -> Result<PathBuf, DownloadError> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let label = dest.file_name().map_or_else(
        || "dataset".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let staging = StagingDir::new_in(parent, &label)?;
    extract_tgz(archive, staging.path(), limits)?;
    let root = dataset_root(staging.path())?;
    promote(&root, dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fresh folder under the system temp dir, removed on drop.
    fn temp_dir(label: &str) -> StagingDir {
        StagingDir::new_in(&std::env::temp_dir().join("ulmfit-cache-tests"), label)
            .expect("temp dir")
    }

    /// A raw ustar header with `name` written verbatim (the `tar` builder refuses `..`).
    fn raw_header(name: &str, kind: tar::EntryType, size: u64, link: &str) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        {
            let old = header.as_old_mut();
            old.name.fill(0);
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname.fill(0);
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_cksum();
        header
    }

    /// A `.tgz` holding the given (name, type, data, link target) entries.
    fn tgz(entries: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut builder = tar::Builder::new(gz);
        for (name, kind, data, link) in entries {
            let header = raw_header(name, *kind, data.len() as u64, link);
            builder.append(&header, *data).expect("append");
        }
        builder.into_inner().expect("tar").finish().expect("gzip")
    }

    fn write(path: &Path, bytes: &[u8]) {
        File::create(path)
            .and_then(|mut f| f.write_all(bytes))
            .expect("write test file");
    }

    /// Every path below `dir`.
    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).expect("read_dir").flatten() {
                let p = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(p.clone());
                }
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn md5_and_sha256_match_known_vectors() {
        // RFC 1321 and FIPS 180-2 test vectors for "abc".
        let mut h = Hasher::new();
        h.update(b"a");
        h.update(b"bc");
        let d = h.finish();
        assert_eq!(to_hex(&d.md5_first_mib), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            to_hex(&d.sha256),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.size, 3);
    }

    #[test]
    fn fastai_md5_hashes_only_the_first_mib() {
        let data: Vec<u8> = (0..(3u32 << 19)).map(|i| (i % 251) as u8).collect();
        let mut whole = Hasher::new();
        whole.update(&data);
        let whole = whole.finish();
        let mut head = Hasher::new();
        head.update(&data[..1 << 20]);
        let head = head.finish();
        assert_eq!(whole.md5_first_mib, head.md5_first_mib);
        assert_ne!(whole.sha256, head.sha256);
        assert_eq!(whole.size, 3 << 19);
    }

    #[test]
    fn hex_parsing_rejects_bad_input() {
        assert!(Checksum::parse_sha256(1, "xyz").is_err());
        assert!(Checksum::parse_fastai_md5(1, &"g".repeat(32)).is_err());
        let c = Checksum::parse_fastai_md5(7, "900150983CD24FB0D6963F7D28E17F72").expect("hex");
        assert_eq!(c.digest_hex(), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(c.size(), 7);
    }

    #[test]
    fn extracts_nested_entries_and_links_inside() {
        let dir = temp_dir("ok");
        let archive = dir.path().join("ok.tgz");
        use tar::EntryType as T;
        write(
            &archive,
            &tgz(&[
                ("ds/", T::Directory, b"", ""),
                ("ds/a/b.txt", T::Regular, b"hello", ""),
                ("ds/c.txt", T::Link, b"", "ds/a/b.txt"),
                ("ds/d", T::Symlink, b"", "a/b.txt"),
            ]),
        );
        let dest = dir.path().join("final");
        let got = install_archive(&archive, &dest, &ExtractLimits::default()).expect("install");
        assert_eq!(got, dest);
        assert_eq!(fs::read(dest.join("a/b.txt")).expect("file"), b"hello");
        assert_eq!(fs::read(dest.join("c.txt")).expect("hard link"), b"hello");
        assert_eq!(fs::read(dest.join("d")).expect("symlink"), b"hello");
        // Only the archive and the installed folder remain: the staging folder is gone.
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["final", "ok.tgz"]);
    }

    #[test]
    fn unsafe_entries_are_refused_and_nothing_escapes() {
        use tar::EntryType as T;
        let dir = temp_dir("evil");
        let outside = dir.path().join("outside-marker");
        let abs = outside.to_string_lossy().into_owned();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("dotdot", tgz(&[("ds/../../evil", T::Regular, b"x", "")])),
            ("absolute", tgz(&[(&abs, T::Regular, b"x", "")])),
            (
                "symlink-out",
                tgz(&[
                    ("ds/link", T::Symlink, b"", "../../"),
                    ("ds/link/evil", T::Regular, b"x", ""),
                ]),
            ),
            ("symlink-abs", tgz(&[("ds/link", T::Symlink, b"", &abs)])),
            (
                "hardlink-abs",
                tgz(&[("ds/h", T::Link, b"", "/etc/passwd")]),
            ),
            ("hardlink-up", tgz(&[("ds/h", T::Link, b"", "../x")])),
        ];
        for (label, bytes) in cases {
            let case = dir.path().join(label);
            fs::create_dir(&case).expect("case dir");
            let archive = case.join("a.tgz");
            write(&archive, &bytes);
            let cache = case.join("cache");
            let err = install_archive(&archive, &cache.join("ds"), &ExtractLimits::default())
                .expect_err(label);
            assert!(
                matches!(err, DownloadError::UnsafeEntry { .. }),
                "{label}: {err}"
            );
            assert_eq!(
                walk(&cache),
                Vec::<PathBuf>::new(),
                "{label}: cache not empty"
            );
            let stray: Vec<_> = walk(dir.path())
                .into_iter()
                .filter(|p| p.file_name().is_some_and(|n| n == "evil"))
                .collect();
            assert!(stray.is_empty(), "{label}: wrote {stray:?}");
            assert!(!outside.exists(), "{label}: wrote {}", outside.display());
        }
    }

    #[test]
    fn truncated_and_corrupt_archives_fail_and_leave_nothing() {
        use tar::EntryType as T;
        let dir = temp_dir("trunc");
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let full = tgz(&[("ds/big.bin", T::Regular, &payload, "")]);
        let mut flipped = full.clone();
        let last = flipped.len() - 6; // inside the CRC32 of the gzip trailer
        flipped[last] ^= 0xff;
        let cases = [
            ("half", full[..full.len() / 2].to_vec()),
            ("no-trailer", full[..full.len() - 4].to_vec()),
            ("bad-crc", flipped),
            ("not-gzip", b"plain text, not an archive".to_vec()),
        ];
        for (label, bytes) in cases {
            let archive = dir.path().join(format!("{label}.tgz"));
            write(&archive, &bytes);
            let cache = dir.path().join(format!("cache-{label}"));
            let err = install_archive(&archive, &cache.join("ds"), &ExtractLimits::default())
                .expect_err(label);
            assert!(
                matches!(err, DownloadError::Archive { .. }),
                "{label}: {err}"
            );
            assert_eq!(walk(&cache), Vec::<PathBuf>::new(), "{label}: left files");
        }
    }

    #[test]
    fn limits_are_enforced() {
        use tar::EntryType as T;
        let dir = temp_dir("limits");
        let archive = dir.path().join("a.tgz");
        write(
            &archive,
            &tgz(&[("a", T::Regular, b"12345", ""), ("b", T::Regular, b"1", "")]),
        );
        let small = ExtractLimits {
            max_bytes: 5,
            max_entries: 10,
        };
        let err = install_archive(&archive, &dir.path().join("x"), &small).expect_err("bytes");
        assert!(matches!(err, DownloadError::TooLarge { .. }), "{err}");
        let few = ExtractLimits {
            max_bytes: 100,
            max_entries: 1,
        };
        let err = install_archive(&archive, &dir.path().join("y"), &few).expect_err("entries");
        assert!(matches!(err, DownloadError::TooLarge { .. }), "{err}");
        // Two top-level files: the extraction folder itself becomes the dataset folder.
        let ok = install_archive(&archive, &dir.path().join("z"), &ExtractLimits::default())
            .expect("install");
        assert_eq!(fs::read(ok.join("a")).expect("a"), b"12345");
    }
}
