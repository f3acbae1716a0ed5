//! Finding the paper's datasets on disk, or downloading them.
//!
//! [`resolve`] looks, in order, at an explicit path (`--data PATH`), at `$ULMFIT_DATA/<name>`
//! (a folder or a `.tgz`), at the cache (`$ULMFIT_CACHE`, else `$XDG_CACHE_HOME/ulmfit`, else
//! `~/.cache/ulmfit`), and finally downloads from the canonical URL (fastai's S3 mirrors; the
//! UIUC cogcomp site for TREC), or from `$ULMFIT_MIRROR` when set. A download is streamed into a
//! staging folder inside the cache with a progress bar, its size and checksum are verified, the
//! archive is extracted there (see [`crate::data::cache`]) and the result renamed into place.
//! It always returns the folder holding the dataset's files (e.g. `…/dbpedia_csv` with
//! `train.csv`, or `…/trec` with `train_5500.label`).

mod catalog;
mod error;
mod fetch;
#[cfg(test)]
mod tests;

pub use catalog::*;
pub use error::*;
pub use fetch::*;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::data::cache::{self, Checksum, ExtractLimits};

/// Where to look for data and how to download it.
///
/// [`ResolveOptions::default`] reads no environment variable; [`ResolveOptions::from_env`] does.
#[derive(Debug, Clone)]
pub struct ResolveOptions {
    /// Folder searched for `<name>`, `<name>-sample` (folders), then `<name>.tgz`,
    /// `<name>.tar.gz`, `<name>-sample.tgz`, `<name>-sample.tar.gz`. Env `ULMFIT_DATA`;
    /// default unset.
    pub data_dir: Option<PathBuf>,
    /// Cache folder for downloads and extracted archives. Env `ULMFIT_CACHE`, else
    /// `$XDG_CACHE_HOME/ulmfit`, else `$HOME/.cache/ulmfit`; default unset.
    pub cache_dir: Option<PathBuf>,
    /// Base URL replacing the canonical location: files are fetched from
    /// `<mirror>/<file_name>`. Env `ULMFIT_MIRROR`; default unset.
    pub mirror: Option<String>,
    /// Download when the data is not found locally. Default `true`.
    pub allow_download: bool,
    /// Check downloads against the registry's size and digest. Default `true`.
    pub verify: bool,
    /// Checksums used instead of the registry's, by file name (always checked).
    pub checksum_overrides: Vec<(String, Checksum)>,
    /// Show a progress bar on stderr (only drawn on a terminal). Default `true`.
    pub progress: bool,
    /// TCP connect timeout. Default 30 s (ours; fastai's `download_url` used 4 s for everything).
    pub connect_timeout: Duration,
    /// Longest wait for any single read (headers or body). Default 60 s (ours).
    pub read_timeout: Duration,
    /// Tries per file for transient failures (connection, 5xx, 429). Default 3
    /// (fastai v2.0's `download_url` mounted 5 retries).
    pub attempts: u32,
    /// Pause before retry `n` is `n × retry_delay`. Default 2 s (ours).
    pub retry_delay: Duration,
    /// Most bytes accepted from a download of unknown size. Default 16 GiB (ours; the largest
    /// archive here, Yelp full, is 196 MB).
    pub max_download_bytes: u64,
    /// Return a local `.tgz` (explicit or in `data_dir`) as is instead of extracting it into
    /// the cache; the IMDb and Zhang et al. readers stream archives. Default `false` (ours:
    /// always hand back a folder, which every reader accepts).
    pub keep_archives: bool,
    /// Bounds for extracting archives.
    pub extract: ExtractLimits,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        Self {
            data_dir: None,
            cache_dir: None,
            mirror: None,
            allow_download: true,
            verify: true,
            checksum_overrides: Vec::new(),
            progress: true,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            attempts: 3,
            retry_delay: Duration::from_secs(2),
            max_download_bytes: 16 << 30,
            keep_archives: false,
            extract: ExtractLimits::default(),
        }
    }
}

impl ResolveOptions {
    /// Defaults plus `ULMFIT_DATA`, `ULMFIT_CACHE` / `XDG_CACHE_HOME` / `HOME` and `ULMFIT_MIRROR`.
    pub fn from_env() -> Self {
        Self::from_vars(|key| std::env::var_os(key))
    }

