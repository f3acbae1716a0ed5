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

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::data::cache::{self, Checksum, Digests, ExtractLimits, Hasher, StagingDir};

/// Errors from finding, downloading, verifying or extracting a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// A dataset name that is not in the registry.
    #[error(
        "unknown dataset `{0}` (known: trec, imdb, ag_news_csv, dbpedia_csv, \
         yelp_review_polarity_csv, yelp_review_full_csv, wikitext-2, wikitext-103)"
    )]
    UnknownDataset(String),
    /// An explicitly given data path does not exist.
    #[error("data path `{}` does not exist", path.display())]
    NotFound {
        /// The missing path.
        path: PathBuf,
    },
    /// A path that is neither a folder nor a `.tgz` / `.tar.gz` archive.
    #[error("`{}` is neither a folder nor a .tgz/.tar.gz archive", path.display())]
    NotADataset {
        /// The offending path.
        path: PathBuf,
    },
    /// No cache folder could be determined.
    #[error("no cache folder to store {dataset}: set ULMFIT_CACHE, XDG_CACHE_HOME or HOME")]
    NoCacheDir {
        /// Dataset name.
        dataset: &'static str,
    },
    /// Not found locally and downloading is disabled.
    #[error("{dataset} was not found (looked in: {searched}) and downloading is disabled")]
    Unavailable {
        /// Dataset name.
        dataset: &'static str,
        /// The places searched.
        searched: String,
    },
    /// A file-system operation failed.
    #[error("I/O error on `{}`: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The request could not be made or answered (connection, TLS, timeout, protocol).
    #[error("request to {url} failed: {source}")]
    Http {
        /// The URL requested.
        url: String,
        /// The client's error.
        source: Box<ureq::Error>,
    },
    /// The server answered with a non-2xx status.
    #[error("{url} answered HTTP {status}")]
    HttpStatus {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The response body broke off or timed out.
    #[error("transfer from {url} failed after {received} bytes: {source}")]
    Transfer {
        /// The URL requested.
        url: String,
        /// Bytes received before the failure.
        received: u64,
        /// The underlying error.
        source: io::Error,
    },
    /// A file (or announced download) has the wrong size.
    #[error("`{file}` has {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// The file or URL.
        file: String,
        /// Expected size in bytes.
        expected: u64,
        /// Actual size in bytes.
        actual: u64,
    },
    /// A file's digest differs from the expected one.
    #[error("`{file}`: {algorithm} is {actual}, expected {expected}")]
    ChecksumMismatch {
        /// The file or URL.
        file: String,
        /// Which digest.
        algorithm: &'static str,
        /// Expected digest (hex).
        expected: String,
        /// Actual digest (hex).
        actual: String,
    },
    /// A download or an extraction went over its limit.
    #[error("{what} exceeds the limit of {limit} {unit}")]
    TooLarge {
        /// The URL or archive.
        what: String,
        /// The limit.
        limit: u64,
        /// What the limit counts.
        unit: &'static str,
    },
    /// The archive is not valid gzip/tar, or is truncated.
    #[error("archive `{}` is corrupt or truncated: {reason}", archive.display())]
    Archive {
        /// The archive file.
        archive: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An archive entry that would write outside the extraction folder.
    #[error("archive `{}`: entry `{entry}` refused: {reason}", archive.display())]
    UnsafeEntry {
        /// The archive file.
        archive: PathBuf,
        /// The entry's path as stored.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
    /// An archive entry of a type that is never extracted (device, FIFO, …).
    #[error("archive `{}`: entry `{entry}` has unsupported type {kind}", archive.display())]
    UnsupportedEntry {
        /// The archive file.
        archive: PathBuf,
        /// The entry's path as stored.
        entry: String,
        /// The entry type.
        kind: String,
    },
    /// A checksum given as text could not be parsed.
    #[error("bad checksum: {0}")]
    BadChecksum(String),
}

impl DownloadError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether trying the same request again may help (connection problems, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Http { source, .. } => !matches!(
                **source,
                ureq::Error::BadUri(_) | ureq::Error::HostNotFound | ureq::Error::TooManyRedirects
            ),
            Self::HttpStatus { status, .. } => *status >= 500 || *status == 429,
            Self::Transfer { .. } => true,
            _ => false,
        }
    }
}

/// The datasets of the paper (Howard & Ruder 2018, Table 1) and the LM corpora.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// TREC question classification (Li & Roth 2002), 6 coarse classes.
    Trec6,
    /// IMDb movie reviews (Maas et al. 2011).
    Imdb,
    /// AG News (Zhang et al. 2015).
    AgNews,
    /// DBpedia ontology (Zhang et al. 2015).
    Dbpedia,
    /// Yelp review polarity (Zhang et al. 2015).
    YelpPolarity,
    /// Yelp review full, 5 classes (Zhang et al. 2015).
    YelpFull,
    /// WikiText-2 (Merity et al. 2016), fastai's `WIKITEXT_TINY`.
    WikiText2,
    /// WikiText-103 (Merity et al. 2016), fastai's `WIKITEXT`.
    WikiText103,
}

