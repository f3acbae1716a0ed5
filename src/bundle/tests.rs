use super::*;
use crate::nn::AwdLstmConfig;
use crate::test_util::{test_device, to_vec};
use burn::tensor::{Int, Tensor, TensorData};

pub(crate) const WORDS: [&str; 10] = [
    "xxunk", "xxpad", "xxbos", "xxmaj", "good", "bad", "movie", "very", "!", ".",
];

/// A small random classifier bundle over [`WORDS`] with 3 classes.
pub(crate) fn tiny_bundle(direction: Direction, seed: u64) -> Bundle {
    let device = test_device();
    device.seed(seed);
    let vocab = Vocab::new(WORDS.map(String::from).to_vec());
    let config = TextClassifierConfig::new(
        AwdLstmConfig::classifier(vocab.len())
            .with_emb_size(4)
            .with_hidden_size(6)
            .with_n_layers(2),
        3,
    )
    .with_bptt(4)
    .with_max_len(8);
    let model = config.init(&device);
    Bundle::from_classifier(
        &model,
        &config,
        vocab,
        vec!["a".into(), "b".into(), "c".into()],
        TokenizerConfig::default(),
        direction,
    )
    .unwrap()
}

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ulmfit-bundle-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn logits(model: &TextClassifier, ids: &[i64]) -> Vec<f32> {
    let x = Tensor::<2, Int>::from_data(
        TensorData::new(ids.to_vec(), [1, ids.len()]),
        &model.encoder.embedding.device(),
    );
    to_vec(model.forward(x).logits)
}

/// Rewrites the manifest with `edit` applied to its JSON.
fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join(MANIFEST_FILE);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// Replaces a file and records its new checksum, as a careless hand-edit would.
fn replace_file(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
    let (len, sha) = (bytes.len(), sha256_hex(bytes));
    edit_manifest(dir, |v| {
        v["files"][name] = serde_json::json!({"bytes": len, "sha256": sha});
    });
}

