//! Every benchmark example end to end on a tiny slice of its real data (`--smoke`: a few
//! batches, a tiny model), through the same `run_*` functions the examples' `main`s call. Checks
//! the JSON result line and that the saved model (`--out`) is the trained one.

#[path = "../examples/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use clap::Parser;
use common::datasets::{Bench, load};
use common::outputs::load_outputs;
use common::pipeline::{Summary, shrink};
use common::{CommonArgs, FastaiArgs, ImdbArgs, Recipe};
use ulmfit::predict::Predictor;

#[derive(Parser)]
struct Cli<T: clap::Args> {
    #[command(flatten)]
    args: T,
}

fn parse<T: clap::Args>(flags: &[&str]) -> T {
    Cli::<T>::try_parse_from(std::iter::once("example").chain(flags.iter().copied()))
        .unwrap_or_else(|e| panic!("flags {flags:?}: {e}"))
        .args
}

fn data(name: &str) -> String {
    let p = ulmfit::paths::data_dir().join(name);
    assert!(
        p.exists(),
        "dataset {} not found: it comes with the project's shared/ folder (set ULMFIT_DATA)",
        p.display()
    );
    p.display().to_string()
}

/// A uniquely named folder under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let p = std::env::temp_dir().join(format!(
            "ulmfit-examples-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn arg(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The JSON line holds the fields the issue asks for, with consistent values.
fn check_line(summary: &impl serde::Serialize, dataset: &str) -> serde_json::Value {
    let line = serde_json::to_string(summary).expect("serialize");
    assert!(!line.contains('\n'), "one line");
    let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
    assert_eq!(v["dataset"], dataset, "{line}");
    assert_eq!(v["preset"], "smoke", "{line}");
    let acc = v["accuracy"].as_f64().expect("accuracy");
    let err = v["error"].as_f64().expect("error");
    assert!((0.0..=1.0).contains(&acc), "{line}");
    assert!((acc + err - 1.0).abs() < 1e-9, "{line}");
    let secs = v["train_seconds"].as_f64().expect("train_seconds");
    assert!(secs > 0.0 && secs < 120.0, "{line}");
    v
}

fn check_classification(s: &Summary, dataset: &str, n_classes: usize) -> serde_json::Value {
    let v = check_line(s, dataset);
    assert_eq!(s.n_classes, n_classes);
    assert!(s.n_train > 0 && s.n_test > 0);
    for d in &s.directions {
        assert!((0.0..=1.0).contains(&d.scores.accuracy));
    }
    v
}

/// Reloads the saved bundles, classifies the smoke test set's raw texts again with
/// `Predictor` (each direction, then the ensemble) and checks that this reproduces the reported
/// accuracies exactly (so the bundles hold the trained models, tokenizer and vocabulary).
fn check_saved(bench: Bench, args: &CommonArgs, s: &Summary, out: &Path) {
    let device = ulmfit::device::parse("cpu").expect("device");
    let loaded = load_outputs(out, &device).expect("load the saved bundles");
    assert_eq!(loaded.info.preset, "smoke");
    assert_eq!(loaded.bundles.len(), s.directions.len());
    let mut task = load(bench, args.data.as_deref(), false).expect("data");
    shrink(&mut task.data, Recipe::new(args).max_docs);
    let texts: Vec<&str> = task.data.test.iter().map(|e| e.text.as_str()).collect();
    let labels: Vec<usize> = task.data.test.iter().map(|e| e.label).collect();
    let accuracy = |predictor: &Predictor| {
        let preds = predictor.predict_batch(&texts).expect("predict");
        let right = preds
            .iter()
            .zip(&labels)
            .filter(|(p, t)| p.label_index == **t)
            .count();
        right as f64 / labels.len() as f64
    };
    for ((dir, bundle), result) in loaded.bundles.iter().zip(&s.directions) {
        assert_eq!(*dir, result.direction);
        assert_eq!(bundle.vocab.len(), s.vocab);
        assert_eq!(bundle.manifest.labels.len(), s.n_classes);
        let one = Predictor::new(bundle.clone());
        assert_eq!(accuracy(&one), result.scores.accuracy, "{dir:?}");
    }
    if loaded.bundles.len() == 2 {
        let both = loaded.predictor().expect("ensemble");
        assert_eq!(Some(accuracy(&both)), s.ensemble_accuracy);
    }
}

#[test]
fn trec6_ensemble_saves_both_directions() {
    let out = TempDir::new("trec6");
    let args: CommonArgs = parse(&[
        "--smoke",
        "--ensemble",
        "--data",
        &data("trec"),
        "--out",
        &out.arg(),
    ]);
    let s = common::run_bench(Bench::Trec6, &args).expect("trec6 --smoke");
    let v = check_classification(&s, "trec6", 6);
    assert_eq!(v["model"], "ensemble");
    assert_eq!(v["recipe"], "from_scratch");
    assert!(v["ensemble_accuracy"].is_f64());
    assert_eq!(s.directions.len(), 2);
    check_saved(Bench::Trec6, &args, &s, out.path());
}