/// How a dataset is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packaging {
    /// One `.tgz` whose single top folder is the dataset folder.
    Tgz,
    /// Plain files, placed together in the dataset folder.
    Files,
}

/// One downloadable file of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteFile {
    /// File name, also the name under a mirror (`<mirror>/<file_name>`).
    pub file_name: &'static str,
    /// Canonical URL.
    pub url: &'static str,
    /// Published size and digest, when known.
    pub checksum: Option<Checksum>,
}

/// `const` MD5-of-first-MiB checksum from fastai's `download_checks.py`; bad hex fails to compile.
const fn fastai(size: u64, hex: &str) -> Option<Checksum> {
    match cache::decode_hex(hex) {
        Some(md5_first_mib) => Some(Checksum::FastaiMd5 {
            size,
            md5_first_mib,
        }),
        None => panic!("bad md5 literal in the dataset registry"),
    }
}

/// `const` SHA-256 checksum; bad hex fails to compile.
const fn sha256(size: u64, hex: &str) -> Option<Checksum> {
    match cache::decode_hex(hex) {
        Some(sha256) => Some(Checksum::Sha256 { size, sha256 }),
        None => panic!("bad sha256 literal in the dataset registry"),
    }
}

/// fastai v2 `URLs.S3_NLP` (`fastai/data/external.py`).
macro_rules! s3_nlp {
    ($file:literal) => {
        concat!("https://s3.amazonaws.com/fast-ai-nlp/", $file)
    };
}

/// Sizes and MD5s: `fastai/data/download_checks.py` (fastai 2.x; same values in v1 `checks.txt`).
const IMDB: [RemoteFile; 1] = [RemoteFile {
    file_name: "imdb.tgz",
    url: s3_nlp!("imdb.tgz"),
    checksum: fastai(144_440_600, "90f9b1c4ff43a90d67553c9240dc0249"),
}];
const AG_NEWS: [RemoteFile; 1] = [RemoteFile {
    file_name: "ag_news_csv.tgz",
    url: s3_nlp!("ag_news_csv.tgz"),
    checksum: fastai(11_784_419, "b86f328f4dbd072486591cb7a5644dcd"),
}];
const DBPEDIA: [RemoteFile; 1] = [RemoteFile {
    file_name: "dbpedia_csv.tgz",
    url: s3_nlp!("dbpedia_csv.tgz"),
    checksum: fastai(68_341_743, "239c7837b9e79db34486f3de6a00e38e"),
}];
const YELP_POLARITY: [RemoteFile; 1] = [RemoteFile {
    file_name: "yelp_review_polarity_csv.tgz",
    url: s3_nlp!("yelp_review_polarity_csv.tgz"),
    checksum: fastai(166_373_201, "48c8451c1ad30472334d856b5d294807"),
}];
const YELP_FULL: [RemoteFile; 1] = [RemoteFile {
    file_name: "yelp_review_full_csv.tgz",
    url: s3_nlp!("yelp_review_full_csv.tgz"),
    checksum: fastai(196_146_755, "1efd84215ea3e30d90e4c33764b889db"),
}];
const WIKITEXT_2: [RemoteFile; 1] = [RemoteFile {
    file_name: "wikitext-2.tgz",
    url: s3_nlp!("wikitext-2.tgz"),
    checksum: fastai(4_070_055, "2a82d47a7b85c8b6a8e068dc4c1d37e7"),
}];
const WIKITEXT_103: [RemoteFile; 1] = [RemoteFile {
    file_name: "wikitext-103.tgz",
    url: s3_nlp!("wikitext-103.tgz"),
    checksum: fastai(190_200_704, "2dd8cf8693b3d27e9c8f0a7df054b2c7"),
}];
/// Sizes and SHA-256: Hugging Face `datasets/trec/dataset_infos.json` (see the data README).
const TREC: [RemoteFile; 2] = [
    RemoteFile {
        file_name: "train_5500.label",
        url: "https://cogcomp.seas.upenn.edu/Data/QA/QC/train_5500.label",
        checksum: sha256(
            335_858,
            "9e4c8bdcaffb96ed61041bd64b564183d52793a8e91d84fc3a8646885f466ec3",
        ),
    },
    RemoteFile {
        file_name: "TREC_10.label",
        url: "https://cogcomp.seas.upenn.edu/Data/QA/QC/TREC_10.label",
        checksum: sha256(
            23_354,
            "033f22c028c2bbba9ca682f68ffe204dc1aa6e1cf35dd6207f2d4ca67f0d0e8e",
        ),
    },
];