    /// As [`ResolveOptions::from_env`], reading variables through `var` (empty values count
    /// as unset; a relative `XDG_CACHE_HOME` is ignored, as the XDG spec asks).
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Self {
        let get = |key: &str| var(key).filter(|v| !v.is_empty());
        let cache_dir = get("ULMFIT_CACHE").map(PathBuf::from).or_else(|| {
            get("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|p| p.join("ulmfit"))
                .or_else(|| get("HOME").map(|h| PathBuf::from(h).join(".cache").join("ulmfit")))
        });
        Self {
            data_dir: get("ULMFIT_DATA").map(PathBuf::from),
            cache_dir,
            mirror: get("ULMFIT_MIRROR").and_then(|m| m.into_string().ok()),
            ..Self::default()
        }
    }

    /// The URL to fetch `file` from: under the mirror if one is set, else canonical.
    pub fn url_for(&self, file: &RemoteFile) -> String {
        match &self.mirror {
            Some(base) => format!("{}/{}", base.trim_end_matches('/'), file.file_name),
            None => file.url.to_string(),
        }
    }

    /// The checksum `file` must match: an override, else the registry's if `verify`.
    pub fn expected_for(&self, file: &RemoteFile) -> Option<Checksum> {
        self.checksum_overrides
            .iter()
            .find(|(name, _)| name == file.file_name)
            .map(|(_, c)| *c)
            .or(file.checksum.filter(|_| self.verify))
    }
}

/// Finds `dataset` and returns the folder holding its files.
///
/// Order: `explicit` (must exist; a folder is returned as is, a `.tgz` is extracted into the
/// cache), else `opts.data_dir` (see [`ResolveOptions::data_dir`]), else `<cache>/<name>`, else
/// a download into the cache (if `opts.allow_download`).
pub fn resolve(
    dataset: Dataset,
    explicit: Option<&Path>,
    opts: &ResolveOptions,
) -> Result<PathBuf, DownloadError> {
    if let Some(path) = explicit {
        if !path.exists() {
            return Err(DownloadError::NotFound {
                path: path.to_path_buf(),
            });
        }
        return use_local(dataset, path, opts);
    }
    let mut searched = Vec::new();
    if let Some(dir) = &opts.data_dir {
        if let Some(found) = find_in_data_dir(dataset, dir) {
            return use_local(dataset, &found, opts);
        }
        searched.push(dir.display().to_string());
    }
    let Some(cache) = &opts.cache_dir else {
        return Err(DownloadError::NoCacheDir {
            dataset: dataset.name(),
        });
    };
    let cached = cache.join(dataset.name());
    if cached.is_dir() {
        return Ok(cached);
    }
    if !opts.allow_download {
        searched.push(cache.display().to_string());
        return Err(DownloadError::Unavailable {
            dataset: dataset.name(),
            searched: searched.join(", "),
        });
    }
    download(dataset, cache, opts)
}

/// The first of `<name>`, `<name>-sample` (folders), `<name>[-sample].tgz|.tar.gz` in `dir`.
fn find_in_data_dir(dataset: Dataset, dir: &Path) -> Option<PathBuf> {
    let name = dataset.name();
    let folders = [name.to_string(), format!("{name}-sample")];
    let archives = ["", "-sample"]
        .iter()
        .flat_map(|s| [format!("{name}{s}.tgz"), format!("{name}{s}.tar.gz")]);
    let folder = folders.iter().map(|f| dir.join(f)).find(|p| p.is_dir());
    folder.or_else(|| archives.map(|a| dir.join(a)).find(|p| p.is_file()))
}

/// A local folder (returned, or its lone `<name>` subfolder) or archive (extracted into the cache).
fn use_local(
    dataset: Dataset,
    path: &Path,
    opts: &ResolveOptions,
) -> Result<PathBuf, DownloadError> {
    if path.is_dir() {
        let inner = path.join(dataset.name());
        let only_child = cache::dataset_root(path)? == inner;
        return Ok(if only_child {
            inner
        } else {
            path.to_path_buf()
        });
    }
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let stem = file_name.as_deref().and_then(|n| {
        n.strip_suffix(".tgz")
            .or_else(|| n.strip_suffix(".tar.gz"))
            .map(str::to_string)
    });
    let (true, Some(stem)) = (path.is_file(), stem) else {
        return Err(DownloadError::NotADataset {
            path: path.to_path_buf(),
        });
    };
    if opts.keep_archives {
        return Ok(path.to_path_buf());
    }
    let cache = opts.cache_dir.as_ref().ok_or(DownloadError::NoCacheDir {
        dataset: dataset.name(),
    })?;
    let dest = cache
        .join("extracted")
        .join(format!("{stem}-{}", archive_key(path)?));
    if dest.is_dir() {
        return Ok(dest);
    }
    cache::install_archive(path, &dest, &opts.extract)
}

/// Short key naming an archive's extraction: changes when its path, size or mtime change.
fn archive_key(path: &Path) -> Result<String, DownloadError> {
    let meta = fs::metadata(path).map_err(|e| DownloadError::io(path, e))?;
    let abs = fs::canonicalize(path).map_err(|e| DownloadError::io(path, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(abs.as_os_str().as_encoded_bytes());
    h.update(meta.len().to_le_bytes());
    h.update(mtime.to_le_bytes());
    let digest = h.finalize();
    Ok(cache::to_hex(digest.get(..8).unwrap_or_default()))
}
