//! A pretrained language-model folder: the crate's own form of ULMFiT's stage-1 output.
//!
//! Written by the `pretrain_wikitext` example (`--out DIR`) and by
//! `ulmfit convert-fastai lstm_fwd.pth itos_wt103.pkl --out DIR` (fastai's WT103 model, read once
//! and stored as burnpack); read by the examples' `--pretrained DIR`. A folder holds:
//!
//! - `lm_config.json`: the [`LanguageModelConfig`] (sizes; the dropouts are the reader's choice),
//! - `vocab.json`: the vocabulary ([`Vocab::save`]),
//! - `lm_fwd.bpk` / `lm_bwd.bpk`: the whole language model of a direction (burnpack),
//! - `encoder_fwd.bpk` / `encoder_bwd.bpk`: its encoder alone, what
//!   `ClassifierLearner::load_encoder` takes with the same vocabulary.
//!
//! Every file is written atomically.

use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::tensor::Device;

use crate::nn::{LanguageModel, LanguageModelConfig};
use crate::text::Vocab;
use crate::weights::{WeightsError, load_module, save_module};

/// The architecture file.
pub const LM_CONFIG_FILE: &str = "lm_config.json";
/// The vocabulary file.
pub const VOCAB_FILE: &str = "vocab.json";

/// The language model file of a direction (`lm_fwd.bpk`, or `lm_bwd.bpk` for a model trained on
/// reversed text).
pub fn lm_file(backwards: bool) -> &'static str {
    if backwards {
        "lm_bwd.bpk"
    } else {
        "lm_fwd.bpk"
    }
}

/// The encoder file of a direction.
pub fn encoder_file(backwards: bool) -> &'static str {
    if backwards {
        "encoder_bwd.bpk"
    } else {
        "encoder_fwd.bpk"
    }
}

/// Errors of reading or writing a pretrained folder.
#[derive(Debug, thiserror::Error)]
pub enum PretrainedError {
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The weights do not fit.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The vocabulary and the model disagree.
    #[error(
        "{dir}: the vocabulary has {vocab} tokens but the model {rows} embedding rows; the \
         folder is inconsistent, write it again"
    )]
    VocabMismatch {
        /// The folder.
        dir: PathBuf,
        /// Vocabulary size.
        vocab: usize,
        /// Embedding rows.
        rows: usize,
    },
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> PretrainedError {
    PretrainedError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes `lm` (built from `config`, over `vocab`) into `dir` as the `backwards` direction:
/// the model, its encoder, the configuration and the vocabulary.
pub fn save(
    dir: &Path,
    lm: &LanguageModel,
    config: &LanguageModelConfig,
    vocab: &Vocab,
    backwards: bool,
) -> Result<(), PretrainedError> {
    let rows = lm.encoder.vocab_size();
    if rows != vocab.len() {
        return Err(PretrainedError::VocabMismatch {
            dir: dir.to_path_buf(),
            vocab: vocab.len(),
            rows,
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    save_module(lm.clone(), &dir.join(lm_file(backwards)))?;
    save_module(lm.encoder.clone(), &dir.join(encoder_file(backwards)))?;
    let path = dir.join(VOCAB_FILE);
    vocab.save(&path).map_err(|e| file_err(&path, e))?;
    let path = dir.join(LM_CONFIG_FILE);
    crate::atomic::write_atomic(&path, config.to_string().as_bytes())
        .map_err(|(p, e)| file_err(&p, e))?;
    Ok(())
}

/// A language model read from a pretrained folder.
pub struct Loaded {
    /// The model (on the requested device, with the configuration's dropouts scaled by the
    /// caller's `drop_mult`).
    pub model: LanguageModel,
    /// Its configuration.
    pub config: LanguageModelConfig,
    /// Its vocabulary.
    pub vocab: Vocab,
}

/// Whether `dir` holds a pretrained language model of the `backwards` direction.
pub fn exists(dir: &Path, backwards: bool) -> bool {
    dir.join(lm_file(backwards)).is_file()
}

/// Reads the `backwards` direction's language model from `dir` onto `device`, with the saved
/// sizes and `config_fn` applied to the saved configuration (e.g. to set the dropouts).
pub fn load(
    dir: &Path,
    backwards: bool,
    device: &Device,
    config_fn: impl FnOnce(LanguageModelConfig) -> LanguageModelConfig,
) -> Result<Loaded, PretrainedError> {
    let path = dir.join(LM_CONFIG_FILE);
    let config = config_fn(LanguageModelConfig::load(&path).map_err(|e| file_err(&path, e))?);
    let path = dir.join(VOCAB_FILE);
    let vocab = Vocab::load(&path).map_err(|e| file_err(&path, e))?;
    if vocab.len() != config.encoder.vocab_size {
        return Err(PretrainedError::VocabMismatch {
            dir: dir.to_path_buf(),
            vocab: vocab.len(),
            rows: config.encoder.vocab_size,
        });
    }
    let model = load_module(config.init(device), &dir.join(lm_file(backwards)))?;
    Ok(Loaded {
        model,
        config,
        vocab,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::AwdLstmConfig;
    use crate::test_util::{test_device, to_vec};

    fn tmp(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ulmfit-pretrained-{tag}-{}", std::process::id()))
    }

    #[test]
    fn round_trip_and_mismatches() {
        let device = test_device();
        let config = LanguageModelConfig::new(
            AwdLstmConfig::new(6)
                .with_emb_size(4)
                .with_hidden_size(5)
                .with_n_layers(2),
        );
        let lm = config.init(&device);
        let vocab = Vocab::new(
            ["xxunk", "xxpad", "xxbos", "a", "b", "c"]
                .map(String::from)
                .to_vec(),
        );
        let dir = tmp("rt");
        save(&dir, &lm, &config, &vocab, true).unwrap();
        assert!(exists(&dir, true) && !exists(&dir, false));
        let back = load(&dir, true, &device, |c| c).unwrap();
        assert_eq!(back.vocab.itos(), vocab.itos());
        assert_eq!(
            to_vec(back.model.encoder.embedding.val()),
            to_vec(lm.encoder.embedding.val())
        );
        assert!(matches!(
            load(&dir, false, &device, |c| c),
            Err(PretrainedError::Weights(_))
        ));
        let short = Vocab::new(["xxunk", "xxpad"].map(String::from).to_vec());
        assert!(matches!(
            save(&dir, &lm, &config, &short, false),
            Err(PretrainedError::VocabMismatch { .. })
        ));
        std::fs::remove_dir_all(&dir).ok();
    }
}
