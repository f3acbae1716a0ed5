//! Language-model pretraining on WikiText (ULMFiT stage 1), saving a model the classification
//! examples can start from (`--pretrained DIR`).
//!
//! ```text
//! cargo run --release --features flex --example pretrain_wikitext -- --epochs 4 --out wt2
//! cargo run --release --features flex --example imdb -- --pretrained wt2 --train-size 1000
//! ```
//!
//! fastai's WT103 recipe (its `examples/train_wt103.py`): articles split at the `= title =`
//! lines, `<unk>` as `xxunk`, one-cycle at 1e-2 with div 10, drop_mult 0.1, 12 epochs. The
//! WikiText-2 copy here lacks `wiki.train.tokens`, so the example trains on `wiki.valid.tokens`
//! (217,646 tokens) and evaluates on `wiki.test.tokens`, and says so in its result line.

mod common;

use std::process::ExitCode;

use clap::Parser;

/// Pretrains an AWD-LSTM language model on WikiText.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    pretrain: common::wikitext::PretrainArgs,
}

fn main() -> ExitCode {
    common::finish(common::wikitext::run_pretrain(&Args::parse().pretrain))
}
