//! Yelp review stars (5 classes).
//!
//! ```text
//! cargo run --release --features flex --example yelp_full -- --data ../shared/data/yelp_review_full_csv-sample.tgz
//! ```
//!
//! The paper (Howard & Ruder 2018, Table 2): 29.98 % error on the full data (650,000 training /
//! 50,000 test reviews) with a WT103-pretrained forward + backward ensemble (`--preset paper
//! --pretrained WT103_DIR --ensemble`). The copy available here is a 6 / 6-row sample: a run on
//! it proves the reader and the 5-class head, nothing more (its result line says so).

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::datasets::Bench;

/// Yelp review stars (5 classes) with ULMFiT.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    common: common::CommonArgs,
}

fn main() -> ExitCode {
    common::finish(common::run_bench(Bench::YelpFull, &Args::parse().common))
}
