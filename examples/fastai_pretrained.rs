//! fastai's pretrained WikiText-103 language model, fine-tuned on a benchmark dataset: the
//! ULMFiT recipe end to end (stage 2: LM fine-tuning; stage 3: classifier with gradual
//! unfreezing).
//!
//! ```text
//! # WT103_DIR holds fastai's lstm_fwd.pth, lstm_bwd.pth and itos_wt103.pkl
//! # (https://s3.amazonaws.com/fast-ai-modelzoo/wt103-fwd.tgz and wt103-bwd.tgz).
//! cargo run --release --features flex --example fastai_pretrained -- \
//!     --pretrained WT103_DIR --dataset trec6 --preset paper --ensemble
//! ```
//!
//! The model's sizes come from the files (WT103: emb 400, hidden 1152, 3 layers).

mod common;

use std::process::ExitCode;

use clap::Parser;

/// Fine-tunes fastai's pretrained WT103 language model on a dataset.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    fastai: common::FastaiArgs,
}

fn main() -> ExitCode {
    common::finish(common::run_fastai(&Args::parse().fastai))
}
