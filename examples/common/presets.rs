//! The presets: model sizes and the training recipe.

use super::CommonArgs;

/// Model sizes and recipe.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// fastai's recipe with emb 200, hidden 600, 3 layers.
    Small,
    /// The paper's / fastai's AWD-LSTM (emb 400, hidden 1152, 3 layers) and recipe.
    Paper,
}

impl Preset {
    /// The preset's name in the result line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Small => "small",
            Preset::Paper => "paper",
        }
    }
}

/// Everything a run's training depends on, after the flags are applied.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Recipe {
    /// Embedding size (paper and fastai: 400).
    pub emb: usize,
    /// Hidden size of every LSTM layer but the last (fastai: 1152; the paper: 1150).
    pub hidden: usize,
    /// LSTM layers (paper and fastai: 3).
    pub layers: usize,
    /// Classifier batch size (fastai: 64; the paper: 64).
    pub bs: usize,
    /// Language-model batch size (fastai: 64; the paper: 64).
    pub lm_bs: usize,
    /// Language-model dropout multiplier (fastai v1 course, IMDb: 0.3).
    pub lm_drop_mult: f64,
    /// Classifier dropout multiplier (fastai `text_classifier_learner`: 0.5).
    pub clas_drop_mult: f64,
    /// LM fine-tuning, embedding/decoder only: one one-cycle epoch at this rate (fastai: 1e-2).
    pub lm_head_lr: f64,
    /// LM fine-tuning, every layer: peak rate (fastai v2 tutorial: 1e-3).
    pub lm_lr: f64,
    /// LM fine-tuning epochs with every layer trainable (fastai v2 tutorial: 10).
    pub lm_epochs: usize,
    /// Peak rate of an LM trained from random weights (fastai's WT103 script: 1e-2).
    pub lm_scratch_lr: f64,
    /// Gradual unfreezing: rate of the head-only stage (fastai tutorial: 2e-2; the later stages
    /// use lr/2, lr/4, lr/20 with lr/2.6^4 at the lowest group).
    pub clas_lr: f64,
    /// Gradual unfreezing: epochs of the fully unfrozen stage (fastai tutorial: 2).
    pub clas_epochs: usize,
    /// From scratch: one-cycle peak rate (measured with fastai 2.8.12 on TREC-6: 1e-2).
    pub scratch_lr: f64,
    /// From scratch: one-cycle epochs (TREC-6 with fastai 2.8.12: 8).
    pub scratch_epochs: usize,
    /// Smoke run: at most this many training / test / unlabelled documents (0: all).
    pub max_docs: usize,
    /// Fastai's vocabulary rule: tokens seen at least this often (fastai: 3).
    pub min_freq: u64,
    /// Fastai's vocabulary rule: at most this many tokens (fastai: 60,000).
    pub max_vocab: usize,
}

impl Recipe {
    /// The recipe of `preset` (spec §4.9, fastai v2's IMDb tutorial), overridden by the flags;
    /// `--smoke` shrinks the model to emb 16, hidden 32, 2 layers, one epoch per stage and a
    /// few batches of data.
    pub fn new(args: &CommonArgs) -> Self {
        let (emb, hidden) = match args.preset {
            Preset::Small => (200, 600),
            Preset::Paper => (400, 1152),
        };
        let mut r = Recipe {
            emb,
            hidden,
            layers: 3,
            bs: 64,
            lm_bs: 64,
            lm_drop_mult: 0.3,
            clas_drop_mult: 0.5,
            lm_head_lr: 1e-2,
            lm_lr: 1e-3,
            lm_epochs: match args.preset {
                // Fewer epochs than fastai's 10 so a CPU run stays in hours, not days.
                Preset::Small => 4,
                Preset::Paper => 10,
            },
            lm_scratch_lr: 1e-2,
            clas_lr: 2e-2,
            clas_epochs: 2,
            scratch_lr: 1e-2,
            scratch_epochs: 8,
            max_docs: 0,
            min_freq: 3,
            max_vocab: 60_000,
        };
        if args.smoke {
            r.emb = 16;
            r.hidden = 32;
            r.layers = 2;
            r.bs = 16;
            r.lm_bs = 16;
            r.lm_epochs = 1;
            r.clas_epochs = 1;
            r.scratch_epochs = 1;
            r.max_docs = 48;
        }
        if args.pretrained.is_none() {
            r.lm_epochs = 0;
        }
        if let Some(e) = args.lm_epochs {
            r.lm_epochs = e;
        }
        if args.from_scratch {
            r.lm_epochs = 0;
        }
        if let Some(e) = args.epochs {
            r.clas_epochs = e;
            r.scratch_epochs = e;
        }
        if let Some(lr) = args.lr {
            r.clas_lr = lr;
            r.scratch_lr = lr;
        }
        if let Some(lr) = args.lm_lr {
            r.lm_lr = lr;
            r.lm_scratch_lr = lr;
        }
        if let Some(bs) = args.bs {
            r.bs = bs;
            r.lm_bs = bs;
        }
        if let Some(bs) = args.lm_bs {
            r.lm_bs = bs;
        }
        r
    }

    /// Whether a language model is trained or fine-tuned before the classifier.
    pub fn has_lm_stage(&self, args: &CommonArgs) -> bool {
        !args.from_scratch && (args.pretrained.is_some() || self.lm_epochs > 0)
    }
}
