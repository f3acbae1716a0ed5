//! Bad input of every kind through the public API: each case gives a clear error or a defined
//! result, never a panic (a panic fails the test), and never runs anything from a file.

use std::path::{Path, PathBuf};

use sha2::Digest;
use ulmfit::bundle::{Bundle, BundleError, Direction, MANIFEST_FILE, MODEL_FILE, VOCAB_FILE};
use ulmfit::fastai::{FastaiError, read_itos, read_pth};
use ulmfit::nn::{AwdLstmConfig, TextClassifierConfig};
use ulmfit::predict::{PredictError, Predictor, PredictorConfig};
use ulmfit::text::{TokenizerConfig, Vocab};

fn device() -> burn::tensor::Device {
    ulmfit::device::parse("ndarray").unwrap()
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ulmfit-robust-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn tiny_bundle(seed: u64) -> Bundle {
    let device = device();
    device.seed(seed);
    let words = ["xxunk", "xxpad", "xxbos", "xxmaj", "a", "b", "c", "."];
    let vocab = Vocab::new(words.map(String::from).to_vec());
    let config = TextClassifierConfig::new(
        AwdLstmConfig::classifier(vocab.len())
            .with_emb_size(4)
            .with_hidden_size(6)
            .with_n_layers(2),
        2,
    );
    Bundle::from_classifier(
        &config.init(&device),
        &config,
        vocab,
        vec!["no".into(), "yes".into()],
        TokenizerConfig::default(),
        Direction::Forward,
    )
    .unwrap()
}

fn saved(name: &str, seed: u64) -> PathBuf {
    let dir = temp(name);
    tiny_bundle(seed).save(&dir).unwrap();
    dir
}

/// Replaces a bundle file and records its checksum, so the content itself reaches the parser.
fn replace_file(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
    let path = dir.join(MANIFEST_FILE);
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let sha: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    m["files"][name] = serde_json::json!({"bytes": bytes.len(), "sha256": sha});
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
}

#[test]
fn bundle_weight_files_truncated_empty_or_corrupt() {
    let dir = saved("weights", 1);
    let good = std::fs::read(dir.join(MODEL_FILE)).unwrap();
    // Without a checksum update: refused as modified.
    std::fs::write(dir.join(MODEL_FILE), &good[..good.len() / 2]).unwrap();
    assert!(matches!(
        Bundle::load(&dir, &device()),
        Err(BundleError::Checksum { .. })
    ));
    // With it, the weight parser itself must refuse every cut and every corrupted byte.
    let len = good.len();
    let mut cuts: Vec<usize> = (0..64).collect();
    cuts.extend((64..len).step_by(97));
    for cut in cuts {
        replace_file(&dir, MODEL_FILE, &good[..cut]);
        let r = Bundle::load(&dir, &device());
        assert!(r.is_err(), "weights cut at {cut} of {len} loaded");
    }
    let mut positions: Vec<usize> = (0..128.min(len)).collect();
    positions.extend((128..len).step_by(61));
    for at in positions {
        for flip in [0xff_u8, 0x80] {
            let mut bad = good.clone();
            bad[at] ^= flip;
            replace_file(&dir, MODEL_FILE, &bad);
            // Either refused, or (a flipped weight value) a bundle whose predictions are
            // defined; never a panic.
            if let Ok(b) = Bundle::load(&dir, &device()) {
                match Predictor::new(b).predict("a b c") {
                    Ok(p) => assert!(p.probabilities.iter().all(|x| x.is_finite())),
                    Err(e) => assert!(matches!(e, PredictError::NonFinite { .. }), "{e}"),
                }
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bundle_with_a_missing_file_or_a_hostile_manifest() {
    for file in [MANIFEST_FILE, MODEL_FILE, VOCAB_FILE] {
        let dir = saved(&format!("missing-{file}"), 2);
        std::fs::remove_file(dir.join(file)).unwrap();
        let e = Bundle::load(&dir, &device()).unwrap_err();
        assert!(matches!(e, BundleError::MissingFile { .. }), "{file}: {e}");
        assert!(e.to_string().contains(file), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let dir = saved("manifest", 3);
    let deep = "[".repeat(100_000);
    let huge_len = format!(
        "{{\"format\":\"ulmfit-classifier-bundle\",\"format_version\":1,\"labels\":[\"{}\"]}}",
        "x".repeat(17 << 20)
    );
    for bad in [
        b"".to_vec(),
        b"null".to_vec(),
        b"\xff\xfe".to_vec(),
        deep.into_bytes(),
        huge_len.into_bytes(),
        br#"{"format":"ulmfit-classifier-bundle","format_version":1}"#.to_vec(),
        br#"{"format":"something else","format_version":1}"#.to_vec(),
    ] {
        std::fs::write(dir.join(MANIFEST_FILE), &bad).unwrap();
        let e = Bundle::load(&dir, &device()).unwrap_err();
        assert!(matches!(e, BundleError::Manifest { .. }), "{e}");
    }
    // A vocabulary that is not a list of strings, with a valid checksum.
    let dir2 = saved("vocab", 4);
    for bad in [&b"{}"[..], b"[1, 2]", b"\xff"] {
        replace_file(&dir2, VOCAB_FILE, bad);
        assert!(Bundle::load(&dir2, &device()).is_err());
    }
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}

#[test]
fn nan_in_weights_is_refused_or_reported() {
    let mut b = tiny_bundle(5);
    let w = b.model.encoder.embedding.val();
    let mut v: Vec<f32> = w.to_data().try_into_vec_as::<f32>().unwrap();
    v[9] = f32::NAN;
    b.model.encoder.embedding = burn::module::Param::from_tensor(burn::tensor::Tensor::from_data(
        burn::tensor::TensorData::new(v, w.dims()),
        &w.device(),
    ));
    // In memory (never saved): the predictor reports it instead of returning a label.
    // Token "a" has id 4, row 4 holds index 9 (emb 4): its documents hit the NaN.
    let p = Predictor::new(b.clone());
    assert!(matches!(
        p.predict("a"),
        Err(PredictError::NonFinite { index: 0 })
    ));
    let dir = temp("nan");
    b.save(&dir).unwrap();
    assert!(matches!(
        Bundle::load(&dir, &device()),
        Err(BundleError::NonFinite { count: 1, .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn empty_whitespace_and_huge_texts() {
    let p = Predictor::new(tiny_bundle(6));
    let sum = |probs: &[f32]| probs.iter().sum::<f32>();
    let empty = p.predict("").unwrap();
    assert_eq!(p.predict(" \t\n\r  ").unwrap(), empty);
    assert!((sum(&empty.probabilities) - 1.0).abs() < 1e-5);
    // 10 MB in one text, capped for a service: a defined result in bounded time.
    let big = "a b c. ".repeat((10 << 20) / 7);
    assert!(big.len() >= 10_000_000);
    let capped = p
        .clone()
        .with_config(PredictorConfig {
            batch_size: 8,
            max_tokens: Some(2_000),
        })
        .unwrap();
    let r = capped.predict(&big).unwrap();
    let head: String = big.chars().take(20_000).collect();
    let want = capped.predict(&head).unwrap();
    assert_eq!(r, want, "the first 2,000 tokens decide");
    // Texts that are only special tokens or control characters.
    for t in [
        "xxpad",
        "xxbos xxpad xxeos",
        "\u{0}\u{1}\u{7f}",
        "\u{feff}",
        "🙂🙃",
    ] {
        let r = p.predict(t).unwrap();
        assert!((sum(&r.probabilities) - 1.0).abs() < 1e-5, "{t:?}");
    }
}

fn tmp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = temp(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn pickles_that_build_unexpected_objects_or_claim_huge_sizes() {
    let marker = temp("pwned");
    let cmd = format!("touch {}", marker.display());
    // GLOBAL os.system + REDUCE: a classic code-execution pickle.
    let mut evil = b"\x80\x02cos\nsystem\nq\x00X".to_vec();
    evil.extend_from_slice(&(cmd.len() as u32).to_le_bytes());
    evil.extend_from_slice(cmd.as_bytes());
    evil.extend_from_slice(b"q\x01\x85q\x02Rq\x03.");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("evil", evil),
        // builtins.eval through STACK_GLOBAL (protocol 4).
        (
            "stack-global",
            b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x041+1\x85R.".to_vec(),
        ),
        // A string that claims 2 GiB, a list claiming to be huge via many MARKs, a bytes
        // object claiming 2^63.
        (
            "huge-unicode",
            b"\x80\x02]q\x00X\xff\xff\xff\x7fabc".to_vec(),
        ),
        (
            "huge-bytes",
            b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7fabc".to_vec(),
        ),
        ("huge-binput", b"\x80\x02]r\xff\xff\xff\x7f.".to_vec()),
        (
            "marks",
            [b"\x80\x02".to_vec(), b"(".repeat(100_000)].concat(),
        ),
        ("empty", vec![]),
        ("not-a-list", b"\x80\x02}q\x00.".to_vec()),
        ("list-of-ints", b"\x80\x02]q\x00(K\x01K\x02e.".to_vec()),
        ("truncated", b"\x80\x02]q\x00(X\x05\x00\x00\x00xxu".to_vec()),
    ];
    for (name, bytes) in &cases {
        let path = tmp_file(&format!("{name}.pkl"), bytes);
        let r = read_itos(&path);
        assert!(r.is_err(), "{name}: read as a vocabulary");
        assert!(
            !matches!(r, Err(FastaiError::ReaderPanicked { .. })),
            "{name}: the reader panicked"
        );
        let r = read_pth(&path);
        assert!(r.is_err(), "{name}: read as weights");
        std::fs::remove_file(&path).unwrap();
    }
    assert!(!marker.exists(), "a pickle ran a command");
}
