//! Parity checks of the batching code against the fastai fixtures, for the project's parity
//! runner: each returns a serialisable report instead of panicking.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ClasDataLoader, ClasLoaderConfig, DataError, LmDataLoader, LmLoaderConfig};

/// Result of [`lm_batches_check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LmBatchesReport {
    /// The fixture that was checked.
    pub fixture: String,
    /// Number of documents in the fixture.
    pub n_docs: usize,
    /// Batch size used.
    pub bs: usize,
    /// Sequence length used.
    pub seq_len: usize,
    /// Batches fastai produced.
    pub expected_batches: usize,
    /// Batches this implementation produced.
    pub produced_batches: usize,
    /// Batches whose inputs and targets are equal element for element.
    pub matching_batches: usize,
    /// Description of the first difference, if any.
    pub first_mismatch: Option<String>,
    /// All batches match and their count is the same.
    pub passed: bool,
}

#[derive(Deserialize)]
struct LmFixture {
    docs: Vec<Vec<u32>>,
    bs: usize,
    seq_len: usize,
    batches: Vec<LmFixtureBatch>,
}

#[derive(Deserialize)]
struct LmFixtureBatch {
    x: Vec<Vec<i64>>,
    y: Vec<Vec<i64>>,
}

fn fixture_err(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Fixture {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Compares [`LmDataLoader`] (no shuffling, forward) with the batches fastai's `LMDataLoader`
/// made in `lm_batches.json` (documents, `bs`, `seq_len`, batches of `x`/`y` rows).
pub fn lm_batches_check(path: impl AsRef<Path>) -> Result<LmBatchesReport, DataError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let fx: LmFixture =
        serde_json::from_str(&text).map_err(|e| fixture_err(path, format!("bad JSON: {e}")))?;
    let mut dl = LmDataLoader::new(&fx.docs, LmLoaderConfig::new(fx.bs, fx.seq_len))?;
    let produced: Vec<_> = dl.epoch().collect();
    let mut matching = 0;
    let mut first_mismatch = None;
    for (b, expected) in fx.batches.iter().enumerate() {
        let Some(got) = produced.get(b) else {
            first_mismatch.get_or_insert_with(|| format!("batch {b} missing"));
            continue;
        };
        let flat = |rows: &[Vec<i64>]| rows.concat();
        let (ex, ey) = (flat(&expected.x), flat(&expected.y));
        let shape_ok = expected.x.len() == got.bs
            && expected.x.iter().all(|r| r.len() == got.seq_len)
            && expected.y.iter().all(|r| r.len() == got.seq_len);
        if shape_ok && ex == got.x && ey == got.y {
            matching += 1;
        } else {
            first_mismatch.get_or_insert_with(|| {
                format!(
                    "batch {b}: expected x {:?} y {:?}, got x {:?} y {:?} ({}×{})",
                    expected.x, expected.y, got.x, got.y, got.bs, got.seq_len
                )
            });
        }
    }
    if produced.len() > fx.batches.len() {
        first_mismatch.get_or_insert_with(|| {
            format!(
                "{} batches produced, fastai made {}",
                produced.len(),
                fx.batches.len()
            )
        });
    }
    Ok(LmBatchesReport {
        fixture: path.display().to_string(),
        n_docs: fx.docs.len(),
        bs: fx.bs,
        seq_len: fx.seq_len,
        expected_batches: fx.batches.len(),
        produced_batches: produced.len(),
        matching_batches: matching,
        passed: first_mismatch.is_none() && matching == fx.batches.len(),
        first_mismatch,
    })
}

/// Result of [`clas_padding_check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClasPaddingReport {
    /// The fixture that was checked.
    pub fixture: String,
    /// Chunk length (`config.bptt` of `meta.json`).
    pub bptt: usize,
    /// Rows in the fixture batch.
    pub rows: usize,
    /// Padded length of the fixture batch.
    pub len: usize,
    /// Rows equal to fastai's padded rows.
    pub matching_rows: usize,
    /// Description of the first difference, if any.
    pub first_mismatch: Option<String>,
    /// Every row, the order and the lengths match.
    pub passed: bool,
}

