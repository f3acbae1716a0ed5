use super::catalog::*;
use super::fetch::*;
use super::*;
use crate::data::cache::*;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
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
    let imdb =
        Checksum::parse_fastai_md5(56_348_467, "4340f5008b302de5cc96eea04a85ea4b").expect("hex");
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
    let err = resolve(Dataset::Dbpedia, None, &test_opts(&cache, &server.base)).expect_err("size");
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
    let err = resolve(Dataset::AgNews, None, &test_opts(&cache, &server.base)).expect_err("404");
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
