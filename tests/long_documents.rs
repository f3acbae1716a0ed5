//! The classifier learns from documents several BPT3C windows long: the label is one keyword at
//! a random position in a document of random filler tokens, so only pooling over every chunk (or
//! a state carried across chunks) can find it.
//!
//! Alone in its own test binary: burn's CPU backends draw dropout masks and initial weights from
//! one process-wide generator, which tests running in parallel would share.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ulmfit::nn::{AwdLstmConfig, TextClassifierConfig};
use ulmfit::train::learner::LearnerConfig;
use ulmfit::train::{ClassifierLearner, LabelledDocs, LrSpec};

/// `n` documents of `min_len..max_len` filler tokens (ids 4..vocab-2) with one keyword (the last
/// two ids, one per class) somewhere in each.
fn keyword_docs(n: usize, vocab: u32, min_len: usize, max_len: usize, seed: u64) -> LabelledDocs {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut docs, mut labels) = (vec![], vec![]);
    for i in 0..n {
        let label = i % 2;
        let len = rng.random_range(min_len..max_len);
        let mut doc: Vec<u32> = (0..len).map(|_| rng.random_range(4..vocab - 2)).collect();
        let at = rng.random_range(0..len);
        doc[at] = vocab - 2 + label as u32;
        docs.push(doc);
        labels.push(label);
    }
    LabelledDocs { docs, labels }
}

fn run(n_train: usize, min_len: usize, max_len: usize, bptt: usize, epochs: usize) -> f64 {
    let device = ulmfit::device::parse("cpu").expect("cpu").autodiff();
    device.seed(1);
    let vocab = 64;
    let model = TextClassifierConfig::new(
        AwdLstmConfig::classifier(vocab as usize)
            .with_emb_size(16)
            .with_hidden_size(32)
            .with_n_layers(2)
            .with_drop_mult(0.0),
        2,
    )
    .with_lin_ftrs(vec![16])
    .with_output_p(0.0)
    .with_ps(vec![0.0])
    .with_bptt(bptt)
    .with_max_len(20 * bptt)
    .init(&device);
    let config = LearnerConfig {
        bs: 16,
        progress: false,
        print_metrics: true,
        ..LearnerConfig::default()
    };
    let train = keyword_docs(n_train, vocab, min_len, max_len, 2);
    let valid = keyword_docs(64, vocab, min_len, max_len, 3);
    let mut learn = ClassifierLearner::new(model, train, valid, config).expect("learner");
    learn
        .fit_one_cycle(epochs, LrSpec::Float(1e-2))
        .expect("training");
    learn
        .validate()
        .expect("validate")
        .expect("metrics")
        .accuracy
}

/// Documents of 3 to 6 windows of 8 tokens.
#[test]
fn keyword_anywhere_in_a_multi_window_document() {
    let acc = run(256, 24, 48, 8, 6);
    assert!(acc >= 0.9, "accuracy {acc}");
}

/// The same at the examples' scale: windows of 72, documents of 150 to 400 tokens (IMDb's
/// typical length). `cargo test --release --features flex --test long_documents -- --ignored`.
#[test]
#[ignore = "a minute in release; the debug test above covers the code path"]
fn keyword_anywhere_in_an_imdb_length_document() {
    let acc = run(512, 150, 400, 72, 6);
    assert!(acc >= 0.9, "accuracy {acc}");
}
