//! Self-contained, versioned model bundles: everything needed to classify raw text.
//!
//! A bundle is one directory:
//!
//! | file | content |
//! | --- | --- |
//! | `manifest.json` | [`Manifest`]: format and crate version, direction, label names, tokenizer settings, model configuration, vocabulary length, size and SHA-256 of the other files |
//! | `model.bpk` | the classifier's weights (burn's burnpack format, BatchNorm statistics included) |
//! | `vocab.json` | the vocabulary (a JSON list of tokens, see [`Vocab::save`]) |
//!
//! [`Bundle::save`] writes a temporary directory beside the target and renames it into place,
//! so a reader sees the old bundle or the new one, never a mixture. [`Bundle::load`] checks the
//! format version, every file's size and checksum, that the vocabulary has one token per
//! embedding row, that the described model is possible and fits in the weight file (before
//! allocating it), and that no weight is NaN or infinite; each refusal is a [`BundleError`]
//! saying what to do.
//!
//! ```
//! use ulmfit::bundle::{Bundle, Direction};
//! use ulmfit::nn::{AwdLstmConfig, TextClassifierConfig};
//! use ulmfit::text::{TokenizerConfig, Vocab};
//!
//! let device = ulmfit::device::parse("cpu")?;
//! let vocab = Vocab::new(["xxunk", "xxpad", "xxbos", "good", "bad"].map(String::from).to_vec());
//! let config = TextClassifierConfig::new(
//!     AwdLstmConfig::classifier(vocab.len()).with_emb_size(4).with_hidden_size(6).with_n_layers(2),
//!     2,
//! );
//! let model = config.init(&device); // normally: a trained `ClassifierLearner`'s `model`
//! let bundle = Bundle::from_classifier(
//!     &model, &config, vocab, vec!["neg".into(), "pos".into()],
//!     TokenizerConfig::default(), Direction::Forward,
//! )?;
//! let dir = std::env::temp_dir().join(format!("ulmfit-doc-bundle-{}", std::process::id()));
//! bundle.save(&dir)?;
//! let loaded = Bundle::load(&dir, &device)?;
//! assert_eq!(loaded.manifest.labels, ["neg", "pos"]);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod manifest;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::module::Module;
use burn::tensor::Device;
use sha2::{Digest, Sha256};

pub use error::BundleError;
pub use manifest::{Direction, FORMAT_NAME, FORMAT_VERSION, FileEntry, Manifest};

use crate::nn::{TextClassifier, TextClassifierConfig};
use crate::text::{Tokenizer, TokenizerConfig, Vocab};

/// File name of the manifest.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the weights.
pub const MODEL_FILE: &str = "model.bpk";
/// File name of the vocabulary.
pub const VOCAB_FILE: &str = "vocab.json";

