//! Read a `torch.save` file (`.pth`) into a [`StateDict`].
//!
//! Both containers `torch.save` has written are read through `pytorch-reader`: the zip
//! archive of torch >= 1.6 and the legacy pickle stream of torch 0.1.10 – 1.5 (the format of
//! fastai's WikiText-103 download and of every fastai v1 / 0.7 file); its TAR and plain-pickle
//! layouts are accepted too. A fastai learner save `{'model': state_dict, 'opt': ...}` is
//! unwrapped to its `model` entry, as fastai's `load_pretrained` does.
//!
//! The file is untrusted. Besides `pytorch-reader`'s own checks (every declared length is
//! checked against the file, the pickle VM never calls anything), this reader refuses any
//! tensor whose data would be larger than the file, and a total larger than
//! [`MAX_EXPANSION`] times the file, before reading any tensor data.
//!
//! Keys come back in the file's order (the order of `model.state_dict()`): `pytorch-reader`
//! returns a `HashMap`, so the order is recovered by listing the pickle's string literals
//! (`pickle_order.rs`); if that fails the keys are sorted naturally ([`PthInfo::file_order`]).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use pytorch_reader::{DType, FileFormat, PytorchReader};

use super::pickle_order;
use super::{FastaiError, RawTensor, SourceDType, StateDict};

/// How many times the file size all tensors together may take. A state dict can legitimately
/// read more than the file holds because tensors share storage (fastai's tied embedding
/// appears three times, as `0.encoder.weight`, `0.encoder_dp.emb.weight` and
/// `1.decoder.weight`, but is stored once), never more than a few times.
pub const MAX_EXPANSION: u64 = 4;

/// The container a `.pth` file used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PthFormat {
    /// Zip archive (torch >= 1.6).
    Zip,
    /// Legacy pickle stream (torch 0.1.10 – 1.5).
    Legacy,
    /// Pre-0.1.10 TAR archive.
    Tar,
    /// A bare pickle (holds no tensor data).
    Pickle,
}

/// What [`read_pth_with_info`] found besides the tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PthInfo {
    /// The container.
    pub format: PthFormat,
    /// Whether the file was a learner save `{'model': ..., 'opt': ...}` whose `model` entry was
    /// taken (the optimizer state is ignored).
    pub learner_save: bool,
    /// Whether the key order could be recovered from the pickle. When not, the keys are in
    /// natural order (numeric path segments compared as numbers).
    pub file_order: bool,
}

/// Read every tensor of a `.pth` file, in file order, converted to `f32`.
pub fn read_pth(path: impl AsRef<Path>) -> Result<StateDict, FastaiError> {
    read_pth_with_info(path).map(|(state, _)| state)
}

