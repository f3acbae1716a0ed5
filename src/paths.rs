//! Where the shared reference material is: the fastai fixtures and the benchmark datasets.
//!
//! `$ULMFIT_FIXTURES` (default `<crate>/../shared/fixtures/fastai`) and `$ULMFIT_DATA` (default
//! `<crate>/../shared/data`): the project's `shared/` folder sits beside the crate, in
//! development and in CI.

use std::path::{Path, PathBuf};

/// The fastai reference fixtures folder.
pub fn fixtures_dir() -> PathBuf {
    resolve("ULMFIT_FIXTURES", "fixtures/fastai")
}

/// The benchmark datasets folder.
pub fn data_dir() -> PathBuf {
    resolve("ULMFIT_DATA", "data")
}

fn resolve(var: &str, sub: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared")
            .join(sub),
    }
}

/// A fixture file for a test: fails the test, saying how to get the fixtures, if it is missing.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> PathBuf {
    let p = fixtures_dir().join(name);
    assert!(
        p.exists(),
        "fastai fixture {} not found: the fixtures come with the project's shared/ folder \
         (shared/fixtures/fastai beside the crate); set ULMFIT_FIXTURES to their folder, or \
         regenerate them with generate.py there",
        p.display()
    );
    p
}

/// A dataset file or folder for a test: fails the test, saying how to get it, if it is missing.
#[cfg(test)]
pub(crate) fn dataset(name: &str) -> PathBuf {
    let p = data_dir().join(name);
    assert!(
        p.exists(),
        "dataset {} not found: the datasets come with the project's shared/ folder \
         (shared/data beside the crate, see its README); set ULMFIT_DATA to their folder",
        p.display()
    );
    p
}