/// Checks [`ClasDataLoader`]'s order and padding against `clas_eval.safetensors` (`input`: a
/// batch fastai padded with `pad_chunk(pad_idx=1, pad_first=True, seq_len=bptt)`, rows sorted by
/// decreasing length; `lengths`), with `bptt` from `meta.json` (`config.bptt`).
///
/// The documents are recovered as the non-pad tokens of each row (the generator draws tokens
/// from 2.., so no text token equals the pad id 1), handed to the loader in reverse order, and
/// the validation batch must reproduce `input` exactly, with `lengths` and indices that restore
/// the documents.
pub fn clas_padding_check(
    safetensors_path: impl AsRef<Path>,
    meta_path: impl AsRef<Path>,
) -> Result<ClasPaddingReport, DataError> {
    let path = safetensors_path.as_ref();
    let meta_path = meta_path.as_ref();
    let meta_text = std::fs::read_to_string(meta_path).map_err(|e| DataError::io(meta_path, e))?;
    let meta: serde_json::Value = serde_json::from_str(&meta_text)
        .map_err(|e| fixture_err(meta_path, format!("bad JSON: {e}")))?;
    let bptt = meta["config"]["bptt"]
        .as_u64()
        .ok_or_else(|| fixture_err(meta_path, "no integer config.bptt"))? as usize;

    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| fixture_err(path, format!("not a safetensors file: {e}")))?;
    let (input, shape) = read_i64(&st, "input", path)?;
    let (lengths, _) = read_i64(&st, "lengths", path)?;
    let [rows, len] = shape[..] else {
        return Err(fixture_err(
            path,
            format!("input has shape {shape:?}, want 2-D"),
        ));
    };

    let pad = 1i64;
    let mut docs: Vec<Vec<u32>> = Vec::with_capacity(rows);
    for r in 0..rows {
        let doc = input[r * len..(r + 1) * len]
            .iter()
            .filter(|&&t| t != pad)
            .map(|&t| u32::try_from(t).map_err(|_| fixture_err(path, format!("token {t}"))))
            .collect::<Result<Vec<u32>, _>>()?;
        docs.push(doc);
    }
    // hand the documents over in reverse order so that sorting has work to do
    docs.reverse();
    let mut dl = ClasDataLoader::new(&docs, None, ClasLoaderConfig::valid(rows.max(1), bptt))?;
    let batch = dl
        .epoch()
        .next()
        .ok_or_else(|| fixture_err(path, "empty input"))?;

    let mut first_mismatch = None;
    let mut matching = 0;
    if batch.len != len {
        first_mismatch = Some(format!("padded length {} instead of {len}", batch.len));
    } else {
        for r in 0..rows {
            let want = &input[r * len..(r + 1) * len];
            if batch.row(r) == want {
                matching += 1;
            } else {
                first_mismatch.get_or_insert_with(|| {
                    format!("row {r}: expected {want:?}, got {:?}", batch.row(r))
                });
            }
        }
    }
    let got_lengths: Vec<i64> = batch.lengths.iter().map(|&l| l as i64).collect();
    if got_lengths != lengths {
        first_mismatch
            .get_or_insert_with(|| format!("lengths: expected {lengths:?}, got {got_lengths:?}"));
    }
    let want_indices: Vec<usize> = (0..rows).rev().collect();
    if batch.indices != want_indices {
        first_mismatch.get_or_insert_with(|| {
            format!(
                "indices: expected {want_indices:?}, got {:?}",
                batch.indices
            )
        });
    }
    Ok(ClasPaddingReport {
        fixture: path.display().to_string(),
        bptt,
        rows,
        len,
        matching_rows: matching,
        passed: first_mismatch.is_none() && matching == rows,
        first_mismatch,
    })
}

fn read_i64(
    st: &safetensors::SafeTensors<'_>,
    name: &str,
    path: &Path,
) -> Result<(Vec<i64>, Vec<usize>), DataError> {
    let view = st
        .tensor(name)
        .map_err(|e| fixture_err(path, format!("tensor `{name}`: {e}")))?;
    if view.dtype() != safetensors::Dtype::I64 {
        return Err(fixture_err(
            path,
            format!("tensor `{name}` is {:?}, want I64", view.dtype()),
        ));
    }
    let values = view
        .data()
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            i64::from_le_bytes(b)
        })
        .collect();
    Ok((values, view.shape().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fixture_is_an_error() {
        let err = lm_batches_check("/nonexistent/lm_batches.json").unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/lm_batches.json"),
            "{err}"
        );
    }

    #[test]
    fn report_detects_a_difference() {
        let dir = crate::data::test_paths::TempDir::new("parity");
        let p = dir.path().join("lm.json");
        // fastai would give x [[1,2]] y [[2,3]] here; the file claims something else
        std::fs::write(
            &p,
            r#"{"docs":[[1,2,3]],"bs":1,"seq_len":2,"batches":[{"x":[[1,2]],"y":[[2,4]]}]}"#,
        )
        .unwrap();
        let r = lm_batches_check(&p).unwrap();
        assert!(!r.passed);
        assert_eq!(r.matching_batches, 0);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"passed\":false"));
    }
}
