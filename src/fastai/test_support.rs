//! Test helpers: fixture location, temporary files, and a writer for legacy torch files and
//! pickles, so tests can build any state dict (including hostile ones) without Python.

use std::path::{Path, PathBuf};

/// A path in the fixtures folder (which must exist; the file itself need not).
pub(crate) fn fixture(name: &str) -> PathBuf {
    crate::paths::fixture("meta.json")
        .parent()
        .map(|dir| dir.join(name))
        .unwrap_or_default()
}

/// A file in the temp dir, deleted on drop.
pub(crate) struct TempFile(pub PathBuf);

impl TempFile {
    /// Write `bytes` to a fresh temp file whose name includes `tag`.
    pub(crate) fn new(tag: &str, bytes: &[u8]) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("ulmfit-fastai-{}-{n}-{tag}", std::process::id()));
        std::fs::write(&path, bytes).expect("write temp file");
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A protocol-2 pickle under construction.
#[derive(Default)]
pub(crate) struct Pickle(pub Vec<u8>);

impl Pickle {
    pub(crate) fn new() -> Self {
        Self(vec![0x80, 2])
    }
    pub(crate) fn op(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub(crate) fn int(&mut self, v: i64) -> &mut Self {
        if (0..256).contains(&v) {
            self.0.extend_from_slice(&[b'K', v as u8]);
        } else if let Ok(v) = i32::try_from(v) {
            self.0.push(b'J');
            self.0.extend_from_slice(&v.to_le_bytes());
        } else {
            self.0.extend_from_slice(&[0x8a, 8]);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        self
    }
    pub(crate) fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.0.push(b'c');
        self.0
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        self
    }
    pub(crate) fn tuple_of_ints(&mut self, v: &[usize]) -> &mut Self {
        self.op(b"(");
        for &x in v {
            self.int(x as i64);
        }
        self.op(b"t")
    }
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.0.push(b'.');
        self.0
    }
}

/// A value to write into a legacy torch file.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// A contiguous `float32` tensor.
    Tensor(Vec<usize>, Vec<f32>),
    /// A tensor view with explicit stride, storage offset and a claimed storage element
    /// count (`storage_numel`) which may exceed `data.len()` (hostile files).
    View {
        shape: Vec<usize>,
        stride: Vec<usize>,
        offset: usize,
        storage_numel: u64,
        data: Vec<f32>,
    },
    /// An `int64` tensor.
    LongTensor(Vec<usize>, Vec<i64>),
    Int(i64),
    Float(f64),
    List(Vec<Value>),
    /// A dict with string keys, in order.
    Dict(Vec<(String, Value)>),
}

/// A contiguous f32 tensor value.
pub(crate) fn tensor(shape: &[usize], data: Vec<f32>) -> Value {
    assert_eq!(shape.iter().product::<usize>(), data.len());
    Value::Tensor(shape.to_vec(), data)
}

/// The bytes of a legacy (pre-1.6, `_use_new_zipfile_serialization=False`) torch file
/// holding `root`.
pub(crate) fn legacy_pth(root: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Magic number 0x1950a86a20f9469cfc6c as LONG1, protocol version 1001, sys info.
    let mut magic = Pickle::new();
    magic
        .op(&[0x8a, 10])
        .op(&0x1950a86a20f9469cfc6c_u128.to_le_bytes()[..10]);
    out.extend(magic.finish());
    let mut version = Pickle::new();
    version.int(1001);
    out.extend(version.finish());
    let mut info = Pickle::new();
    info.op(b"}(").str("protocol_version").int(1001);
    info.str("little_endian").op(&[0x88]);
    info.str("type_sizes")
        .op(b"}(")
        .str("short")
        .int(2)
        .str("int")
        .int(4);
    info.str("long").int(4).op(b"uu");
    out.extend(info.finish());

    let mut storages: Vec<Vec<u8>> = Vec::new();
    let mut body = Pickle::new();
    write_value(&mut body, root, &mut storages);
    out.extend(body.finish());

    let mut keys = Pickle::new();
    keys.op(b"](");
    for i in 0..storages.len() {
        keys.str(&i.to_string());
    }
    keys.op(b"e");
    out.extend(keys.finish());
    // Each storage: its element count (i64) then its bytes.
    for storage in storages {
        out.extend(storage);
    }
    out
}

