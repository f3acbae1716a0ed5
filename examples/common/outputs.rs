//! `--out DIR`: the trained classifier(s) as model bundles ([`ulmfit::bundle::Bundle`]).
//!
//! `DIR/fwd` and `DIR/bwd` are one bundle each (a forward + backward ensemble saves both); each
//! loads with `Bundle::load` and serves `ulmfit predict --model DIR/fwd`. `DIR/example.json`
//! records the preset and the saved directions. A language model pretrained by
//! `pretrain_wikitext` is saved by `wikitext.rs` with the vocabulary file named here.

use std::path::Path;

use burn::tensor::Device;
use ulmfit::bundle::{self, Bundle};
use ulmfit::nn::{TextClassifier, TextClassifierConfig};
use ulmfit::predict::Predictor;
use ulmfit::text::{TokenizerConfig, Vocab};

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

    /// The bundle's name for it.
    pub fn bundle(self) -> bundle::Direction {
        match self {
            Direction::Fwd => bundle::Direction::Forward,
            Direction::Bwd => bundle::Direction::Backward,
        }
    }
}

/// The vocabulary file of a pretrained language model's folder.
pub const VOCAB_FILE: &str = "vocab.json";
/// What the example records beside the bundles.
pub const EXAMPLE_FILE: &str = "example.json";

/// `example.json`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ExampleInfo {
    /// The preset the models were trained with (`small`, `paper`, `smoke`).
    pub preset: String,
    /// The saved directions (an ensemble has both; average their probabilities).
    pub directions: Vec<Direction>,
}

/// Saves one direction's classifier as the bundle `dir/<fwd|bwd>` (tokenizer: fastai's default
/// rules, which every example uses) and adds the direction to `dir/example.json`. Both are
/// written atomically.
#[allow(clippy::too_many_arguments)]
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
    Bundle::from_classifier(
        model,
        config,
        vocab.clone(),
        labels.to_vec(),
        TokenizerConfig::default(),
        direction.bundle(),
    )?
    .save(dir.join(direction.name()))?;
    let info_path = dir.join(EXAMPLE_FILE);
    let mut directions = match std::fs::read(&info_path) {
        Ok(bytes) => serde_json::from_slice::<ExampleInfo>(&bytes)
            .map(|i| i.directions)
            .unwrap_or_default(),
        Err(_) => vec![],
    };
    if !directions.contains(&direction) {
        directions.push(direction);
    }
    let info = ExampleInfo {
        preset: preset.to_string(),
        directions,
    };
    ulmfit::atomic::write_atomic(&info_path, &serde_json::to_vec_pretty(&info)?)
        .map_err(|(p, e)| format!("cannot write {}: {e}", p.display()))?;
    Ok(())
}

/// What [`load_outputs`] reads back.
pub struct Loaded {
    /// `example.json`.
    pub info: ExampleInfo,
    /// Each saved direction's bundle.
    pub bundles: Vec<(Direction, Bundle)>,
}

impl Loaded {
    /// A predictor over every saved direction (the ensemble when both are there).
    pub fn predictor(&self) -> Result<Predictor, Error> {
        let find = |d| self.bundles.iter().find(|(x, _)| *x == d).map(|(_, b)| b);
        Ok(match (find(Direction::Fwd), find(Direction::Bwd)) {
            (Some(f), Some(b)) => Predictor::ensemble(f.clone(), b.clone())?,
            (Some(one), None) | (None, Some(one)) => Predictor::new(one.clone()),
            (None, None) => return Err("no bundle saved".into()),
        })
    }
}

/// Loads what [`save_outputs`] wrote (each bundle checked by `Bundle::load_expecting` for its
/// direction), on `device`.
pub fn load_outputs(dir: &Path, device: &Device) -> Result<Loaded, Error> {
    let info: ExampleInfo = serde_json::from_slice(&std::fs::read(dir.join(EXAMPLE_FILE))?)?;
    let mut bundles = vec![];
    for &d in &info.directions {
        let b = Bundle::load_expecting(dir.join(d.name()), device, d.bundle(), "bundle")?;
        bundles.push((d, b));
    }
    Ok(Loaded { info, bundles })
}
