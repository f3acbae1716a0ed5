//! IMDb sentiment (2 classes, 25,000 training / 25,000 test reviews, 50,000 unlabelled).
//!
//! ```text
//! # The paper's recipe (Howard & Ruder 2018, Table 2: 4.6 % error): fastai's WT103 models,
//! # fine-tuned on the IMDb text, classifiers with gradual unfreezing, forward + backward.
//! cargo run --release --features flex --example imdb -- --preset paper --pretrained WT103_DIR --ensemble
//!
//! # Transfer on a CPU: a WikiText-2-pretrained small LM (`pretrain_wikitext --out wt2`),
//! # fine-tuned on 1,000 labelled + 10,000 unlabelled reviews, classifier on the 1,000 ...
//! cargo run --release --features flex --example imdb -- --pretrained wt2 --train-size 1000 --lm-slice 10000
//! # ... against the same classifier from scratch on the same 1,000 reviews.
//! cargo run --release --features flex --example imdb -- --from-scratch --train-size 1000
//! ```
//!
//! Both evaluate on the 25,000 test reviews (`--test-size` takes a balanced subset).

mod common;

use std::process::ExitCode;

use clap::Parser;

/// IMDb sentiment classification with ULMFiT.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    imdb: common::ImdbArgs,
}

fn main() -> ExitCode {
    common::finish(common::run_imdb(&Args::parse().imdb))
}