impl Dataset {
    /// Every dataset in the registry.
    pub const ALL: [Dataset; 8] = [
        Dataset::Trec6,
        Dataset::Imdb,
        Dataset::AgNews,
        Dataset::Dbpedia,
        Dataset::YelpPolarity,
        Dataset::YelpFull,
        Dataset::WikiText2,
        Dataset::WikiText103,
    ];

    /// On-disk name: the folder after extraction (the archive's top folder), the cache entry
    /// and the `$ULMFIT_DATA/<name>` looked for.
    pub fn name(self) -> &'static str {
        match self {
            Self::Trec6 => "trec",
            Self::Imdb => "imdb",
            Self::AgNews => "ag_news_csv",
            Self::Dbpedia => "dbpedia_csv",
            Self::YelpPolarity => "yelp_review_polarity_csv",
            Self::YelpFull => "yelp_review_full_csv",
            Self::WikiText2 => "wikitext-2",
            Self::WikiText103 => "wikitext-103",
        }
    }

    /// Parses a name: [`Dataset::name`] or a common alias (`trec6`, `ag_news`, `yelp-p`,
    /// `wt103`, …); case, `-` and `_` are ignored.
    pub fn from_name(name: &str) -> Result<Self, DownloadError> {
        let key: String = name
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        Ok(match key.as_str() {
            "trec" | "trec6" => Self::Trec6,
            "imdb" | "aclimdb" => Self::Imdb,
            "agnews" | "agnewscsv" => Self::AgNews,
            "dbpedia" | "dbpediacsv" => Self::Dbpedia,
            "yelppolarity" | "yelpp" | "yelpreviewpolarity" | "yelpreviewpolaritycsv" => {
                Self::YelpPolarity
            }
            "yelpfull" | "yelpf" | "yelpreviewfull" | "yelpreviewfullcsv" => Self::YelpFull,
            "wikitext2" | "wt2" => Self::WikiText2,
            "wikitext103" | "wt103" => Self::WikiText103,
            _ => return Err(DownloadError::UnknownDataset(name.to_string())),
        })
    }

    /// How the dataset is published.
    pub fn packaging(self) -> Packaging {
        match self {
            Self::Trec6 => Packaging::Files,
            _ => Packaging::Tgz,
        }
    }

    /// The files to download: one archive, or TREC's `train_5500.label` and `TREC_10.label`.
    pub fn remote_files(self) -> &'static [RemoteFile] {
        match self {
            Self::Trec6 => &TREC,
            Self::Imdb => &IMDB,
            Self::AgNews => &AG_NEWS,
            Self::Dbpedia => &DBPEDIA,
            Self::YelpPolarity => &YELP_POLARITY,
            Self::YelpFull => &YELP_FULL,
            Self::WikiText2 => &WIKITEXT_2,
            Self::WikiText103 => &WIKITEXT_103,
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dataset {
    type Err = DownloadError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s)
    }
}

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

/// Downloads `dataset` into `<cache_dir>/<name>` (through a staging folder) and returns that
/// folder. If it already exists afterwards (another process won the race), keeps that one.
pub fn download(
    dataset: Dataset,
    cache_dir: &Path,
    opts: &ResolveOptions,
) -> Result<PathBuf, DownloadError> {
    let dest = cache_dir.join(dataset.name());
    let staging = StagingDir::new_in(cache_dir, dataset.name())?;
    match dataset.packaging() {
        Packaging::Tgz => {
            // One archive per dataset (checked by the registry test).
            for file in dataset.remote_files() {
                let local = staging.path().join(file.file_name);
                let expected = opts.expected_for(file);
                download_file(&opts.url_for(file), &local, expected.as_ref(), opts)?;
                cache::install_archive(&local, &dest, &opts.extract)?;
            }
            Ok(dest)
        }
        Packaging::Files => {
            let folder = staging.path().join(dataset.name());
            fs::create_dir(&folder).map_err(|e| DownloadError::io(&folder, e))?;
            for file in dataset.remote_files() {
                let local = folder.join(file.file_name);
                let expected = opts.expected_for(file);
                download_file(&opts.url_for(file), &local, expected.as_ref(), opts)?;
            }
            cache::promote(&folder, &dest)
        }
    }
}

/// GETs `url` into `dest` (through `<dest>.part`, removed on failure), retrying transient
/// failures up to `opts.attempts` times, and checks `expected` if given. Returns the digests.
pub fn download_file(
    url: &str,
    dest: &Path,
    expected: Option<&Checksum>,
    opts: &ResolveOptions,
) -> Result<Digests, DownloadError> {
    let mut part = dest.as_os_str().to_os_string();
    part.push(".part");
    let part = PathBuf::from(part);
    let attempts = opts.attempts.max(1);
    let mut attempt = 1;
    let digests = loop {
        let result = fetch_once(url, &part, expected, opts);
        if result.is_err() {
            let _ = fs::remove_file(&part);
        }
        match result {
            Err(e) if e.is_transient() && attempt < attempts => {
                std::thread::sleep(opts.retry_delay * attempt);
                attempt += 1;
            }
            other => break other?,
        }
    };
    if let Some(Err(e)) = expected.map(|c| digests.check(c, url)) {
        let _ = fs::remove_file(&part);
        return Err(e);
    }
    fs::rename(&part, dest).map_err(|e| DownloadError::io(dest, e))?;
    Ok(digests)
}

