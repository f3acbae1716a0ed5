//! `--out DIR`: what a trained classifier leaves behind.
//!
//! TEMPORARY FORMAT, to be replaced by the model-bundle API (`ulmfit::bundle`) when the branches
//! are merged: [`save_outputs`] is the only writer and [`load_outputs`] the only reader.

use std::path::Path;

use burn::tensor::Device;
use ulmfit::nn::{TextClassifier, TextClassifierConfig};
use ulmfit::text::Vocab;

use super::Error;

/// Which way a model reads its documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Left to right.
    Fwd,
    /// Right to left: token ids reversed per document (fastai `backwards=True`).
    Bwd,
}

impl Direction {
    /// `fwd` or `bwd`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Fwd => "fwd",
            Direction::Bwd => "bwd",
        }
    }
}

/// File names inside an output folder.
pub const VOCAB_FILE: &str = "vocab.json";
/// The description of the saved model(s).
pub const MODEL_FILE: &str = "model.json";

/// The classifier weights of `direction` in an output folder.
pub fn weights_file(direction: Direction) -> String {
    format!("classifier_{}.bpk", direction.name())
}

/// `model.json`: enough to rebuild and use the saved classifier(s).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ModelInfo {
    /// Class names, in label order.
    pub labels: Vec<String>,
    /// The preset the model was trained with (`small`, `paper`, `smoke`).
    pub preset: String,
    /// The saved directions (an ensemble has both; average their probabilities).
    pub directions: Vec<Direction>,
    /// The classifier's architecture.
    pub config: TextClassifierConfig,
    /// The vocabulary file, relative to the folder.
    pub vocab: String,
}

/// Saves one direction's classifier into `dir`: its weights (`classifier_<dir>.bpk`, burnpack via
/// `ulmfit::weights::save_module`), the vocabulary (`vocab.json`, `Vocab::save`) and
/// `model.json` (labels, preset, directions, architecture). A second call with the other
/// direction adds it to the same folder. Every file is written atomically.
pub fn save_outputs(
    dir: &Path,
    model: &TextClassifier,
    config: &TextClassifierConfig,
    vocab: &Vocab,
    labels: &[String],
    direction: Direction,
    preset: &str,
) -> Result<(), Error> {
    std::fs::create_dir_all(dir)?;
    ulmfit::weights::save_module(model.clone(), &dir.join(weights_file(direction)))?;
    vocab.save(dir.join(VOCAB_FILE))?;
    let info_path = dir.join(MODEL_FILE);
    let mut directions = match std::fs::read(&info_path) {
        Ok(bytes) => serde_json::from_slice::<ModelInfo>(&bytes)
            .map(|i| i.directions)
            .unwrap_or_default(),
        Err(_) => vec![],
    };
    if !directions.contains(&direction) {
        directions.push(direction);
    }
    let info = ModelInfo {
        labels: labels.to_vec(),
        preset: preset.to_string(),
        directions,
        config: config.clone(),
        vocab: VOCAB_FILE.to_string(),
    };
    let json = serde_json::to_vec_pretty(&info)?;
    ulmfit::atomic::write_atomic(&info_path, &json)
        .map_err(|(p, e)| format!("cannot write {}: {e}", p.display()))?;
    Ok(())
}

/// What [`load_outputs`] reads back.
pub struct Loaded {
    /// `model.json`.
    pub info: ModelInfo,
    /// The vocabulary.
    pub vocab: Vocab,
    /// Each saved direction's classifier.
    pub models: Vec<(Direction, TextClassifier)>,
}

/// Loads what [`save_outputs`] wrote: the description, the vocabulary and each direction's
/// classifier (on `device`).
pub fn load_outputs(dir: &Path, device: &Device) -> Result<Loaded, Error> {
    let info: ModelInfo = serde_json::from_slice(&std::fs::read(dir.join(MODEL_FILE))?)?;
    let vocab = Vocab::load(dir.join(&info.vocab))?;
    let mut models = vec![];
    for &d in &info.directions {
        let m = ulmfit::weights::load_module(info.config.init(device), &dir.join(weights_file(d)))?;
        models.push((d, m));
    }
    Ok(Loaded {
        info,
        vocab,
        models,
    })
}