/// [`read_pth`], also reporting the container and whether a learner save was unwrapped.
pub fn read_pth_with_info(path: impl AsRef<Path>) -> Result<(StateDict, PthInfo), FastaiError> {
    let path = path.as_ref();
    let file_len = std::fs::metadata(path)
        .map_err(|source| FastaiError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();

    let reader =
        guarded(path, || PytorchReader::new(path))?.map_err(|source| FastaiError::Torch {
            path: path.to_path_buf(),
            source,
        })?;
    let format = match reader.metadata().format_type {
        FileFormat::Zip => PthFormat::Zip,
        FileFormat::Legacy => PthFormat::Legacy,
        FileFormat::Tar => PthFormat::Tar,
        FileFormat::Pickle => PthFormat::Pickle,
    };
    let mut tensors = reader.into_tensors();

    // `pytorch-reader` flattens nested dicts with dotted names, so a learner save shows up as
    // `model.<key>` and `opt.<...>` entries.
    let learner_save = !tensors.is_empty()
        && tensors.keys().any(|k| k.starts_with("model."))
        && tensors
            .keys()
            .all(|k| k.starts_with("model.") || k.starts_with("opt."));
    if learner_save {
        tensors = tensors
            .into_iter()
            .filter_map(|(k, t)| k.strip_prefix("model.").map(|k| (k.to_string(), t)))
            .collect();
    }
    if tensors.is_empty() {
        return Err(FastaiError::NotAStateDict {
            path: path.to_path_buf(),
            detail: "the file holds no tensors".into(),
        });
    }

    // Refuse before reading: a strided view (stride 0) can declare far more data than the
    // file holds.
    let mut total: u64 = 0;
    for (name, tensor) in &tensors {
        let bytes = tensor.byte_len() as u64;
        if bytes > file_len {
            return Err(too_large(path, name, bytes, file_len));
        }
        total = total.saturating_add(bytes);
    }
    let limit = file_len.saturating_mul(MAX_EXPANSION);
    if total > limit {
        return Err(too_large(path, "<all tensors>", total, limit));
    }

    let strings = match format {
        PthFormat::Zip => pickle_order::zip_strings(path),
        PthFormat::Legacy => pickle_order::legacy_strings(path),
        PthFormat::Tar | PthFormat::Pickle => None,
    };
    let mut names: Vec<String> = tensors.keys().cloned().collect();
    pickle_order::order_names(&mut names, strings.as_deref());

    let mut state = StateDict::new();
    for name in names {
        let Some(tensor) = tensors.remove(&name) else {
            continue;
        };
        let bytes = guarded(path, || tensor.read())?.map_err(|source| FastaiError::TensorData {
            path: path.to_path_buf(),
            name: name.clone(),
            source,
        })?;
        let (data, source_dtype) = to_f32(&bytes, tensor.dtype());
        if data.len() != tensor.num_elements() {
            return Err(FastaiError::ElementCount {
                name,
                shape: tensor.shape().to_vec(),
                len: data.len(),
            });
        }
        state.insert(
            name,
            RawTensor {
                shape: tensor.shape().to_vec(),
                data,
                source_dtype,
            },
        );
    }
    let info = PthInfo {
        format,
        learner_save,
        file_order: strings.is_some(),
    };
    Ok((state, info))
}

fn too_large(path: &Path, name: &str, bytes: u64, limit: u64) -> FastaiError {
    FastaiError::TooLarge {
        path: path.to_path_buf(),
        name: name.to_string(),
        bytes,
        limit,
    }
}

/// Run a `pytorch-reader` call, turning a panic into [`FastaiError::ReaderPanicked`].
///
/// Last-resort guard only: no input found so far makes `pytorch-reader` 0.22.1 panic
/// (truncations, random bytes, hostile pickles and ~60k byte mutations of the fixtures were
/// tried; `robustness_tests.rs` keeps a sample), and the size checks above run before any
/// tensor data is read. It is here because a bad file must never take the process down.
/// (With `panic = "abort"` it cannot help, and the default panic hook still prints the
/// message.)
fn guarded<T>(path: &Path, f: impl FnOnce() -> T) -> Result<T, FastaiError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| FastaiError::ReaderPanicked {
        path: PathBuf::from(path),
        message: payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into()),
    })
}

/// Convert native-endian tensor bytes of `dtype` to `f32`.
fn to_f32(bytes: &[u8], dtype: DType) -> (Vec<f32>, SourceDType) {
    fn map<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        bytes
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
            })
            .collect()
    }
    match dtype {
        DType::F32 => (map(bytes, f32::from_ne_bytes), SourceDType::F32),
        DType::F64 => (
            map(bytes, |b| f64::from_ne_bytes(b) as f32),
            SourceDType::F64,
        ),
        DType::F16 => (
            map(bytes, |b| f16_to_f32(u16::from_ne_bytes(b))),
            SourceDType::F16,
        ),
        DType::BF16 => (
            map(bytes, |b| {
                f32::from_bits(u32::from(u16::from_ne_bytes(b)) << 16)
            }),
            SourceDType::BF16,
        ),
        DType::I64 => (
            map(bytes, |b| i64::from_ne_bytes(b) as f32),
            SourceDType::Int,
        ),
        DType::I32 => (
            map(bytes, |b| i32::from_ne_bytes(b) as f32),
            SourceDType::Int,
        ),
        DType::I16 => (
            map(bytes, |b| i16::from_ne_bytes(b) as f32),
            SourceDType::Int,
        ),
        DType::I8 => (
            map(bytes, |b| i8::from_ne_bytes(b) as f32),
            SourceDType::Int,
        ),
        DType::U64 => (
            map(bytes, |b| u64::from_ne_bytes(b) as f32),
            SourceDType::Int,
        ),
        DType::U32 => (
            map(bytes, |b| u32::from_ne_bytes(b) as f32),
            SourceDType::Int,
        ),
        DType::U16 => (
            map(bytes, |b| u16::from_ne_bytes(b) as f32),
            SourceDType::Int,
        ),
        DType::U8 => (map(bytes, |b: [u8; 1]| f32::from(b[0])), SourceDType::Int),
        DType::Bool => (
            map(bytes, |b: [u8; 1]| if b[0] != 0 { 1.0 } else { 0.0 }),
            SourceDType::Bool,
        ),
    }
}