/// Whether `url`'s host is a loopback address (such requests never go through a proxy).
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn agent_for(url: &str, opts: &ResolveOptions) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_per_read(Some(opts.read_timeout))
        .http_status_as_error(false)
        .user_agent(concat!("ulmfit/", env!("CARGO_PKG_VERSION")));
    if is_loopback(url) {
        config = config.proxy(None);
    }
    config.build().new_agent()
}

fn progress_bar(len: Option<u64>, url: &str, show: bool) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    if !show {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(n) => (
            ProgressBar::new(n),
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{msg} {spinner} {bytes} {bytes_per_sec}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let name = url.rsplit('/').next().unwrap_or(url);
    bar.set_message(format!("downloading {name}"));
    bar
}

/// One GET of `url` into `part`, hashing as it streams.
fn fetch_once(
    url: &str,
    part: &Path,
    expected: Option<&Checksum>,
    opts: &ResolveOptions,
) -> Result<Digests, DownloadError> {
    let http = |source| DownloadError::Http {
        url: url.to_string(),
        source: Box::new(source),
    };
    let response = agent_for(url, opts).get(url).call().map_err(http)?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(DownloadError::HttpStatus {
            url: url.to_string(),
            status,
        });
    }
    let announced = response.body().content_length();
    if let (Some(len), Some(expected)) = (announced, expected)
        && len != expected.size()
    {
        return Err(DownloadError::SizeMismatch {
            file: url.to_string(),
            expected: expected.size(),
            actual: len,
        });
    }
    let limit = expected.map_or(opts.max_download_bytes, Checksum::size);
    let mut body = response
        .into_body()
        .into_with_config()
        .limit(limit)
        .reader();
    let mut out = File::create(part).map_err(|e| DownloadError::io(part, e))?;
    let bar = progress_bar(announced, url, opts.progress);
    let mut hasher = Hasher::new();
    let mut received = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match body.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                bar.abandon();
                let over = matches!(
                    source
                        .get_ref()
                        .and_then(|e| e.downcast_ref::<ureq::Error>()),
                    Some(ureq::Error::BodyExceedsLimit(_))
                );
                return Err(if over {
                    DownloadError::TooLarge {
                        what: url.to_string(),
                        limit,
                        unit: "bytes downloaded",
                    }
                } else {
                    DownloadError::Transfer {
                        url: url.to_string(),
                        received,
                        source,
                    }
                });
            }
        };
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).unwrap_or_default();
        out.write_all(chunk)
            .map_err(|e| DownloadError::io(part, e))?;
        hasher.update(chunk);
        received += n as u64;
        bar.set_position(received);
    }
    out.sync_all().map_err(|e| DownloadError::io(part, e))?;
    bar.finish_and_clear();
    if let Some(len) = announced.filter(|len| *len != received) {
        return Err(DownloadError::Transfer {
            url: url.to_string(),
            received,
            source: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("Content-Length was {len}"),
            ),
        });
    }
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;
    use std::time::Instant;

    /// The real datasets (`$ULMFIT_DATA`, default `../shared/data`; see `test_paths`).
    fn shared_data_dir() -> PathBuf {
        crate::data::test_paths::dataset("")
    }

    fn read_shared(rel: &str) -> Vec<u8> {
        let path = shared_data_dir().join(rel);
        fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    /// SHA-256 of `dbpedia_csv-sample.tgz` as listed in shared/data/README.md.
    fn dbpedia_sample_checksum() -> Checksum {
        Checksum::parse_sha256(
            3881,
            "817adf49f97628e8b2ce74e6c001d733bad58b7006a24d2dcd97631759400c2e",
        )
        .expect("hex")
    }

    /// A fresh folder under the system temp dir, removed on drop.
    fn temp_dir(label: &str) -> StagingDir {
        StagingDir::new_in(&std::env::temp_dir().join("ulmfit-download-tests"), label)
            .expect("temp dir")
    }

    /// Names in `dir` (empty if it does not exist).
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn count_lines(path: &Path) -> usize {
        fs::read(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
    }

    /// What the test server answers for a path.
    enum Reply {
        Body(Vec<u8>),
        /// Announces `claimed` bytes but sends only `body`, then closes.
        Short {
            claimed: usize,
            body: Vec<u8>,
        },
    }

    /// An HTTP/1.1 server on 127.0.0.1 (port 0). Unknown paths get 404. It stops when dropped,
    /// after 60 s, or after 100 connections, whichever comes first.
    struct Server {
        base: String,
        hits: Arc<Mutex<Vec<String>>>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl Server {
        fn start(routes: Vec<(&str, Reply)>) -> Self {
            let routes: Vec<(String, Reply)> = routes
                .into_iter()
                .map(|(p, r)| (p.to_string(), r))
                .collect();
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            listener.set_nonblocking(true).expect("nonblocking");
            let base = format!("http://{}", listener.local_addr().expect("addr"));
            let hits = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let (hits2, stop2) = (Arc::clone(&hits), Arc::clone(&stop));
            let thread = std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut served = 0;
                while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline && served < 100 {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            served += 1;
                            let _ = Self::answer(stream, &routes, &hits2);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break,
                    }
                }
            });
            Self {
                base,
                hits,
                stop,
                thread: Some(thread),
            }
        }

        fn answer(
            mut stream: TcpStream,
            routes: &[(String, Reply)],
            hits: &Mutex<Vec<String>>,
        ) -> io::Result<()> {
            stream.set_nonblocking(false)?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.set_write_timeout(Some(Duration::from_secs(5)))?;
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&request);
            let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
            hits.lock().expect("hits").push(path.clone());
            let head = |status: &str, len: usize| {
                format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
            };
            match routes.iter().find(|(p, _)| *p == path).map(|(_, r)| r) {
                Some(Reply::Body(body)) => {
                    stream.write_all(head("200 OK", body.len()).as_bytes())?;
                    stream.write_all(body)?;
                }
                Some(Reply::Short { claimed, body }) => {
                    stream.write_all(head("200 OK", *claimed).as_bytes())?;
                    stream.write_all(body)?;
                }
                None => stream.write_all(head("404 Not Found", 0).as_bytes())?,
            }
            stream.flush()
        }

        fn hits(&self) -> Vec<String> {
            self.hits.lock().expect("hits").clone()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Options for tests: only the given cache and mirror, no progress bar, quick retries.
    fn test_opts(cache: &Path, mirror: &str) -> ResolveOptions {
        ResolveOptions {
            cache_dir: Some(cache.to_path_buf()),
            mirror: Some(mirror.to_string()),
            progress: false,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            retry_delay: Duration::from_millis(10),
            ..ResolveOptions::default()
        }
    }

    #[test]
    fn registry_is_consistent() {
        for d in Dataset::ALL {
            assert_eq!(Dataset::from_name(d.name()).expect("name"), d);
            assert_eq!(d.to_string().parse::<Dataset>().expect("parse"), d);
            let files = d.remote_files();
            match d.packaging() {
                Packaging::Tgz => {
                    assert_eq!(files.len(), 1, "{d}");
                    assert_eq!(files[0].file_name, format!("{}.tgz", d.name()));
                    assert!(
                        files[0]
                            .url
                            .starts_with("https://s3.amazonaws.com/fast-ai-nlp/")
                    );
                    assert!(matches!(
                        files[0].checksum,
                        Some(Checksum::FastaiMd5 { .. })
                    ));
                }
                Packaging::Files => {
                    assert_eq!(files.len(), 2, "{d}");
                    for f in files {
                        assert!(
                            f.url
                                .starts_with("https://cogcomp.seas.upenn.edu/Data/QA/QC/")
                        );
                        assert!(matches!(f.checksum, Some(Checksum::Sha256 { .. })));
                    }
                }
            }
            for f in files {
                assert!(f.url.ends_with(&format!("/{}", f.file_name)));
            }
        }
        assert_eq!(
            Dataset::from_name("Yelp-P").expect("alias"),
            Dataset::YelpPolarity
        );
        assert_eq!(
            Dataset::from_name("WT103").expect("alias"),
            Dataset::WikiText103
        );
        assert!(matches!(
            Dataset::from_name("sst2"),
            Err(DownloadError::UnknownDataset(_))
        ));
    }

    #[test]
    fn registry_checksums_match_the_local_copies() {
        // The TREC files here are byte-identical to the official ones (data README).
        let trec = shared_data_dir().join("trec");
        for f in Dataset::Trec6.remote_files() {
            let c = f.checksum.expect("trec checksum");
            c.verify_file(&trec.join(f.file_name))
                .expect("trec file matches registry");
        }
        // fastai-style check on a file larger than 1 MiB (expected value from
        // `head -c 1048576 imdb.tgz | md5sum`); and a whole-file SHA-256 (data README).
        let imdb = Checksum::parse_fastai_md5(56_348_467, "4340f5008b302de5cc96eea04a85ea4b")
            .expect("hex");
        imdb.verify_file(&shared_data_dir().join("imdb.tgz"))
            .expect("imdb first-MiB md5");
        let sample = shared_data_dir().join("dbpedia_csv-sample.tgz");
        dbpedia_sample_checksum()
            .verify_file(&sample)
            .expect("sha256");
        // The local sample is not fastai's full archive: the registry check refuses it.
        let err = DBPEDIA[0].checksum.expect("registry").verify_file(&sample);
        assert!(
            matches!(err, Err(DownloadError::SizeMismatch { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn options_from_vars_follow_the_documented_order() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let o = ResolveOptions::from_vars(vars(&[
            ("ULMFIT_CACHE", "/c"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
            ("ULMFIT_DATA", "/d"),
            ("ULMFIT_MIRROR", "http://127.0.0.1:1/m"),
        ]));
        assert_eq!(o.cache_dir, Some(PathBuf::from("/c")));
        assert_eq!(o.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(
            o.url_for(&DBPEDIA[0]),
            "http://127.0.0.1:1/m/dbpedia_csv.tgz"
        );
        let o = ResolveOptions::from_vars(vars(&[("ULMFIT_CACHE", ""), ("XDG_CACHE_HOME", "/x")]));
        assert_eq!(o.cache_dir, Some(PathBuf::from("/x/ulmfit")));
        let o = ResolveOptions::from_vars(vars(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")]));
        assert_eq!(o.cache_dir, Some(PathBuf::from("/h/.cache/ulmfit")));
        assert_eq!(o.url_for(&TREC[1]), TREC[1].url);
        let o = ResolveOptions::from_vars(vars(&[]));
        assert_eq!((o.cache_dir, o.data_dir, o.mirror), (None, None, None));
    }

    #[test]
    fn downloads_verifies_and_extracts_an_archive() {
        let dir = temp_dir("dbpedia");
        let cache = dir.path().join("cache");
        let server = Server::start(vec![(
            "/nlp/dbpedia_csv.tgz",
            Reply::Body(read_shared("dbpedia_csv-sample.tgz")),
        )]);
        let mut opts = test_opts(&cache, &format!("{}/nlp/", server.base));
        opts.checksum_overrides = vec![("dbpedia_csv.tgz".into(), dbpedia_sample_checksum())];
        let got = resolve(Dataset::Dbpedia, None, &opts).expect("download");
        assert_eq!(got, cache.join("dbpedia_csv"));
        // Row counts from the data README: 14 train, 5 test, 14 classes.
        assert_eq!(count_lines(&got.join("train.csv")), 14);
        assert_eq!(count_lines(&got.join("test.csv")), 5);
        assert_eq!(count_lines(&got.join("classes.txt")), 14);
        assert_eq!(names(&cache), ["dbpedia_csv"], "staging left behind");
        // Second call: served from the cache, no new request.
        assert_eq!(resolve(Dataset::Dbpedia, None, &opts).expect("cached"), got);
        assert_eq!(server.hits(), ["/nlp/dbpedia_csv.tgz"]);
    }

    #[test]
    fn downloads_trec_files_with_registry_checksums() {
        let dir = temp_dir("trec");
        let cache = dir.path().join("cache");
        let server = Server::start(vec![
            (
                "/qc/train_5500.label",
                Reply::Body(read_shared("trec/train_5500.label")),
            ),
            (
                "/qc/TREC_10.label",
                Reply::Body(read_shared("trec/TREC_10.label")),
            ),
        ]);
        let opts = test_opts(&cache, &format!("{}/qc", server.base));
        let got = resolve(Dataset::Trec6, None, &opts).expect("download");
        assert_eq!(got, cache.join("trec"));
        assert_eq!(names(&got), ["TREC_10.label", "train_5500.label"]);
        assert_eq!(count_lines(&got.join("train_5500.label")), 5452);
        assert_eq!(count_lines(&got.join("TREC_10.label")), 500);
        assert_eq!(
            fs::read(got.join("train_5500.label")).expect("read"),
            read_shared("trec/train_5500.label")
        );
        assert_eq!(names(&cache), ["trec"]);
    }

    #[test]
    fn checksum_and_size_mismatches_leave_nothing() {
        let dir = temp_dir("mismatch");
        let server = Server::start(vec![(
            "/dbpedia_csv.tgz",
            Reply::Body(read_shared("dbpedia_csv-sample.tgz")),
        )]);
        // Registry checksum (fastai's full archive): the announced size already differs.
        let cache = dir.path().join("a");
        let err =
            resolve(Dataset::Dbpedia, None, &test_opts(&cache, &server.base)).expect_err("size");
        assert!(
            matches!(
                err,
                DownloadError::SizeMismatch {
                    expected: 68_341_743,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(names(&cache), Vec::<String>::new());
        // Right size, wrong digest (the Yelp polarity sample's SHA-256).
        let cache = dir.path().join("b");
        let mut opts = test_opts(&cache, &server.base);
        let wrong = Checksum::parse_sha256(
            3881,
            "6318fac1c74dfedd1e01c4e7fb39706176b52886e59784cf424f6ae9b4f8ec54",
        )
        .expect("hex");
        opts.checksum_overrides = vec![("dbpedia_csv.tgz".into(), wrong)];
        let err = resolve(Dataset::Dbpedia, None, &opts).expect_err("digest");
        assert!(
            matches!(err, DownloadError::ChecksumMismatch { .. }),
            "{err}"
        );
        assert_eq!(names(&cache), Vec::<String>::new());
        // Mismatches are not retried.
        assert_eq!(server.hits().len(), 2);
    }

    #[test]
    fn truncated_downloads_fail_and_leave_nothing() {
        let dir = temp_dir("truncated");
        let full = read_shared("dbpedia_csv-sample.tgz");
        let half = full[..full.len() / 2].to_vec();
        let server = Server::start(vec![
            (
                "/short/dbpedia_csv.tgz",
                Reply::Short {
                    claimed: full.len(),
                    body: half.clone(),
                },
            ),
            ("/cut/dbpedia_csv.tgz", Reply::Body(half)),
        ]);
        // The connection closes before Content-Length bytes: a transfer error, retried twice.
        let cache = dir.path().join("a");
        let mut opts = test_opts(&cache, &format!("{}/short", server.base));
        opts.checksum_overrides = vec![("dbpedia_csv.tgz".into(), dbpedia_sample_checksum())];
        opts.attempts = 2;
        let err = resolve(Dataset::Dbpedia, None, &opts).expect_err("short body");
        assert!(matches!(err, DownloadError::Transfer { .. }), "{err}");
        assert_eq!(server.hits().len(), 2, "bounded retries");
        assert_eq!(names(&cache), Vec::<String>::new());
        // A complete response holding a truncated archive, unverified: extraction fails.
        let cache = dir.path().join("b");
        let mut opts = test_opts(&cache, &format!("{}/cut", server.base));
        opts.verify = false;
        let err = resolve(Dataset::Dbpedia, None, &opts).expect_err("truncated archive");
        assert!(matches!(err, DownloadError::Archive { .. }), "{err}");
        assert_eq!(names(&cache), Vec::<String>::new());
    }

    /// A `.tgz` with one regular file stored under `name` verbatim.
    fn evil_tgz(name: &str) -> Vec<u8> {
        let mut header = tar::Header::new_ustar();
        {
            let old = header.as_old_mut();
            old.name.fill(0);
            old.name[..name.len()].copy_from_slice(name.as_bytes());
        }
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(4);
        header.set_mode(0o644);
        header.set_cksum();
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut builder = tar::Builder::new(gz);
        builder.append(&header, &b"evil"[..]).expect("append");
        builder.into_inner().expect("tar").finish().expect("gzip")
    }

    #[test]
    fn archives_escaping_the_cache_are_refused() {
        let dir = temp_dir("evil");
        let outside = dir.path().join("outside-evil");
        let server = Server::start(vec![
            (
                "/up/dbpedia_csv.tgz",
                Reply::Body(evil_tgz("dbpedia_csv/../../../evil")),
            ),
            (
                "/abs/dbpedia_csv.tgz",
                Reply::Body(evil_tgz(&outside.to_string_lossy())),
            ),
        ]);
        for route in ["up", "abs"] {
            let cache = dir.path().join(format!("cache-{route}"));
            let mut opts = test_opts(&cache, &format!("{}/{route}", server.base));
            opts.verify = false;
            let err = resolve(Dataset::Dbpedia, None, &opts).expect_err(route);
            assert!(
                matches!(err, DownloadError::UnsafeEntry { .. }),
                "{route}: {err}"
            );
            assert_eq!(names(&cache), Vec::<String>::new(), "{route}");
        }
        assert!(!outside.exists());
        assert!(!dir.path().join("evil").exists());
        assert!(!dir.path().parent().expect("parent").join("evil").exists());
        assert_eq!(names(dir.path()), ["cache-abs", "cache-up"]);
    }

    #[test]
    fn http_errors_are_typed_and_not_retried() {
        let dir = temp_dir("404");
        let cache = dir.path().join("cache");
        let server = Server::start(vec![]);
        let err =
            resolve(Dataset::AgNews, None, &test_opts(&cache, &server.base)).expect_err("404");
        assert!(
            matches!(&err, DownloadError::HttpStatus { status: 404, url } if url.ends_with("/ag_news_csv.tgz")),
            "{err}"
        );
        assert_eq!(server.hits(), ["/ag_news_csv.tgz"]);
        assert_eq!(names(&cache), Vec::<String>::new());
        // Nothing listens on a port that was just released: connection refused.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut opts = test_opts(&cache, &format!("http://127.0.0.1:{port}"));
        opts.attempts = 1;
        let err = resolve(Dataset::AgNews, None, &opts).expect_err("refused");
        assert!(matches!(err, DownloadError::Http { .. }), "{err}");
        assert_eq!(names(&cache), Vec::<String>::new());
    }

    #[test]
    fn resolution_order_is_explicit_env_cache_download() {
        let dir = temp_dir("order");
        let cache = dir.path().join("cache");
        let server = Server::start(vec![(
            "/dbpedia_csv.tgz",
            Reply::Body(read_shared("dbpedia_csv-sample.tgz")),
        )]);
        let mut opts = test_opts(&cache, &server.base);
        opts.checksum_overrides = vec![("dbpedia_csv.tgz".into(), dbpedia_sample_checksum())];
        opts.data_dir = Some(shared_data_dir());

        // 1. Explicit wins over everything; it must exist.
        let explicit = dir.path().join("mine");
        fs::create_dir(&explicit).expect("mkdir");
        assert_eq!(
            resolve(Dataset::Dbpedia, Some(&explicit), &opts).expect("explicit"),
            explicit
        );
        let missing = dir.path().join("missing");
        let err = resolve(Dataset::Dbpedia, Some(&missing), &opts).expect_err("missing");
        assert!(matches!(err, DownloadError::NotFound { .. }), "{err}");

        // 2. $ULMFIT_DATA: a folder is returned as is, an archive is extracted into the cache.
        let trec = resolve(Dataset::Trec6, None, &opts).expect("env folder");
        assert_eq!(trec, shared_data_dir().join("trec"));
        let from_env = resolve(Dataset::Dbpedia, None, &opts).expect("env archive");
        assert!(
            from_env.starts_with(cache.join("extracted")),
            "{}",
            from_env.display()
        );
        assert_eq!(count_lines(&from_env.join("train.csv")), 14);
        assert_eq!(
            resolve(Dataset::Dbpedia, None, &opts).expect("again"),
            from_env
        );
        let wt2 = resolve(Dataset::WikiText2, None, &opts).expect("env -sample folder");
        assert_eq!(wt2, shared_data_dir().join("wikitext-2-sample"));
        assert!(server.hits().is_empty());

        // An explicit archive is extracted the same way.
        let archive = shared_data_dir().join("yelp_review_full_csv-sample.tgz");
        let yelp = resolve(Dataset::YelpFull, Some(&archive), &opts).expect("explicit archive");
        assert_eq!(names(&yelp), ["test.csv", "train.csv"]);
        // ... or handed back as is, for the readers that stream archives.
        let kept = ResolveOptions {
            keep_archives: true,
            ..opts.clone()
        };
        assert_eq!(
            resolve(Dataset::YelpFull, Some(&archive), &kept).expect("kept"),
            archive
        );
        let not_archive = shared_data_dir().join("README.md");
        let err = resolve(Dataset::YelpFull, Some(&not_archive), &opts).expect_err("not tgz");
        assert!(matches!(err, DownloadError::NotADataset { .. }), "{err}");

        // 3. Not in the data folder: the cache.
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).expect("mkdir");
        opts.data_dir = Some(empty);
        let cached = cache.join("dbpedia_csv");
        fs::create_dir_all(&cached).expect("mkdir");
        assert_eq!(
            resolve(Dataset::Dbpedia, None, &opts).expect("cache"),
            cached
        );
        assert!(server.hits().is_empty());

        // 4. Nowhere: refused offline, downloaded otherwise.
        fs::remove_dir(&cached).expect("rmdir");
        opts.allow_download = false;
        let err = resolve(Dataset::Dbpedia, None, &opts).expect_err("offline");
        assert!(matches!(err, DownloadError::Unavailable { .. }), "{err}");
        opts.allow_download = true;
        let got = resolve(Dataset::Dbpedia, None, &opts).expect("download");
        assert_eq!(got, cached);
        assert_eq!(count_lines(&got.join("test.csv")), 5);
        assert_eq!(server.hits(), ["/dbpedia_csv.tgz"]);

        // Without any cache folder, nothing can be stored.
        opts.cache_dir = None;
        let err = resolve(Dataset::Imdb, None, &opts).expect_err("no cache");
        assert!(matches!(err, DownloadError::NoCacheDir { .. }), "{err}");
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("http://127.0.0.1:8080/x"));
        assert!(is_loopback("http://localhost/x"));
        assert!(is_loopback("http://[::1]:9/x"));
        assert!(!is_loopback(
            "https://s3.amazonaws.com/fast-ai-nlp/imdb.tgz"
        ));
        assert!(!is_loopback("https://127.0.0.1.example.com@evil.org/x"));
        assert!(!is_loopback("http://127.0.0.1.evil.org/x"));
    }
}