#[test]
fn ag_news_trains_on_the_test_split_and_says_so() {
    // With a language model trained from random weights on the task's text first.
    let args: CommonArgs = parse(&[
        "--smoke",
        "--lm-epochs",
        "1",
        "--data",
        &data("ag_news_csv-sample.tgz"),
    ]);
    let s = common::run_bench(Bench::AgNews, &args).expect("ag_news --smoke");
    let v = check_classification(&s, "ag_news", 4);
    assert_eq!(v["recipe"], "ulmfit");
    assert!(s.directions[0].lm_perplexity.is_some_and(f64::is_finite));
    assert_eq!(s.n_lm_docs, s.n_train);
    assert!(
        s.note.contains("6000 rows of the official test.csv"),
        "{}",
        s.note
    );
}

#[test]
fn dbpedia_yelp_samples_use_their_heads() {
    for (bench, name, file, classes) in [
        (Bench::Dbpedia, "dbpedia", "dbpedia_csv-sample.tgz", 14),
        (
            Bench::YelpPolarity,
            "yelp_polarity",
            "yelp_review_polarity_csv-sample.tgz",
            2,
        ),
        (
            Bench::YelpFull,
            "yelp_full",
            "yelp_review_full_csv-sample.tgz",
            5,
        ),
    ] {
        let out = TempDir::new(name);
        let args: CommonArgs = parse(&[
            "--smoke",
            "--backwards",
            "--data",
            &data(file),
            "--out",
            &out.arg(),
        ]);
        let s = common::run_bench(bench, &args).expect("smoke run");
        let v = check_classification(&s, name, classes);
        assert_eq!(v["model"], "bwd");
        assert!(s.note.contains("sample"), "{}", s.note);
        check_saved(bench, &args, &s, out.path());
    }
}

#[test]
fn fastai_pretrained_fine_tunes_the_wt103_like_fixture() {
    let out = TempDir::new("fastai");
    let fixtures = ulmfit::paths::fixtures_dir();
    let args: FastaiArgs = parse(&[
        "--smoke",
        "--dataset",
        "trec6",
        "--pretrained",
        &fixtures.display().to_string(),
        "--data",
        &data("trec"),
        "--out",
        &out.arg(),
    ]);
    let s = common::run_fastai(&args).expect("fastai_pretrained --smoke");
    let v = check_classification(&s, "trec6", 6);
    assert_eq!(v["recipe"], "ulmfit");
    // The fixture's sizes (emb 16, hidden 24, 3 layers), not the smoke preset's.
    let loaded = load_outputs(out.path(), &ulmfit::device::ndarray()).expect("outputs");
    let enc = &loaded.bundles[0].1.manifest.model.encoder;
    assert_eq!((enc.emb_size, enc.hidden_size, enc.n_layers), (16, 24, 3));
    assert!(s.directions[0].lm_perplexity.is_some_and(f64::is_finite));
    check_saved(Bench::Trec6, &args.common, &s, out.path());

    let missing: FastaiArgs = parse(&["--smoke", "--data", &data("trec")]);
    let err = common::run_fastai(&missing).expect_err("--pretrained is required");
    assert!(err.to_string().contains("--pretrained"), "{err}");
}

#[test]
fn pretrain_wikitext_then_imdb_transfer() {
    let lm = TempDir::new("wt2");
    let p: common::wikitext::PretrainArgs = parse(&[
        "--smoke",
        "--data",
        &data("wikitext-2-sample"),
        "--out",
        &lm.arg(),
    ]);
    let s = common::wikitext::run_pretrain(&p).expect("pretrain_wikitext --smoke");
    let v = check_line(&s, "wikitext-2");
    assert!(
        v["perplexity"]
            .as_f64()
            .is_some_and(|x| x.is_finite() && x > 1.0)
    );
    assert!(s.note.contains("wiki.valid.tokens"), "{}", s.note);
    for f in [
        "lm_fwd.bpk",
        "encoder_fwd.bpk",
        "lm_config.json",
        "vocab.json",
    ] {
        assert!(lm.path().join(f).is_file(), "{f} saved");
    }
    let imdb: ImdbArgs = parse(&[
        "--smoke",
        "--data",
        &data("imdb.tgz"),
        "--pretrained",
        &lm.arg(),
        "--train-size",
        "16",
        "--test-size",
        "8",
        "--lm-slice",
        "8",
    ]);
    let s = common::run_imdb(&imdb).expect("imdb --smoke --pretrained");
    let v = check_classification(&s, "imdb", 2);
    assert_eq!(v["recipe"], "ulmfit");
    assert_eq!((s.n_train, s.n_test), (16, 8));
    assert!(s.note.contains("8 unlabelled reviews"), "{}", s.note);
    // Labelled training reviews + unlabelled ones.
    assert_eq!(s.n_lm_docs, 24);
}
