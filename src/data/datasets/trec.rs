//! TREC question classification (Li & Roth 2002): `train_5500.label` and `TREC_10.label`.
//!
//! One question per line, `COARSE:fine question text`. The files are Latin-1, not UTF-8
//! (`train_5500.label` line 66 holds the single byte `0xF0`): every byte is decoded as the
//! Unicode code point of the same value, so nothing is lost or replaced.
//!
//! Coarse classes ([`TREC_COARSE_CLASSES`]) are in alphabetical order, which is the order
//! fastai's `CategoryBlock` gives them; Hugging Face's `trec` uses another order
//! (ABBR, ENTY, DESC, HUM, LOC, NUM), so its label ids differ. The 50 fine classes
//! ([`TREC_FINE_CLASSES`]) are the full `COARSE:fine` names, alphabetical.

use std::path::Path;

use super::archive;
use super::{Example, TextClassificationData};
use crate::data::DataError;

/// The 6 coarse TREC classes, in label-index order (alphabetical, as fastai sorts them).
pub const TREC_COARSE_CLASSES: [&str; 6] = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"];

/// The 50 fine TREC classes of Li & Roth's taxonomy as `COARSE:fine`, in label-index order
/// (alphabetical).
pub const TREC_FINE_CLASSES: [&str; 50] = [
    "ABBR:abb",
    "ABBR:exp",
    "DESC:def",
    "DESC:desc",
    "DESC:manner",
    "DESC:reason",
    "ENTY:animal",
    "ENTY:body",
    "ENTY:color",
    "ENTY:cremat",
    "ENTY:currency",
    "ENTY:dismed",
    "ENTY:event",
    "ENTY:food",
    "ENTY:instru",
    "ENTY:lang",
    "ENTY:letter",
    "ENTY:other",
    "ENTY:plant",
    "ENTY:product",
    "ENTY:religion",
    "ENTY:sport",
    "ENTY:substance",
    "ENTY:symbol",
    "ENTY:techmeth",
    "ENTY:termeq",
    "ENTY:veh",
    "ENTY:word",
    "HUM:desc",
    "HUM:gr",
    "HUM:ind",
    "HUM:title",
    "LOC:city",
    "LOC:country",
    "LOC:mount",
    "LOC:other",
    "LOC:state",
    "NUM:code",
    "NUM:count",
    "NUM:date",
    "NUM:dist",
    "NUM:money",
    "NUM:ord",
    "NUM:other",
    "NUM:perc",
    "NUM:period",
    "NUM:speed",
    "NUM:temp",
    "NUM:volsize",
    "NUM:weight",
];

/// File name of the training split.
pub const TREC_TRAIN_FILE: &str = "train_5500.label";
/// File name of the test split.
pub const TREC_TEST_FILE: &str = "TREC_10.label";

/// One TREC question with both labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrecQuestion {
    /// The question as written (tokens space-separated), decoded from Latin-1.
    pub text: String,
    /// Index into [`TREC_COARSE_CLASSES`].
    pub coarse: usize,
    /// Index into [`TREC_FINE_CLASSES`].
    pub fine: usize,
}

/// The TREC training (5,452) and test (500) questions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrecData {
    /// Questions of `train_5500.label`, in file order.
    pub train: Vec<TrecQuestion>,
    /// Questions of `TREC_10.label`, in file order.
    pub test: Vec<TrecQuestion>,
}

impl TrecData {
    /// TREC-6: the coarse labels (the ULMFiT paper's task).
    pub fn coarse(&self) -> TextClassificationData {
        self.to_data(|q| q.coarse, &TREC_COARSE_CLASSES)
    }

    /// TREC-50: the fine labels.
    pub fn fine(&self) -> TextClassificationData {
        self.to_data(|q| q.fine, &TREC_FINE_CLASSES)
    }

    fn to_data(
        &self,
        label: impl Fn(&TrecQuestion) -> usize,
        classes: &[&str],
    ) -> TextClassificationData {
        let conv = |qs: &[TrecQuestion]| {
            qs.iter()
                .map(|q| Example {
                    text: q.text.clone(),
                    label: label(q),
                })
                .collect()
        };
        TextClassificationData {
            train: conv(&self.train),
            test: conv(&self.test),
            classes: classes.iter().map(|s| s.to_string()).collect(),
            unsup: Vec::new(),
        }
    }
}

/// Reads `train_5500.label` and `TREC_10.label` from `dir`.
pub fn read_trec(dir: impl AsRef<Path>) -> Result<TrecData, DataError> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(DataError::NotFound {
            path: dir.to_path_buf(),
            what: "TREC folder".into(),
        });
    }
    let read = |name: &str| -> Result<Vec<TrecQuestion>, DataError> {
        let path = dir.join(name);
        let bytes = archive::read_file(&path, &format!("TREC file `{name}`"))?;
        parse_trec(&bytes, &path)
    };
    Ok(TrecData {
        train: read(TREC_TRAIN_FILE)?,
        test: read(TREC_TEST_FILE)?,
    })
}

