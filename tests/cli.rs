//! The `ulmfit` binary, run as a user would: exit statuses, JSON lines, standard input.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use ulmfit::bundle::{Bundle, Direction};
use ulmfit::nn::{AwdLstmConfig, TextClassifierConfig};
use ulmfit::predict::{Prediction, Predictor};
use ulmfit::text::{TokenizerConfig, Vocab};

const WORDS: [&str; 12] = [
    "xxunk", "xxpad", "xxbos", "xxmaj", "what", "is", "the", "capital", "of", "?", "who", ".",
];

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ulmfit-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A random 3-class bundle saved at a fresh temp path.
fn bundle(name: &str, direction: Direction, seed: u64) -> PathBuf {
    let device = ulmfit::device::parse("ndarray").unwrap();
    device.seed(seed);
    let vocab = Vocab::new(WORDS.map(String::from).to_vec());
    let config = TextClassifierConfig::new(
        AwdLstmConfig::classifier(vocab.len())
            .with_emb_size(4)
            .with_hidden_size(6)
            .with_n_layers(2),
        3,
    );
    let b = Bundle::from_classifier(
        &config.init(&device),
        &config,
        vocab,
        vec!["LOC".into(), "HUM".into(), "NUM".into()],
        TokenizerConfig::default(),
        direction,
    )
    .unwrap();
    let dir = temp(name);
    b.save(&dir).unwrap();
    dir
}

fn ulmfit(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ulmfit"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ulmfit");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| normalized(serde_json::from_str(l).expect("a JSON line")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A prediction as the JSON line carries it (probabilities read back as `f32`).
fn as_json(p: &Prediction) -> serde_json::Value {
    normalized(serde_json::to_value(p).unwrap())
}

/// A JSON line with its probabilities rounded to `f32`, for comparing with [`as_json`].
fn normalized(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(ps) = v["probabilities"].as_array_mut() {
        for p in ps {
            *p = serde_json::json!(p.as_f64().unwrap() as f32);
        }
    }
    v
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    assert_eq!(ulmfit(&[], b"").status.code(), Some(2));
    assert_eq!(
        ulmfit(&["predict"], b"").status.code(),
        Some(2),
        "--model is required"
    );
    assert_eq!(ulmfit(&["frobnicate"], b"").status.code(), Some(2));
    let help = ulmfit(&["--help"], b"");
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("convert-fastai"));
}