/// IEEE binary16 -> binary32, exact.
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = (h >> 10) & 0x1f;
    let mant = f32::from(h & 0x3ff);
    match exp {
        0 => sign * mant * 2f32.powi(-24),
        0x1f if mant == 0.0 => sign * f32::INFINITY,
        0x1f => f32::NAN,
        _ => sign * (1.0 + mant / 1024.0) * 2f32.powi(i32::from(exp) - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastai::test_support::{Value, fixture, legacy_file, tensor, v2_lm_entries};

    fn meta() -> serde_json::Value {
        let text = std::fs::read_to_string(fixture("meta.json")).expect("meta.json");
        serde_json::from_str(&text).expect("meta.json parses")
    }

    fn shape_of(sd: &StateDict, key: &str) -> Vec<usize> {
        sd.get(key).map(|t| t.shape.clone()).unwrap_or_default()
    }

    #[test]
    fn reads_zip_lm_in_file_order() {
        let (sd, info) = read_pth_with_info(fixture("lm.pth")).expect("lm.pth loads");
        assert_eq!(info.format, PthFormat::Zip);
        assert!(!info.learner_save);
        assert!(info.file_order);
        // fastai v2 LM order (spec 6.2): the 4 layer-group lists of meta.json cover every
        // parameter; the state dict adds the tied copies.
        let mut expected = vec![
            "0.encoder.weight".to_string(),
            "0.encoder_dp.emb.weight".into(),
        ];
        for l in 0..3 {
            for p in [
                "weight_hh_l0_raw",
                "module.weight_ih_l0",
                "module.bias_ih_l0",
                "module.bias_hh_l0",
            ] {
                expected.push(format!("0.rnns.{l}.{p}"));
            }
        }
        expected.extend(["1.decoder.weight".into(), "1.decoder.bias".into()]);
        assert_eq!(sd.keys().collect::<Vec<_>>(), expected);
        let m = meta();
        let (v, e, h) = (
            m["config"]["vocab"].as_u64().unwrap() as usize,
            m["config"]["emb"].as_u64().unwrap() as usize,
            m["config"]["hid"].as_u64().unwrap() as usize,
        );
        assert_eq!(shape_of(&sd, "0.encoder.weight"), [v, e]);
        assert_eq!(shape_of(&sd, "0.rnns.0.weight_hh_l0_raw"), [4 * h, h]);
        assert_eq!(shape_of(&sd, "0.rnns.2.module.weight_ih_l0"), [4 * e, h]);
        assert_eq!(shape_of(&sd, "1.decoder.bias"), [v]);
        // The tied matrix is stored once and read three times.
        let emb = sd.get("0.encoder.weight").unwrap();
        assert_eq!(sd.get("0.encoder_dp.emb.weight"), Some(emb));
        assert_eq!(sd.get("1.decoder.weight"), Some(emb));
        assert!(emb.data.iter().any(|&x| x != 0.0));
        assert!(sd.iter().all(|(_, t)| t.source_dtype == SourceDType::F32));
        sd.check_finite().expect("finite");
    }

    #[test]
    fn reads_zip_classifier_with_int_buffers() {
        let sd = read_pth(fixture("clas.pth")).expect("clas.pth loads");
        let keys: Vec<&str> = sd.keys().collect();
        assert_eq!(keys[0], "0.module.encoder.weight");
        assert_eq!(keys.len(), 14 + 2 * 6);
        // Head in module order: BatchNorm buffers, then the bias-free Linear.
        assert_eq!(
            &keys[14..20],
            [
                "1.layers.0.0.weight",
                "1.layers.0.0.bias",
                "1.layers.0.0.running_mean",
                "1.layers.0.0.running_var",
                "1.layers.0.0.num_batches_tracked",
                "1.layers.0.2.weight"
            ]
        );
        let n = sd.get("1.layers.0.0.num_batches_tracked").unwrap();
        assert_eq!(n.source_dtype, SourceDType::Int);
        assert!(n.shape.is_empty() && n.len() == 1);
        assert_eq!(shape_of(&sd, "1.layers.1.2.weight"), [3, 10]);
        // Running stats were set to non-trivial values by the generator.
        assert!(
            sd.get("1.layers.0.0.running_var")
                .unwrap()
                .data
                .iter()
                .any(|&x| x != 1.0)
        );
    }

    #[test]
    fn reads_legacy_v1_file_in_file_order() {
        let (sd, info) =
            read_pth_with_info(fixture("wt103_like_lstm_fwd.pth")).expect("legacy file loads");
        assert_eq!(info.format, PthFormat::Legacy);
        assert!(info.file_order);
        let m = meta();
        let expected: Vec<&str> = m["pretrained_v1_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(sd.keys().collect::<Vec<_>>(), expected);
        for l in 0..3 {
            let raw = sd.get(&format!("0.rnns.{l}.weight_hh_l0_raw")).unwrap();
            let dup = sd.get(&format!("0.rnns.{l}.module.weight_hh_l0")).unwrap();
            assert_eq!(raw, dup);
        }
    }

    /// `testdata/learner_tiny.pth` (3.6 KB): a zip learner save written by torch 2.15 with
    /// fastai's `pickle_protocol=2`, where tensor `k` holds `(arange(n) + 100 k) * 0.25`:
    ///
    /// ```python
    /// def t(k, shape): return (torch.arange(math.prod(shape), dtype=torch.float32) + 100 * k).mul(0.25).reshape(shape)
    /// emb = t(0, (4, 2))
    /// sd = OrderedDict([("0.encoder.weight", emb), ("0.encoder_dp.emb.weight", emb),
    ///     ("0.rnns.0.weight_hh_l0_raw", t(1, (8, 2))), ("0.rnns.0.module.weight_ih_l0", t(2, (8, 2))),
    ///     ("0.rnns.0.module.bias_ih_l0", t(3, (8,))), ("0.rnns.0.module.bias_hh_l0", t(4, (8,))),
    ///     ("1.decoder.weight", emb), ("1.decoder.bias", t(5, (4,)))])
    /// opt = {"state": [{"grad_avg": torch.zeros(2), "step": 3, "do_wd": True}],
    ///        "hypers": [{"lr": 1e-3, "mom": 0.9}]}
    /// torch.save({"model": sd, "opt": opt}, "learner_tiny.pth", pickle_protocol=2)
    /// ```
    #[test]
    fn unwraps_zip_learner_save() {
        let bytes = include_bytes!("testdata/learner_tiny.pth");
        let file = crate::fastai::test_support::TempFile::new("learner.pth", bytes);
        let (sd, info) = read_pth_with_info(file.path()).expect("learner save loads");
        assert_eq!(info.format, PthFormat::Zip);
        assert!(info.learner_save);
        let keys = [
            ("0.encoder.weight", 0),
            ("0.encoder_dp.emb.weight", 0),
            ("0.rnns.0.weight_hh_l0_raw", 1),
            ("0.rnns.0.module.weight_ih_l0", 2),
            ("0.rnns.0.module.bias_ih_l0", 3),
            ("0.rnns.0.module.bias_hh_l0", 4),
            ("1.decoder.weight", 0),
            ("1.decoder.bias", 5),
        ];
        assert_eq!(
            sd.keys().collect::<Vec<_>>(),
            keys.iter().map(|(k, _)| *k).collect::<Vec<_>>()
        );
        for (key, k) in keys {
            let t = sd.get(key).unwrap();
            for (i, &x) in t.data.iter().enumerate() {
                assert_eq!(x, (i as f32 + 100.0 * k as f32) * 0.25, "{key}[{i}]");
            }
        }
    }

    #[test]
    fn unwraps_legacy_learner_save_and_ignores_opt() {
        let model = v2_lm_entries("0.", (5, 2, 3, 2), true);
        let opt = Value::Dict(vec![
            (
                "state".into(),
                Value::List(vec![Value::Dict(vec![
                    ("grad_avg".into(), tensor(&[2], vec![1.0, 2.0])),
                    ("step".into(), Value::Int(7)),
                ])]),
            ),
            (
                "hypers".into(),
                Value::List(vec![Value::Dict(vec![("lr".into(), Value::Float(1e-3))])]),
            ),
        ]);
        let root = vec![
            ("model".to_string(), Value::Dict(model.clone())),
            ("opt".to_string(), opt),
        ];
        let file = legacy_file("learner-legacy.pth", root);
        let (sd, info) = read_pth_with_info(file.path()).expect("loads");
        assert!(info.learner_save);
        assert_eq!(info.format, PthFormat::Legacy);
        assert_eq!(sd, crate::fastai::test_support::as_state_dict(&model));
    }

    #[test]
    fn converts_other_dtypes() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        let bf = 1.5f32.to_bits() >> 16;
        let (v, d) = to_f32(&(bf as u16).to_ne_bytes(), DType::BF16);
        assert_eq!((v, d), (vec![1.5], SourceDType::BF16));
        let (v, d) = to_f32(&(-3i64).to_ne_bytes(), DType::I64);
        assert_eq!((v, d), (vec![-3.0], SourceDType::Int));
        let (v, _) = to_f32(&0.1f64.to_ne_bytes(), DType::F64);
        assert_eq!(v, vec![0.1f32]);
        let (v, _) = to_f32(&[0, 1, 2], DType::Bool);
        assert_eq!(v, vec![0.0, 1.0, 1.0]);
    }

    #[test]
    fn int64_tensors_are_converted() {
        let file = legacy_file(
            "long.pth",
            vec![("n".into(), Value::LongTensor(vec![], vec![12345]))],
        );
        let sd = read_pth(file.path()).expect("loads");
        let t = sd.get("n").unwrap();
        assert_eq!(
            (t.data.as_slice(), t.source_dtype),
            (&[12345.0][..], SourceDType::Int)
        );
    }
}
