//! Hostile and malformed inputs: every one must give an `Err` (never a panic, never an
//! allocation far beyond the file's size); NaN weights load but fail `check_finite`.

use super::test_support::{
    Pickle, TempFile, Value, fixture, itos_file, legacy_file, legacy_pth, tensor, v2_lm_entries,
    values,
};
use super::{FastaiError, load_fastai_lm, read_itos, read_pth};

/// `read_pth` on `bytes`; panics inside are turned into a test failure naming the case.
fn read_bytes(tag: &str, bytes: &[u8]) -> Result<super::StateDict, FastaiError> {
    let file = TempFile::new(tag, bytes);
    let result = read_pth(file.path());
    if let Err(FastaiError::ReaderPanicked { message, .. }) = &result {
        panic!("pytorch-reader panicked on {tag}: {message}");
    }
    result
}

/// The bytes of a legacy file whose object pickle is `body` (a full pickle, with PROTO/STOP),
/// with no storages.
fn legacy_with_object(body: &[u8]) -> Vec<u8> {
    let empty = legacy_pth(&Value::Dict(vec![]));
    // The empty dict's object pickle is `\x80\x02}(u.`; swap it for `body`.
    let at = empty
        .windows(6)
        .position(|w| w == b"\x80\x02}(u.")
        .expect("object pickle");
    let mut out = empty[..at].to_vec();
    out.extend_from_slice(body);
    out.extend_from_slice(&empty[at + 6..]);
    out
}

#[test]
fn empty_and_missing_files() {
    assert!(matches!(
        read_bytes("empty.pth", b""),
        Err(FastaiError::Torch { .. })
    ));
    assert!(matches!(
        read_pth(fixture("no-such-file.pth")),
        Err(FastaiError::Io { .. })
    ));
    assert!(matches!(
        read_itos(TempFile::new("e.pkl", b"").path()),
        Err(FastaiError::BadItos { .. })
    ));
}

#[test]
fn truncated_zip_pth() {
    let bytes = std::fs::read(fixture("lm.pth")).expect("lm.pth");
    let len = bytes.len();
    let mut cuts: Vec<usize> = (1..64).collect();
    cuts.extend((64..len).step_by(211));
    cuts.extend([len / 2, len - 22, len - 2, len - 1]);
    for cut in cuts {
        assert!(
            read_bytes("cut.pth", &bytes[..cut]).is_err(),
            "zip cut at {cut} of {len} loaded"
        );
    }
}

#[test]
fn truncated_legacy_pth() {
    let bytes = std::fs::read(fixture("wt103_like_lstm_fwd.pth")).expect("legacy fixture");
    let len = bytes.len();
    let mut cuts: Vec<usize> = (1..400).collect();
    cuts.extend((400..len).step_by(173));
    cuts.extend([len - 4, len - 1]);
    for cut in cuts {
        assert!(
            read_bytes("cut-legacy.pth", &bytes[..cut]).is_err(),
            "legacy cut at {cut} of {len} loaded"
        );
    }
}

#[test]
fn random_bytes() {
    for (i, len) in [1usize, 7, 64, 1000, 20_000].into_iter().enumerate() {
        let noise: Vec<u8> = values(1000 + i as u64, len)
            .iter()
            .map(|v| ((v + 0.5) * 256.0) as u8)
            .collect();
        assert!(
            read_bytes("noise.pth", &noise).is_err(),
            "{len} random bytes"
        );
        // Random bytes behind each container's signature.
        for magic in [
            &b"PK\x03\x04"[..],
            b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.",
            b"\x80\x02",
        ] {
            let mut bytes = magic.to_vec();
            bytes.extend_from_slice(&noise);
            assert!(
                read_bytes("noise.pth", &bytes).is_err(),
                "{len} bytes after {magic:?}"
            );
        }
    }
}

#[test]
fn mutated_files_never_panic() {
    // Overwrite 1-3 bytes at pseudo-random places (denser in the pickle headers), many times.
    for name in ["lm.pth", "wt103_like_lstm_fwd.pth", "clas.pth"] {
        let original = std::fs::read(fixture(name)).expect("fixture");
        let rand = values(7 + name.len() as u64, 3 * 400);
        for (case, r) in rand.chunks_exact(3).enumerate() {
            let mut bytes = original.clone();
            let span = if case % 2 == 0 {
                4096.min(bytes.len())
            } else {
                bytes.len()
            };
            let at = ((r[0] + 0.5) * span as f32) as usize % bytes.len();
            let value = ((r[1] + 0.5) * 256.0) as u8;
            let n = 1 + ((r[2] + 0.5) * 3.0) as usize;
            for b in bytes.iter_mut().skip(at).take(n) {
                *b = value;
            }
            // Either outcome is fine (a changed weight is still a valid file); a panic is not.
            let _ = read_bytes("mutated.pth", &bytes);
        }
    }
}