#[test]
fn predict_text_and_stdin_give_json_lines_in_input_order() {
    let dir = bundle("predict", Direction::Forward, 1);
    let model = dir.to_str().unwrap();
    let texts = [
        "What is the capital of Peru?",
        "",
        "Who?",
        "   ",
        "what is the",
    ];
    let predictor =
        Predictor::new(Bundle::load(&dir, &ulmfit::device::parse("cpu").unwrap()).unwrap());
    let want: Vec<_> = predictor
        .predict_batch(&texts)
        .unwrap()
        .iter()
        .map(as_json)
        .collect();

    let one = ulmfit(&["predict", "--model", model, texts[0]], b"");
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    assert_eq!(lines(&one), want[..1]);

    let input = texts.join("\r\n") + "\n";
    for args in [
        vec!["predict", "--model", model, "-"],
        vec!["predict", "--model", model, "--batch-size", "2"],
    ] {
        let out = ulmfit(&args, input.as_bytes());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(lines(&out), want);
    }
    // No input: no output, success.
    let out = ulmfit(&["predict", "--model", model], b"");
    assert_eq!((out.status.code(), out.stdout.len()), (Some(0), 0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn invalid_utf8_on_stdin_is_a_data_error_after_the_good_lines() {
    let dir = bundle("utf8", Direction::Forward, 2);
    let out = ulmfit(
        &["predict", "--model", dir.to_str().unwrap()],
        b"who is it?\nbad \xff\xfe byte\nnever read\n",
    );
    assert_eq!(out.status.code(), Some(65));
    assert_eq!(
        lines(&out).len(),
        1,
        "the line before the bad one is answered"
    );
    assert!(
        stderr(&out).contains("stdin line 2 is not valid UTF-8"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_models_exit_1_with_a_message() {
    let out = ulmfit(&["predict", "--model", "/nonexistent/model", "hi"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no model bundle at /nonexistent/model"),
        "{}",
        stderr(&out)
    );
    let fwd = bundle("ens-f", Direction::Forward, 3);
    let also_fwd = bundle("ens-f2", Direction::Forward, 4);
    let out = ulmfit(
        &[
            "predict",
            "--model",
            fwd.to_str().unwrap(),
            "--backward",
            also_fwd.to_str().unwrap(),
            "hi",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("expected a backward model"),
        "{}",
        stderr(&out)
    );
    let out = ulmfit(
        &[
            "predict",
            "--model",
            fwd.to_str().unwrap(),
            "--device",
            "tpu",
            "x",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unknown or disabled device"));
    std::fs::remove_dir_all(&fwd).unwrap();
    std::fs::remove_dir_all(&also_fwd).unwrap();
}

#[test]
fn ensemble_averages_forward_and_backward() {
    let fwd = bundle("avg-f", Direction::Forward, 5);
    let bwd = bundle("avg-b", Direction::Backward, 6);
    let device = ulmfit::device::parse("cpu").unwrap();
    let p = Predictor::ensemble(
        Bundle::load(&fwd, &device).unwrap(),
        Bundle::load(&bwd, &device).unwrap(),
    )
    .unwrap();
    let text = "Who is the capital?";
    let out = ulmfit(
        &[
            "predict",
            "--model",
            fwd.to_str().unwrap(),
            "--backward",
            bwd.to_str().unwrap(),
            text,
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(lines(&out), [as_json(&p.predict(text).unwrap())]);
    std::fs::remove_dir_all(&fwd).unwrap();
    std::fs::remove_dir_all(&bwd).unwrap();
}

#[test]
fn eval_reports_metrics_and_rejects_bad_lines() {
    let dir = bundle("eval", Direction::Forward, 7);
    let model = dir.to_str().unwrap();
    let data = "LOC\tWhat is the capital of Peru?\nHUM\tWho is it?\n2\twhat is the\n\nNUM\t?\n";
    let out = ulmfit(&["eval", "--model", model, "--data", "-"], data.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let m = &lines(&out)[0];
    let p = Predictor::new(Bundle::load(&dir, &ulmfit::device::parse("cpu").unwrap()).unwrap());
    let preds = p
        .predict_batch(&[
            "What is the capital of Peru?",
            "Who is it?",
            "what is the",
            "?",
        ])
        .unwrap();
    let correct = preds
        .iter()
        .zip([0, 1, 2, 2])
        .filter(|(p, t)| p.label_index == *t)
        .count();
    assert_eq!(m["n"], 4);
    assert_eq!(m["accuracy"].as_f64().unwrap(), correct as f64 / 4.0);
    let out = ulmfit(
        &["eval", "--model", model, "--data", "-"],
        b"LOC\tok\nFOO\tbad label\n",
    );
    assert_eq!(out.status.code(), Some(65));
    assert!(
        stderr(&out).contains("line 2: unknown label `FOO`"),
        "{}",
        stderr(&out)
    );
    let out = ulmfit(&["eval", "--model", model, "--data", "-"], b"no tab here\n");
    assert_eq!(out.status.code(), Some(65));
    let out = ulmfit(
        &["eval", "--model", model, "--data", "/nonexistent.tsv"],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    // Int8 recurrent weights, one text per pass (the int8 kernel): the library's predictions.
    let args = ["eval", "--model", model, "--data", "-", "--int8"];
    let out = ulmfit(
        &[&args[..], &["--batch-size", "1"]].concat(),
        data.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let p = p.with_int8_recurrent_weights();
    let texts = [
        "What is the capital of Peru?",
        "Who is it?",
        "what is the",
        "?",
    ];
    let correct = (texts.iter().zip([0, 1, 2, 2]))
        .filter(|(x, t)| p.predict(x).unwrap().label_index == *t)
        .count();
    assert_eq!(
        lines(&out)[0]["accuracy"].as_f64().unwrap(),
        correct as f64 / 4.0
    );
    let out = ulmfit(&[&args[..], &["--bf16"]].concat(), data.as_bytes());
    assert_eq!(out.status.code(), Some(2), "--bf16 and --int8 conflict");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn fixture(name: &str) -> PathBuf {
    let p = ulmfit::paths::fixtures_dir().join(name);
    assert!(
        p.exists(),
        "fastai fixture {} missing (set ULMFIT_FIXTURES)",
        p.display()
    );
    p
}

#[test]
fn converted_fastai_classifier_gives_fastais_logits() {
    let out_dir = temp("convert");
    let (pth, itos) = (fixture("clas.pth"), fixture("lm_itos.pkl"));
    let args = |labels: &str| {
        vec![
            "convert-fastai".to_string(),
            pth.to_str().unwrap().into(),
            itos.to_str().unwrap().into(),
            "--out".into(),
            out_dir.to_str().unwrap().into(),
            "--labels".into(),
            labels.into(),
            "--bptt".into(),
            "4".into(),
            "--max-len".into(),
            "8".into(),
        ]
    };
    let a = args("x,y");
    let out = ulmfit(&a.iter().map(String::as_str).collect::<Vec<_>>(), b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("3 classes"), "{}", stderr(&out));
    let a = args("x,y,z");
    let out = ulmfit(&a.iter().map(String::as_str).collect::<Vec<_>>(), b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The bundle's model reproduces fastai's logits of each document classified alone.
    let device = ulmfit::device::parse("ndarray").unwrap();
    let b = Bundle::load(&out_dir, &device).unwrap();
    assert_eq!(b.manifest.labels, ["x", "y", "z"]);
    let fx = ulmfit::parity::fixture::Fixture::read(&fixture("clas_eval.safetensors")).unwrap();
    let input = fx.get("input").unwrap();
    let ids = input.ints.clone();
    let x = burn::tensor::Tensor::<2, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(ids, [input.shape[0], input.shape[1]]),
        &device,
    );
    let got: Vec<f32> = b
        .model
        .forward(x)
        .logits
        .into_data()
        .try_into_vec_as()
        .unwrap();
    let want = &fx.get("logits_unbatched").unwrap().floats;
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{g} vs {w}");
    }
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn converted_fastai_language_model_gives_fastais_logits() {
    let out_dir = temp("convert-lm");
    let out = ulmfit(
        &[
            "convert-fastai",
            fixture("lm.pth").to_str().unwrap(),
            fixture("lm_itos.pkl").to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The pretrained folder's model reproduces fastai's next-token logits.
    let device = ulmfit::device::parse("ndarray").unwrap();
    assert!(ulmfit::pretrained::exists(&out_dir, false));
    let lm = ulmfit::pretrained::load(&out_dir, false, &device, |c| c).unwrap();
    let fx = ulmfit::parity::fixture::Fixture::read(&fixture("lm_eval.safetensors")).unwrap();
    let input = fx.get("input0").unwrap();
    let x = burn::tensor::Tensor::<2, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(input.ints.clone(), [input.shape[0], input.shape[1]]),
        &device,
    );
    let got: Vec<f32> = lm
        .model
        .forward(x, None)
        .logits
        .into_data()
        .try_into_vec_as()
        .unwrap();
    let want = &fx.get("logits0").unwrap().floats;
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{g} vs {w}");
    }
    std::fs::remove_dir_all(&out_dir).unwrap();
}

fn trec() -> PathBuf {
    let p = ulmfit::paths::data_dir().join("trec");
    assert!(
        p.exists(),
        "TREC data {} missing (set ULMFIT_DATA)",
        p.display()
    );
    p
}

/// `ulmfit train` on the smoke preset, twice with one seed: bit-identical weights and metrics
/// (separate processes, so nothing is shared), and the bundle serves `predict`.
#[test]
fn train_is_deterministic_on_cpu_and_its_bundle_predicts() {
    let data = trec();
    let run = |name: &str| {
        let out_dir = temp(name);
        let out = ulmfit(
            &[
                "train",
                "--dataset",
                "trec6",
                "--data",
                data.to_str().unwrap(),
                "--preset",
                "smoke",
                "--seed",
                "3",
                "--device",
                "ndarray",
                "--out",
                out_dir.to_str().unwrap(),
            ],
            b"",
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let mut line = lines(&out).pop().unwrap();
        for key in ["train_seconds", "out"] {
            line[key] = 0.into();
        }
        for epoch in line["history"].as_array_mut().unwrap() {
            epoch["seconds"] = 0.into();
        }
        (out_dir, line)
    };
    let (a, la) = run("train-a");
    let (b, lb) = run("train-b");
    assert_eq!(la, lb);
    assert_eq!(
        la["metrics"]["accuracy"]
            .as_f64()
            .map(|x| (0.0..=1.0).contains(&x)),
        Some(true)
    );
    // Same weights, bit for bit (the files themselves differ: burnpack stores per-process
    // parameter ids).
    let device = ulmfit::device::parse("ndarray").unwrap();
    let (ba, bb) = (
        Bundle::load(&a, &device).unwrap(),
        Bundle::load(&b, &device).unwrap(),
    );
    let weights = |b: &Bundle| {
        let mut sd = ulmfit::fastai::StateDict::new();
        ulmfit::weights::encoder_state_dict(&b.model.encoder, &mut sd);
        let mut v: Vec<Vec<f32>> = sd.iter().map(|(_, t)| t.data.clone()).collect();
        for block in &b.model.head.blocks {
            v.push(
                block
                    .linear
                    .weight
                    .val()
                    .into_data()
                    .try_into_vec_as::<f32>()
                    .unwrap(),
            );
            v.push(
                block
                    .bn
                    .running_var
                    .value()
                    .into_data()
                    .try_into_vec_as::<f32>()
                    .unwrap(),
            );
        }
        v
    };
    assert_eq!(weights(&ba), weights(&bb));
    let out = ulmfit(
        &[
            "predict",
            "--model",
            a.to_str().unwrap(),
            "How far is the moon?",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let label = lines(&out)[0]["label"].as_str().unwrap().to_string();
    assert!(
        ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"].contains(&label.as_str()),
        "{label}"
    );
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// `ulmfit train` reads every benchmark through the library's `read_benchmark`: here the
/// 14-class DBpedia sample archive (in mixed precision, `--bf16`: bf16 tiles where the CPU has
/// AMX), whose result line says it is a sample; and a dataset that is
/// not where `--data` points is a clear failure, not a download.
#[test]
fn train_reads_other_benchmarks_and_notes_samples() {
    let archive = ulmfit::paths::data_dir().join("dbpedia_csv-sample.tgz");
    assert!(archive.exists(), "{} missing", archive.display());
    let out_dir = temp("train-dbpedia");
    let out = ulmfit(
        &[
            "train",
            "--dataset",
            "dbpedia",
            "--data",
            archive.to_str().unwrap(),
            "--preset",
            "smoke",
            "--device",
            "ndarray",
            "--bf16",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = lines(&out).pop().unwrap();
    assert_eq!(line["dataset"], "dbpedia");
    assert!(line["note"].as_str().unwrap().contains("sample"), "{line}");
    let bundle = Bundle::load(&out_dir, &ulmfit::device::parse("ndarray").unwrap()).unwrap();
    assert_eq!(bundle.manifest.labels.len(), 14);
    std::fs::remove_dir_all(&out_dir).unwrap();

    let missing = temp("no-such-imdb");
    let out = ulmfit(
        &[
            "train",
            "--dataset",
            "imdb",
            "--data",
            missing.join("aclImdb").to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
        b"",
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("aclImdb"), "{}", stderr(&out));
}
