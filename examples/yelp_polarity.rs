//! Yelp review polarity (2 classes).
//!
//! ```text
//! cargo run --release --features flex --example yelp_polarity -- --data ../shared/data/yelp_review_polarity_csv-sample.tgz
//! ```
//!
//! The paper (Howard & Ruder 2018, Table 2): 2.16 % error on the full data (560,000 training /
//! 38,000 test reviews) with a WT103-pretrained forward + backward ensemble (`--preset paper
//! --pretrained WT103_DIR --ensemble`). The copy available here is a 6 / 6-row sample: a run on
//! it proves the reader, nothing more (its result line says so).

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::datasets::Bench;

/// Yelp review polarity with ULMFiT.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    common: common::CommonArgs,
}

fn main() -> ExitCode {
    common::finish(common::run_bench(
        Bench::YelpPolarity,
        &Args::parse().common,
    ))
}
