//! TREC-6 question classification (6 classes, 5,452 training / 500 test questions): the
//! quickest real example. By default the classifier is trained from scratch (no pretraining);
//! `--pretrained DIR` adds the ULMFiT language-model stages.
//!
//! ```text
//! cargo run --release --example trec6 -- --data ../shared/data/trec
//! ```
//!
//! From scratch (`--preset small`): fastai's classifier with emb 200, hidden 600, 3 layers,
//! drop_mult 0.5, batch 64, one-cycle at lr 1e-2 for 8 epochs, as fastai 2.8.12 was measured
//! with on this machine (89 % test accuracy). The paper (Howard & Ruder 2018, Table 2): 3.6 %
//! error with WT103 pretraining and a forward + backward ensemble (`--preset paper --pretrained
//! WT103_DIR --ensemble`). Prints a metrics line per epoch and ends with one JSON line.

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::datasets::Bench;

/// TREC-6 question classification with ULMFiT's classifier.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    common: common::CommonArgs,
}

fn main() -> ExitCode {
    common::finish(common::run_bench(Bench::Trec6, &Args::parse().common))
}