/// Parses the bytes of a TREC `.label` file; errors name `path` and the line.
pub fn parse_trec(bytes: &[u8], path: &Path) -> Result<Vec<TrecQuestion>, DataError> {
    if bytes.is_empty() {
        return Err(DataError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut out = Vec::new();
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // Latin-1: byte value = code point
        let line: String = raw.iter().map(|&b| char::from(b)).collect();
        let Some((label, text)) = line.split_once(' ') else {
            return Err(DataError::format(
                path,
                line_no,
                format!("expected `COARSE:fine question`, found `{line}`"),
            ));
        };
        let Some((coarse, _)) = label.split_once(':') else {
            return Err(DataError::label(
                path,
                line_no,
                label,
                "expected `COARSE:fine`",
            ));
        };
        let coarse = TREC_COARSE_CLASSES
            .iter()
            .position(|&c| c == coarse)
            .ok_or_else(|| {
                DataError::label(
                    path,
                    line_no,
                    label,
                    format!("coarse class `{coarse}` is not one of {TREC_COARSE_CLASSES:?}"),
                )
            })?;
        let fine = TREC_FINE_CLASSES
            .iter()
            .position(|&c| c == label)
            .ok_or_else(|| {
                DataError::label(path, line_no, label, "not one of the 50 TREC fine classes")
            })?;
        if text.trim().is_empty() {
            return Err(DataError::format(path, line_no, "question text is empty"));
        }
        out.push(TrecQuestion {
            text: text.to_string(),
            coarse,
            fine,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_paths::{TempDir, dataset};

    #[test]
    fn official_counts() {
        let d = read_trec(dataset("trec")).unwrap();
        let coarse = d.coarse();
        assert_eq!(coarse.train.len(), 5452);
        assert_eq!(coarse.test.len(), 500);
        assert_eq!(coarse.train_counts(), vec![86, 1162, 1250, 1223, 835, 896]);
        assert_eq!(coarse.test_counts(), vec![9, 138, 94, 65, 81, 113]);
        let fine = d.fine();
        assert_eq!(fine.n_classes(), 50);
        assert_eq!(fine.train_counts().iter().filter(|&&c| c > 0).count(), 50);
        assert_eq!(fine.test_counts().iter().filter(|&&c| c > 0).count(), 42);
        // fine and coarse agree
        for q in d.train.iter().chain(&d.test) {
            assert!(TREC_FINE_CLASSES[q.fine].starts_with(TREC_COARSE_CLASSES[q.coarse]));
        }
        assert_eq!(
            d.train[0].text,
            "How did serfdom develop in and then leave Russia ?"
        );
        assert_eq!(TREC_FINE_CLASSES[d.train[0].fine], "DESC:manner");
        // line 66 keeps its 0xF0 byte as U+00F0
        assert!(
            d.train[65].text.contains("sister\u{f0}city"),
            "{}",
            d.train[65].text
        );
    }

    #[test]
    fn fine_classes_are_sorted_and_unique() {
        assert!(TREC_FINE_CLASSES.windows(2).all(|w| w[0] < w[1]));
        assert!(TREC_COARSE_CLASSES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let dir = TempDir::new("trec-bad");
        let p = Path::new("x.label");
        let e = parse_trec(b"", p).unwrap_err();
        assert!(matches!(e, DataError::EmptyFile { .. }), "{e}");
        let e = parse_trec(b"DESC:manner How ?\nnolabel\n", p).unwrap_err();
        assert!(matches!(e, DataError::Format { line: 2, .. }), "{e}");
        let e = parse_trec(b"DESC:manner How ?\nFOO:bar What ?\n", p).unwrap_err();
        assert!(
            matches!(&e, DataError::Label { line: 2, label, .. } if label == "FOO:bar"),
            "{e}"
        );
        let e = parse_trec(b"LOC:planet Where ?\n", p).unwrap_err();
        assert!(matches!(e, DataError::Label { line: 1, .. }), "{e}");
        let e = parse_trec(b"DESC What ?\n", p).unwrap_err();
        assert!(matches!(e, DataError::Label { line: 1, .. }), "{e}");
        let e = parse_trec(b"DESC:def \n", p).unwrap_err();
        assert!(matches!(e, DataError::Format { line: 1, .. }), "{e}");
        assert!(e.to_string().contains("x.label, line 1"), "{e}");
        let ok = parse_trec(b"NUM:date When ?\r\nHUM:ind Who ?", p).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].text, "When ?");
        // missing folder / file
        let e = read_trec(dir.path().join("missing")).unwrap_err();
        assert!(matches!(e, DataError::NotFound { .. }), "{e}");
        dir.write("t/train_5500.label", "NUM:date When ?\n");
        let e = read_trec(dir.path().join("t")).unwrap_err();
        assert!(
            matches!(&e, DataError::NotFound { path, .. } if path.ends_with("TREC_10.label")),
            "{e}"
        );
    }
}