#[test]
fn pickle_globals_are_never_called() {
    let marker = std::env::temp_dir().join(format!("ulmfit-pwned-pth-{}", std::process::id()));
    // {'0.encoder.weight': os.system('touch <marker>')} as the saved object.
    let mut p = Pickle::new();
    p.op(b"}(")
        .str("0.encoder.weight")
        .global("os", "system")
        .op(b"(");
    p.str(&format!("touch {}", marker.display()))
        .op(b"tR")
        .op(b"u");
    let body = p.finish();
    let result = read_bytes("evil-legacy.pth", &legacy_with_object(&body));
    assert!(
        matches!(result, Err(FastaiError::NotAStateDict { .. })),
        "{}",
        describe(&result)
    );
    // The same pickle as a bare pickle file.
    assert!(read_bytes("evil.pth", &body).is_err());
    // An unknown callable fed a tensor.
    let mut p = Pickle::new();
    p.global("builtins", "eval")
        .op(b"(")
        .str("__import__('os')")
        .op(b"tR");
    assert!(read_bytes("evil-root.pth", &legacy_with_object(&p.finish())).is_err());
    assert!(!marker.exists(), "nothing may be executed");
}

#[test]
fn huge_length_claims() {
    // A BINUNICODE key claiming 0xFFFFFFF0 bytes.
    let body = b"\x80\x02}(X\xf0\xff\xff\xffabcdu.";
    assert!(read_bytes("huge-str.pth", &legacy_with_object(body)).is_err());
    // A storage claiming 2^40 elements, holding 4.
    let claim = Value::View {
        shape: vec![4],
        stride: vec![1],
        offset: 0,
        storage_numel: 1 << 40,
        data: vec![1.0; 4],
    };
    let bytes = legacy_pth(&Value::Dict(vec![("w".into(), claim)]));
    assert!(read_bytes("huge-storage.pth", &bytes).is_err());
    // A view claiming 2^30 elements (4 GiB as f32) on a 1-element storage (stride 0):
    // refused from the declared size, before anything is read.
    let broadcast = Value::View {
        shape: vec![1 << 15, 1 << 15],
        stride: vec![0, 0],
        offset: 0,
        storage_numel: 1,
        data: vec![1.0],
    };
    let bytes = legacy_pth(&Value::Dict(vec![("w".into(), broadcast)]));
    assert!(matches!(
        read_bytes("broadcast.pth", &bytes),
        Err(FastaiError::TooLarge { name, .. }) if name == "w"
    ));
    // Several views of one 1-element storage: each fits the file, together they do not.
    let views = |n: usize| {
        let view = Value::View {
            shape: vec![n],
            stride: vec![0],
            offset: 0,
            storage_numel: 1,
            data: vec![1.0],
        };
        let entries = (0..8).map(|i| (format!("w{i}"), view.clone())).collect();
        legacy_pth(&Value::Dict(entries))
    };
    let file_len = views(256).len();
    let bytes = views(file_len / 4);
    assert_eq!(bytes.len(), file_len);
    let result = read_bytes("many-views.pth", &bytes);
    assert!(
        matches!(&result, Err(FastaiError::TooLarge { name, .. }) if name == "<all tensors>"),
        "{}",
        describe(&result)
    );
}

/// A short description of a read result (never the tensor data).
fn describe(result: &Result<super::StateDict, FastaiError>) -> String {
    match result {
        Ok(sd) => format!("Ok({} tensors)", sd.len()),
        Err(e) => format!("Err({e})"),
    }
}

#[test]
fn nan_weights_load_but_fail_check_finite() {
    let mut entries = v2_lm_entries("0.", (5, 2, 3, 2), true);
    let key = "0.rnns.1.module.weight_ih_l0";
    let (_, v) = entries.iter_mut().find(|(k, _)| k == key).expect("entry");
    let Value::Tensor(shape, data) = v.clone() else {
        panic!("tensor")
    };
    let mut data = data;
    data[5] = f32::NAN;
    *v = tensor(&shape, data);
    let file = legacy_file("nan.pth", entries);
    let itos = itos_file(5);
    let (state, _, _) = load_fastai_lm(file.path(), itos.path()).expect("NaN weights load");
    match state.check_finite() {
        Err(FastaiError::NonFinite { name, index: 5, .. }) => assert_eq!(name, key),
        other => panic!("expected NonFinite, got {other:?}"),
    }
}

#[test]
fn wrong_shape_and_missing_key_in_a_file() {
    let itos = itos_file(5);
    let mut entries = v2_lm_entries("0.", (5, 2, 3, 2), true);
    entries[4].1 = tensor(&[13], vec![0.0; 13]); // 0.rnns.0.module.bias_ih_l0
    let file = legacy_file("shape.pth", entries);
    match load_fastai_lm(file.path(), itos.path()) {
        Err(FastaiError::Shape { name, shape, .. }) => {
            assert_eq!(
                (name.as_str(), shape),
                ("0.rnns.0.module.bias_ih_l0", vec![13])
            )
        }
        other => panic!("expected Shape, got {other:?}"),
    }
    let mut entries = v2_lm_entries("0.", (5, 2, 3, 2), true);
    entries.retain(|(k, _)| k != "0.rnns.1.module.bias_hh_l0");
    let file = legacy_file("missing.pth", entries);
    match load_fastai_lm(file.path(), itos.path()) {
        Err(FastaiError::MissingKeys { keys }) => assert_eq!(keys, ["0.rnns.1.module.bias_hh_l0"]),
        other => panic!("expected MissingKeys, got {other:?}"),
    }
}
