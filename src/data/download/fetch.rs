//! Streaming a file over HTTP(S) with a progress bar, size and checksum checks, and retries.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::data::cache::{self, Checksum, Digests, Hasher, StagingDir};

use super::*;

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
pub(super) fn is_loopback(url: &str) -> bool {
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

pub(super) fn agent_for(url: &str, opts: &ResolveOptions) -> ureq::Agent {
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

pub(super) fn progress_bar(len: Option<u64>, url: &str, show: bool) -> indicatif::ProgressBar {
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
pub(super) fn fetch_once(
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
