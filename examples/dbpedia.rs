//! DBpedia ontology classification (14 classes).
//!
//! ```text
//! cargo run --release --features flex --example dbpedia -- --data ../shared/data/dbpedia_csv-sample.tgz
//! ```
//!
//! The paper (Howard & Ruder 2018, Table 2): 0.80 % error on the full data (560,000 training /
//! 70,000 test rows) with a WT103-pretrained forward + backward ensemble (`--preset paper
//! --pretrained WT103_DIR --ensemble`). The copy available here is a 14 / 5-row sample: a run on
//! it proves the reader and the 14-class head, nothing more (its result line says so).

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::datasets::Bench;

/// DBpedia ontology classification with ULMFiT.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    common: common::CommonArgs,
}

fn main() -> ExitCode {
    common::finish(common::run_bench(Bench::Dbpedia, &Args::parse().common))
}