#[test]
fn round_trip_keeps_everything() {
    let b = tiny_bundle(Direction::Backward, 1);
    let dir = temp_dir("round");
    b.save(&dir).unwrap();
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let l = Bundle::load(&dir, &test_device().autodiff()).unwrap();
    assert!(!l.model.encoder.embedding.device().is_autodiff());
    assert_eq!(l.direction(), Direction::Backward);
    assert_eq!(l.manifest.labels, b.manifest.labels);
    assert_eq!(l.manifest.crate_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(l.vocab, b.vocab);
    assert_eq!(l.manifest.tokenizer, TokenizerConfig::default());
    let ids = [2, 3, 4, 7, 5, 9, 6];
    assert_eq!(logits(&b.model, &ids), logits(&l.model, &ids));
    // Saving again replaces the bundle and leaves no temporary directory.
    tiny_bundle(Direction::Forward, 2).save(&dir).unwrap();
    assert_eq!(
        Bundle::load(&dir, &test_device()).unwrap().direction(),
        Direction::Forward
    );
    let parent = dir.parent().unwrap();
    let stem = dir.file_name().unwrap().to_string_lossy().into_owned();
    let leftovers = std::fs::read_dir(parent)
        .unwrap()
        .filter(|e| {
            let n = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .into_owned();
            n.starts_with(&format!(".{stem}."))
        })
        .count();
    assert_eq!(leftovers, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn save_does_not_clobber_other_directories() {
    let dir = temp_dir("clobber");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("precious.txt"), b"x").unwrap();
    assert!(matches!(
        tiny_bundle(Direction::Forward, 0).save(&dir),
        Err(BundleError::WouldClobber(_))
    ));
    assert_eq!(std::fs::read(dir.join("precious.txt")).unwrap(), b"x");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn from_classifier_checks_its_arguments() {
    let b = tiny_bundle(Direction::Forward, 0);
    let r = Bundle::from_classifier(
        &b.model,
        &b.manifest.model,
        b.vocab.clone(),
        vec!["only one".into()],
        TokenizerConfig::default(),
        Direction::Forward,
    );
    assert!(matches!(r, Err(BundleError::Inconsistent(_))));
    let r = Bundle::from_classifier(
        &b.model,
        &b.manifest.model,
        Vocab::new(vec!["xxunk".into(), "xxpad".into()]),
        b.manifest.labels.clone(),
        TokenizerConfig::default(),
        Direction::Forward,
    );
    assert!(matches!(r, Err(BundleError::Inconsistent(_))));
}

/// Saves a fresh bundle, damages it with `damage`, and returns what loading says.
fn load_damaged(name: &str, damage: impl FnOnce(&Path)) -> BundleError {
    let dir = temp_dir(name);
    tiny_bundle(Direction::Forward, 3).save(&dir).unwrap();
    damage(&dir);
    let err = Bundle::load(&dir, &test_device()).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    err
}

#[test]
fn damaged_bundles_are_refused_with_advice() {
    let e = load_damaged("missing", |d| {
        std::fs::remove_file(d.join(MODEL_FILE)).unwrap()
    });
    assert!(matches!(e, BundleError::MissingFile { ref file, .. } if file == MODEL_FILE));
    let e = load_damaged("nomanifest", |d| {
        std::fs::remove_file(d.join(MANIFEST_FILE)).unwrap()
    });
    assert!(matches!(e, BundleError::MissingFile { .. }));
    let e = load_damaged("edited", |d| {
        std::fs::write(d.join(VOCAB_FILE), br#"["xxunk","xxpad"]"#).unwrap()
    });
    assert!(matches!(e, BundleError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains("export the bundle again"));
    let e = load_damaged("newer", |d| {
        edit_manifest(d, |v| {
            v["format_version"] = serde_json::json!(FORMAT_VERSION + 1)
        })
    });
    assert!(matches!(e, BundleError::IncompatibleVersion { .. }));
    assert!(e.to_string().contains("upgrade ulmfit"), "{e}");
    let e = load_damaged("notjson", |d| {
        std::fs::write(d.join(MANIFEST_FILE), b"{").unwrap()
    });
    assert!(matches!(e, BundleError::Manifest { .. }));
    // Another vocabulary, with its checksum updated: the lengths disagree.
    let e = load_damaged("vocab", |d| {
        replace_file(d, VOCAB_FILE, br#"["xxunk","xxpad","xxbos"]"#)
    });
    assert!(
        matches!(
            e,
            BundleError::VocabMismatch {
                vocab_len: 3,
                rows: 10,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("vocabulary the model was trained with")
    );
}

#[test]
fn impossible_descriptions_are_refused_before_allocating() {
    // A head layer this wide would need exabytes: refused from the weight file's size.
    let e = load_damaged("huge", |d| {
        edit_manifest(d, |v| {
            v["model"]["lin_ftrs"] = serde_json::json!([usize::MAX / 2])
        });
    });
    assert!(matches!(e, BundleError::InvalidModel { .. }), "{e}");
    for (name, field, value) in [
        ("bptt", "bptt", serde_json::json!(0)),
        ("labels", "n_class", serde_json::json!(4)),
        ("prob", "output_p", serde_json::json!(1.5)),
    ] {
        let e = load_damaged(name, |d| edit_manifest(d, |v| v["model"][field] = value));
        assert!(matches!(e, BundleError::InvalidModel { .. }), "{name}: {e}");
    }
    // A chunk length that would pad every document to millions of steps.
    let e = load_damaged("bigbptt", |d| {
        edit_manifest(d, |v| {
            v["model"]["bptt"] = serde_json::json!(1_000_000);
            v["model"]["max_len"] = serde_json::json!(2_000_000);
        })
    });
    assert!(matches!(e, BundleError::InvalidModel { .. }), "{e}");
    let e = load_damaged("layers", |d| {
        edit_manifest(d, |v| {
            v["model"]["encoder"]["n_layers"] = serde_json::json!(0)
        })
    });
    assert!(matches!(e, BundleError::InvalidModel { .. }), "{e}");
}

#[test]
fn nan_weights_are_refused() {
    let mut b = tiny_bundle(Direction::Forward, 4);
    let w = b.model.head.blocks[0].linear.weight.val();
    let mut v = to_vec(w.clone());
    v[3] = f32::NAN;
    v[5] = f32::INFINITY;
    let t = Tensor::<2>::from_data(TensorData::new(v, w.dims()), &w.device());
    b.model.head.blocks[0].linear.weight = burn::module::Param::from_tensor(t);
    let dir = temp_dir("nan");
    b.save(&dir).unwrap();
    let e = Bundle::load(&dir, &test_device()).unwrap_err();
    assert!(matches!(e, BundleError::NonFinite { count: 2, .. }), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn direction_is_checked_when_asked() {
    let dir = temp_dir("dir");
    tiny_bundle(Direction::Forward, 5).save(&dir).unwrap();
    let e = Bundle::load_expecting(&dir, &test_device(), Direction::Backward, "--backward")
        .unwrap_err();
    assert!(matches!(e, BundleError::WrongDirection { .. }));
    assert!(e.to_string().contains("expected a backward model"), "{e}");
    assert!(Bundle::load_expecting(&dir, &test_device(), Direction::Forward, "--model").is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(
        Bundle::load(&dir, &test_device()),
        Err(BundleError::NotFound(_))
    ));
}
