//! Read fastai's `itos` pickle (`itos_wt103.pkl`): a pickled Python list of `str`.
//!
//! Parsed with `pytorch-reader`'s pickle reader, a small pickle VM that builds plain values
//! and never imports or calls anything: a `GLOBAL` + `REDUCE` pair (e.g. `os.system`) becomes
//! an opaque value, which is then refused here because it is not a string. Every pickle
//! protocol (0-5) is accepted.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use pytorch_reader::{PickleValue, PytorchReader};

use super::FastaiError;

/// Read the vocabulary (token `i` has id `i`) from a pickled list of strings.
///
/// Anything else (a dict, a list holding a non-string, an empty list, a torch file, a hostile
/// pickle) fails with [`FastaiError::BadItos`], naming the first offending item.
pub fn read_itos(path: impl AsRef<Path>) -> Result<Vec<String>, FastaiError> {
    let path = path.as_ref();
    let bad = |detail: String| FastaiError::BadItos {
        path: path.to_path_buf(),
        detail,
    };
    // Make a missing file an Io error rather than a parse error.
    std::fs::metadata(path).map_err(|source| FastaiError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // Last-resort guard (see `pth::guarded`): no input is known to make the reader panic.
    let value = catch_unwind(AssertUnwindSafe(|| {
        PytorchReader::read_pickle_data(path, None)
    }))
    .map_err(|_| FastaiError::ReaderPanicked {
        path: path.to_path_buf(),
        message: "panic while parsing the pickle".into(),
    })?
    .map_err(|e| bad(e.to_string()))?;

    let PickleValue::List(items) = value else {
        return Err(bad(format!(
            "the pickle holds {}, not a list",
            describe(&value)
        )));
    };
    if items.is_empty() {
        return Err(bad("the list is empty".into()));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            PickleValue::String(s) => Ok(s),
            other => Err(bad(format!("item {i} is {}, not a str", describe(&other)))),
        })
        .collect()
}

fn describe(v: &PickleValue) -> String {
    match v {
        PickleValue::None => "None".into(),
        PickleValue::Bool(_) => "a bool".into(),
        PickleValue::Int(_) => "an int".into(),
        PickleValue::Float(_) => "a float".into(),
        PickleValue::String(_) => "a str".into(),
        PickleValue::List(_) => "a list".into(),
        PickleValue::Dict(_) => "a dict".into(),
        PickleValue::Bytes(_) => "bytes".into(),
        PickleValue::Unsupported(t) => format!("an object of type {t}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastai::test_support::{Pickle, TempFile, fixture};

    fn read_bytes(bytes: &[u8]) -> Result<Vec<String>, FastaiError> {
        let file = TempFile::new("itos.pkl", bytes);
        read_itos(file.path())
    }

    #[test]
    fn reads_protocol_4_fixture() {
        let itos = read_itos(fixture("lm_itos.pkl")).expect("lm_itos.pkl");
        let text = std::fs::read_to_string(fixture("meta.json")).unwrap();
        let meta: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(itos.len() as u64, meta["config"]["vocab"].as_u64().unwrap());
        assert_eq!(&itos[..2], ["xxunk", "xxpad"]);
        let unique: std::collections::HashSet<&String> = itos.iter().collect();
        assert_eq!(unique.len(), itos.len());
    }

    #[test]
    fn reads_v1_order_fixture() {
        let itos = read_itos(fixture("wt103_like_itos.pkl")).expect("wt103_like_itos.pkl");
        // fastai v1 special-token order (fixtures README).
        let v1 = [
            "xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxmaj", "xxup", "xxrep", "xxwrep",
        ];
        assert_eq!(&itos[..9], v1);
        assert_eq!(itos[9], "w0");
    }

    #[test]
    fn reads_every_protocol() {
        // pickle.dumps(['a', 'é'], protocol=0) / 1 / 2 / 5 (frame, short unicode, memoize).
        let cases: [&[u8]; 5] = [
            b"(lp0\nVa\np1\naV\xe9\np2\na.",
            b"(lp0\nVa\np1\naV\\u00e9\np2\na.",
            b"]q\x00(X\x01\x00\x00\x00aq\x01X\x02\x00\x00\x00\xc3\xa9q\x02e.",
            b"\x80\x02]q\x00(X\x01\x00\x00\x00aq\x01X\x02\x00\x00\x00\xc3\xa9q\x02e.",
            b"\x80\x05\x95\x0e\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x01a\x94\x8c\x02\xc3\xa9\x94e.",
        ];
        for bytes in cases {
            assert_eq!(read_bytes(bytes).expect("parses"), ["a", "é"]);
        }
    }

    #[test]
    fn refuses_anything_but_a_list_of_str() {
        let mut dict = Pickle::new();
        dict.op(b"}").str("a").int(1).op(b"s");
        let mut mixed = Pickle::new();
        mixed.op(b"](").str("a").int(3).op(b"e");
        let mut empty = Pickle::new();
        empty.op(b"]");
        for (bytes, needle) in [
            (dict.finish(), "dict"),
            (mixed.finish(), "item 1 is an int"),
            (empty.finish(), "empty"),
        ] {
            match read_bytes(&bytes) {
                Err(FastaiError::BadItos { detail, .. }) => {
                    assert!(detail.contains(needle), "{detail}")
                }
                other => panic!("expected BadItos, got {other:?}"),
            }
        }
        // A torch file is not an itos.
        assert!(matches!(
            read_itos(fixture("lm.pth")),
            Err(FastaiError::BadItos { .. })
        ));
        assert!(matches!(
            read_itos(fixture("does-not-exist.pkl")),
            Err(FastaiError::Io { .. })
        ));
    }

    #[test]
    fn never_calls_globals() {
        // ['a', os.system('touch <marker>')]: GLOBAL + REDUCE must not run anything.
        let marker = std::env::temp_dir().join(format!("ulmfit-pwned-{}", std::process::id()));
        let mut p = Pickle::new();
        p.op(b"](").str("a").global("os", "system").op(b"(");
        p.str(&format!("touch {}", marker.display()))
            .op(b"tR")
            .op(b"e");
        match read_bytes(&p.finish()) {
            Err(FastaiError::BadItos { detail, .. }) => {
                assert!(detail.contains("item 1"), "{detail}")
            }
            other => panic!("expected BadItos, got {other:?}"),
        }
        assert!(!marker.exists(), "the pickle must not execute anything");
        // Same as the root object.
        let mut p = Pickle::new();
        p.global("builtins", "eval").op(b"(").str("1+1").op(b"tR");
        assert!(matches!(
            read_bytes(&p.finish()),
            Err(FastaiError::BadItos { .. })
        ));
    }

    #[test]
    fn huge_length_claims_fail_without_allocating() {
        // BINUNICODE claiming 0xFFFFFFF0 bytes, BINBYTES8 claiming 2^62.
        let cases: [&[u8]; 2] = [
            b"\x80\x02](X\xf0\xff\xff\xffabce.",
            b"\x80\x04](\x8e\x00\x00\x00\x00\x00\x00\x00\x40abce.",
        ];
        for bytes in cases {
            assert!(matches!(
                read_bytes(bytes),
                Err(FastaiError::BadItos { .. })
            ));
        }
    }
}