/// Write one value; tensor storages are appended to `storages` as (numel LE i64 ++ bytes).
fn write_value(p: &mut Pickle, v: &Value, storages: &mut Vec<Vec<u8>>) {
    match v {
        Value::Tensor(shape, data) => {
            let stride = contiguous_stride(shape);
            let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            write_tensor(
                p,
                storages,
                "FloatStorage",
                (shape, &stride, 0, data.len() as u64),
                bytes,
            );
        }
        Value::View {
            shape,
            stride,
            offset,
            storage_numel,
            data,
        } => {
            let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            write_tensor(
                p,
                storages,
                "FloatStorage",
                (shape, stride, *offset, *storage_numel),
                bytes,
            );
        }
        Value::LongTensor(shape, data) => {
            let stride = contiguous_stride(shape);
            let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            write_tensor(
                p,
                storages,
                "LongStorage",
                (shape, &stride, 0, data.len() as u64),
                bytes,
            );
        }
        Value::Int(i) => {
            p.int(*i);
        }
        Value::Float(f) => {
            p.op(b"G").op(&f.to_be_bytes());
        }
        Value::List(items) => {
            p.op(b"](");
            for item in items {
                write_value(p, item, storages);
            }
            p.op(b"e");
        }
        Value::Dict(items) => {
            p.op(b"}(");
            for (k, item) in items {
                p.str(k);
                write_value(p, item, storages);
            }
            p.op(b"u");
        }
    }
}

fn write_tensor(
    p: &mut Pickle,
    storages: &mut Vec<Vec<u8>>,
    storage_type: &str,
    (shape, stride, offset, numel): (&[usize], &[usize], usize, u64),
    bytes: Vec<u8>,
) {
    let key = storages.len().to_string();
    let mut storage = numel.to_le_bytes().to_vec();
    storage.extend(bytes);
    storages.push(storage);
    p.global("torch._utils", "_rebuild_tensor_v2").op(b"(");
    p.op(b"(")
        .str("storage")
        .global("torch", storage_type)
        .str(&key)
        .str("cpu");
    p.int(numel as i64).op(b"Nt").op(b"Q");
    p.int(offset as i64)
        .tuple_of_ints(shape)
        .tuple_of_ints(stride);
    p.op(&[0x89])
        .global("collections", "OrderedDict")
        .op(b")R")
        .op(b"tR");
}

fn contiguous_stride(shape: &[usize]) -> Vec<usize> {
    let mut stride = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        stride[i] = stride[i + 1] * shape[i + 1];
    }
    stride
}

/// Deterministic pseudo-random values in [-0.5, 0.5) (splitmix64).
pub(crate) fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9e3779b97f4a7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// A tiny AWD-LSTM state dict in fastai v2 LM naming (prefix `prefix`, e.g. `"0."`):
/// vocab `v`, emb `e`, hidden `h`, `n` layers; decoder entries when `decoder`.
pub(crate) fn v2_lm_entries(
    prefix: &str,
    (v, e, h, n): (usize, usize, usize, usize),
    decoder: bool,
) -> Vec<(String, Value)> {
    let emb = values(1, v * e);
    let mut out = vec![
        (
            format!("{prefix}encoder.weight"),
            tensor(&[v, e], emb.clone()),
        ),
        (
            format!("{prefix}encoder_dp.emb.weight"),
            tensor(&[v, e], emb.clone()),
        ),
    ];
    for l in 0..n {
        let input = if l == 0 { e } else { h };
        let hid = if l + 1 < n { h } else { e };
        let seed = 10 + l as u64 * 4;
        out.push((
            format!("{prefix}rnns.{l}.weight_hh_l0_raw"),
            tensor(&[4 * hid, hid], values(seed, 4 * hid * hid)),
        ));
        out.push((
            format!("{prefix}rnns.{l}.module.weight_ih_l0"),
            tensor(&[4 * hid, input], values(seed + 1, 4 * hid * input)),
        ));
        out.push((
            format!("{prefix}rnns.{l}.module.bias_ih_l0"),
            tensor(&[4 * hid], values(seed + 2, 4 * hid)),
        ));
        out.push((
            format!("{prefix}rnns.{l}.module.bias_hh_l0"),
            tensor(&[4 * hid], values(seed + 3, 4 * hid)),
        ));
    }
    if decoder {
        out.push(("1.decoder.weight".into(), tensor(&[v, e], emb)));
        out.push(("1.decoder.bias".into(), tensor(&[v], values(99, v))));
    }
    out
}

/// The values of `entries` as a state dict (for comparisons).
pub(crate) fn as_state_dict(entries: &[(String, Value)]) -> super::StateDict {
    entries
        .iter()
        .filter_map(|(k, v)| match v {
            Value::Tensor(shape, data) => Some((
                k.clone(),
                super::RawTensor::new(shape.clone(), data.clone()).expect("valid"),
            )),
            _ => None,
        })
        .collect()
}

/// Write `entries` as a legacy torch file (a bare dict).
pub(crate) fn legacy_file(tag: &str, entries: Vec<(String, Value)>) -> TempFile {
    TempFile::new(tag, &legacy_pth(&Value::Dict(entries)))
}

/// A pickled `itos` list `t0..t{n-1}` in a temp file.
pub(crate) fn itos_file(n: usize) -> TempFile {
    let mut p = Pickle::new();
    p.op(b"](");
    for i in 0..n {
        p.str(&format!("t{i}"));
    }
    p.op(b"e");
    TempFile::new("itos.pkl", &p.finish())
}
