//! AG News topic classification (4 classes).
//!
//! ```text
//! cargo run --release --features flex --example ag_news -- --data ../shared/data/ag_news_csv-sample.tgz
//! ```
//!
//! With the full data (120,000 training / 7,600 test articles) this is the paper's benchmark
//! (Howard & Ruder 2018, Table 2: 5.01 % error, WT103-pretrained forward + backward ensemble:
//! `--preset paper --pretrained WT103_DIR --ensemble`). The copy available here has only the
//! first 581 rows of `train.csv` but the complete `test.csv`: the example then trains on 6,000
//! rows of `test.csv` and evaluates on the other 1,600, and says so in its result line.

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::datasets::Bench;

/// AG News topic classification with ULMFiT.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    common: common::CommonArgs,
}

fn main() -> ExitCode {
    common::finish(common::run_bench(Bench::AgNews, &Args::parse().common))
}
