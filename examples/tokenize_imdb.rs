//! Tokenizes the whole IMDb archive (100,000 reviews: train, test and unsup) with fastai's
//! default rules on every core, then builds fastai's vocabulary, and prints the timings.
//!
//! ```text
//! cargo run --release --example tokenize_imdb -- ../shared/data/imdb.tgz
//! ```

use std::process::ExitCode;
use std::time::Instant;

use ulmfit::data::datasets::read_imdb;
use ulmfit::text::{Tokenizer, Vocab};

fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ulmfit::paths::data_dir().join("imdb.tgz"));
    let start = Instant::now();
    let data = match read_imdb(&path, true) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let texts: Vec<&str> = data.all_texts().collect();
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    let read = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let tokens = Tokenizer::default().tokenize_all(&texts);
    let tokenize = start.elapsed().as_secs_f64();
    let n_tokens: usize = tokens.iter().map(Vec::len).sum();
    let start = Instant::now();
    let vocab = Vocab::from_docs(&tokens, 3, 60_000);
    let vocab_s = start.elapsed().as_secs_f64();
    println!(
        "{{\"reviews\": {}, \"mbytes\": {:.1}, \"tokens\": {n_tokens}, \"threads\": {}, \"read_seconds\": {read:.2}, \"tokenize_seconds\": {tokenize:.2}, \"vocab_seconds\": {vocab_s:.2}, \"vocab\": {}}}",
        texts.len(),
        bytes as f64 / 1e6,
        rayon::current_num_threads(),
        vocab.len()
    );
    ExitCode::SUCCESS
}