/// Largest manifest accepted (the real ones are a few kB; label lists of a few thousand
/// classes fit easily).
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// A trained classifier with everything needed to use it on raw text.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Description (labels, tokenizer, configuration, direction, versions).
    pub manifest: Manifest,
    /// The classifier (in eval mode after [`Bundle::load`]).
    pub model: TextClassifier,
    /// The vocabulary the model was trained with.
    pub vocab: Vocab,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Bundle {
    /// Packs a trained classifier: the one way to produce a bundle from this crate's training
    /// (`ClassifierLearner::model`, trained on `vocab`'s ids tokenized by `tokenizer`, with
    /// class `i` named `labels[i]`). `config` must be the configuration the model was built
    /// from. The model may live on an autodiff device; the bundle keeps an eval-mode copy.
    pub fn from_classifier(
        model: &TextClassifier,
        config: &TextClassifierConfig,
        vocab: Vocab,
        labels: Vec<String>,
        tokenizer: TokenizerConfig,
        direction: Direction,
    ) -> Result<Self, BundleError> {
        let bad = |m: String| Err(BundleError::Inconsistent(m));
        let [rows, emb] = model.encoder.embedding.dims();
        if [rows, emb] != [config.encoder.vocab_size, config.encoder.emb_size] {
            return bad(format!(
                "the model's embedding is {rows} x {emb}, the configuration says {} x {}",
                config.encoder.vocab_size, config.encoder.emb_size
            ));
        }
        if vocab.len() != rows {
            return bad(format!(
                "the vocabulary has {} tokens, the model {rows} embedding rows",
                vocab.len()
            ));
        }
        let n_class = model.n_class();
        if n_class != config.n_class || labels.len() != n_class {
            return bad(format!(
                "the model has {n_class} classes, the configuration {} and {} labels were given",
                config.n_class,
                labels.len()
            ));
        }
        let manifest = Manifest {
            format: FORMAT_NAME.to_string(),
            format_version: FORMAT_VERSION,
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            direction,
            labels,
            tokenizer,
            model: config.clone(),
            vocab_len: vocab.len(),
            files: BTreeMap::new(),
        };
        Ok(Self {
            manifest,
            model: model.valid(),
            vocab,
        })
    }

    /// The tokenizer the model was trained with.
    pub fn tokenizer(&self) -> Tokenizer {
        Tokenizer::new(self.manifest.tokenizer.clone())
    }

    /// The model's direction.
    pub fn direction(&self) -> Direction {
        self.manifest.direction
    }

    /// Saves the bundle to the directory `dir`, atomically: the files are written to a
    /// temporary directory beside `dir`, which is then renamed to `dir`. An existing bundle at
    /// `dir` is replaced; any other existing file or non-empty directory is left alone
    /// ([`BundleError::WouldClobber`]).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<(), BundleError> {
        let dir = dir.as_ref();
        if dir.exists() && !is_replaceable(dir) {
            return Err(BundleError::WouldClobber(dir.to_path_buf()));
        }
        let tmp = sibling(dir, "tmp");
        let result = self.write_into(&tmp).and_then(|()| replace_dir(&tmp, dir));
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    fn write_into(&self, tmp: &Path) -> Result<(), BundleError> {
        std::fs::create_dir_all(tmp).map_err(io_err(tmp))?;
        let model_path = tmp.join(MODEL_FILE);
        crate::weights::save_module(self.model.clone(), &model_path)?;
        let vocab_path = tmp.join(VOCAB_FILE);
        self.vocab.save(&vocab_path).map_err(|e| BundleError::Io {
            path: vocab_path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let mut manifest = self.manifest.clone();
        manifest.files.clear();
        for (name, path) in [(MODEL_FILE, &model_path), (VOCAB_FILE, &vocab_path)] {
            let bytes = std::fs::read(path).map_err(io_err(path))?;
            manifest.files.insert(
                name.to_string(),
                FileEntry {
                    bytes: bytes.len() as u64,
                    sha256: sha256_hex(&bytes),
                },
            );
        }
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| BundleError::Manifest {
            path: tmp.join(MANIFEST_FILE),
            message: e.to_string(),
        })?;
        let manifest_path = tmp.join(MANIFEST_FILE);
        crate::atomic::write_atomic(&manifest_path, &json)
            .map_err(|(path, source)| BundleError::Io { path, source })?;
        // Make the directory entries durable before the rename publishes them.
        if let Ok(d) = std::fs::File::open(tmp) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Loads and checks a bundle; the model is put on `device` in eval mode (an autodiff
    /// device is replaced by its inner device: prediction needs no gradients).
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self, BundleError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(BundleError::NotFound(dir.to_path_buf()));
        }
        let manifest = read_manifest(dir)?;
        let mut contents = BTreeMap::new();
        for name in [MODEL_FILE, VOCAB_FILE] {
            contents.insert(name, read_checked(dir, name, &manifest)?);
        }
        let vocab_bytes = &contents[VOCAB_FILE];
        let vocab = parse_vocab(dir, vocab_bytes)?;
        let model_bytes = contents.remove(MODEL_FILE).unwrap_or_default();
        validate::check_config(dir, &manifest, vocab.len(), model_bytes.len() as u64)?;
        let device = device.clone().without_autodiff();
        let model = manifest.model.init(&device);
        let model =
            crate::weights::load_module_bytes(model, model_bytes, &dir.join(MODEL_FILE))?.valid();
        let count = validate::count_non_finite(&model);
        if count > 0 {
            return Err(BundleError::NonFinite {
                dir: dir.to_path_buf(),
                count,
            });
        }
        Ok(Self {
            manifest,
            model,
            vocab,
        })
    }

    /// [`load`](Bundle::load), refusing a bundle of another direction (`what` names the
    /// argument in the error, e.g. `--backward`).
    pub fn load_expecting(
        dir: impl AsRef<Path>,
        device: &Device,
        direction: Direction,
        what: &str,
    ) -> Result<Self, BundleError> {
        let dir = dir.as_ref();
        let bundle = Self::load(dir, device)?;
        if bundle.direction() != direction {
            return Err(BundleError::WrongDirection {
                what: format!("{what} {}", dir.display()),
                expected: direction,
                found: bundle.direction(),
            });
        }
        Ok(bundle)
    }
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, BundleError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut bytes = vec![];
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    Ok(bytes)
}

fn read_manifest(dir: &Path) -> Result<Manifest, BundleError> {
    let path = dir.join(MANIFEST_FILE);
    if !path.is_file() {
        return Err(BundleError::MissingFile {
            dir: dir.to_path_buf(),
            file: MANIFEST_FILE.to_string(),
        });
    }
    let bytes = read_limited(&path, MAX_MANIFEST_BYTES)?;
    let bad = |message: String| BundleError::Manifest {
        path: path.clone(),
        message,
    };
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(bad(format!("larger than {MAX_MANIFEST_BYTES} bytes")));
    }
    // Read the version first, so that a bundle of another format version gets the version
    // error rather than a parse error about a field it may have renamed.
    #[derive(serde::Deserialize)]
    struct Head {
        format: Option<String>,
        format_version: Option<u32>,
        crate_version: Option<String>,
    }
    let head: Head = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if head.format.as_deref() != Some(FORMAT_NAME) {
        return Err(bad(format!(
            "`format` is {:?}, expected {FORMAT_NAME:?}",
            head.format
        )));
    }
    let found = head
        .format_version
        .ok_or_else(|| bad("no `format_version`".into()))?;
    if found != FORMAT_VERSION {
        return Err(BundleError::IncompatibleVersion {
            dir: dir.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
            crate_version: head.crate_version.unwrap_or_else(|| "?".into()),
            ours: env!("CARGO_PKG_VERSION"),
            advice: if found > FORMAT_VERSION {
                "upgrade ulmfit to read it"
            } else {
                "load it with the ulmfit version that wrote it and save it again, or re-export it"
            },
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))
}

fn read_checked(dir: &Path, name: &str, manifest: &Manifest) -> Result<Vec<u8>, BundleError> {
    let path = dir.join(name);
    let entry = manifest
        .files
        .get(name)
        .ok_or_else(|| BundleError::Manifest {
            path: dir.join(MANIFEST_FILE),
            message: format!("no checksum for {name}"),
        })?;
    if !path.is_file() {
        return Err(BundleError::MissingFile {
            dir: dir.to_path_buf(),
            file: name.to_string(),
        });
    }
    let len = std::fs::metadata(&path).map_err(io_err(&path))?.len();
    if len != entry.bytes {
        return Err(BundleError::Checksum { path });
    }
    let bytes = read_limited(&path, entry.bytes)?;
    if bytes.len() as u64 != entry.bytes || sha256_hex(&bytes) != entry.sha256 {
        return Err(BundleError::Checksum { path });
    }
    Ok(bytes)
}

fn parse_vocab(dir: &Path, bytes: &[u8]) -> Result<Vocab, BundleError> {
    let itos: Vec<String> = serde_json::from_slice(bytes).map_err(|e| BundleError::Manifest {
        path: dir.join(VOCAB_FILE),
        message: format!("not a JSON list of tokens: {e}"),
    })?;
    Ok(Vocab::new(itos))
}

/// A fresh path beside `dir` (`.name.<what>-<pid>-<n>`).
fn sibling(dir: &Path, what: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    dir.with_file_name(format!(".{name}.{what}-{}-{n}", std::process::id()))
}

/// An empty directory or a directory holding a bundle manifest.
fn is_replaceable(dir: &Path) -> bool {
    dir.is_dir()
        && (dir.join(MANIFEST_FILE).is_file()
            || std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none()))
}

/// Renames `tmp` to `dir`, moving an existing `dir` out of the way first (a directory cannot
/// be renamed over a non-empty one); on failure the old bundle is put back.
fn replace_dir(tmp: &Path, dir: &Path) -> Result<(), BundleError> {
    if !dir.exists() {
        return std::fs::rename(tmp, dir).map_err(io_err(dir));
    }
    let old = sibling(dir, "old");
    std::fs::rename(dir, &old).map_err(io_err(dir))?;
    if let Err(e) = std::fs::rename(tmp, dir) {
        let _ = std::fs::rename(&old, dir);
        return Err(io_err(dir)(e));
    }
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
