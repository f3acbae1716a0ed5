//! Adapt pretrained embeddings to a new vocabulary: fastai's `match_embeds`.

use std::collections::HashMap;

use super::keys::{DECODER_BIAS, DECODER_WEIGHT, ENCODER_WEIGHT};
use super::{FastaiError, RawTensor, StateDict};

/// fastai v2's `match_embeds` (identical to v1's `convert_weights`, spec §6.4) on a canonical
/// state dict.
///
/// With E = `0.encoder.weight` (rows follow `old_itos`) and b = `1.decoder.bias` (if present):
/// row `i` of the new matrix is E\[j\] where `j` is the index of `new_itos[i]` in `old_itos`
/// (exact string match; when a string occurs more than once in `old_itos` the last index
/// wins, as fastai builds a dict from the list), otherwise the mean of all rows of E; the new
/// bias likewise takes b\[j\] or the mean of b. Unseen tokens include new words and every
/// `xxfake` pad. The new matrix replaces `0.encoder.weight` and, if the state dict has a
/// decoder, `1.decoder.weight` (fastai also writes a decoder weight into an encoder-only dict;
/// here an encoder-only dict stays encoder-only); the new bias replaces `1.decoder.bias`.
///
/// Fails with [`FastaiError::VocabMismatch`] if `old_itos` does not have one token per row
/// of E (or per entry of b), and with [`FastaiError::MissingKeys`] without an embedding.
/// Means are accumulated in `f64`.
pub fn match_embeds(
    state: &mut StateDict,
    old_itos: &[String],
    new_itos: &[String],
) -> Result<(), FastaiError> {
    let emb = state
        .get(ENCODER_WEIGHT)
        .ok_or_else(|| FastaiError::MissingKeys {
            keys: vec![ENCODER_WEIGHT.into()],
        })?;
    let [rows, cols] = emb.shape[..] else {
        return Err(FastaiError::Shape {
            name: ENCODER_WEIGHT.into(),
            shape: emb.shape.clone(),
            expected: "[vocab, emb] (2-D)".into(),
        });
    };
    if rows.checked_mul(cols) != Some(emb.data.len()) {
        return Err(FastaiError::ElementCount {
            name: ENCODER_WEIGHT.into(),
            shape: emb.shape.clone(),
            len: emb.data.len(),
        });
    }
    if rows == 0 {
        return Err(FastaiError::Shape {
            name: ENCODER_WEIGHT.into(),
            shape: emb.shape.clone(),
            expected: "at least one row".into(),
        });
    }
    if old_itos.len() != rows {
        return Err(FastaiError::VocabMismatch {
            which: "old",
            vocab_len: old_itos.len(),
            rows,
        });
    }
    let bias = match state.get(DECODER_BIAS) {
        Some(b) if b.shape != [rows] || b.data.len() != rows => {
            return Err(FastaiError::Shape {
                name: DECODER_BIAS.into(),
                shape: b.shape.clone(),
                expected: format!("[{rows}] (one entry per row of {ENCODER_WEIGHT})"),
            });
        }
        Some(b) => Some(&b.data),
        None => None,
    };

    let mut mean_row = vec![0f64; cols];
    for r in emb.data.chunks_exact(cols.max(1)) {
        for (m, &v) in mean_row.iter_mut().zip(r) {
            *m += f64::from(v);
        }
    }
    let mean_row: Vec<f32> = mean_row.iter().map(|&s| (s / rows as f64) as f32).collect();
    let mean_bias =
        bias.map(|b| (b.iter().map(|&v| f64::from(v)).sum::<f64>() / rows as f64) as f32);

    // Last index wins for duplicated strings, like Python's `{w: i for i, w in enumerate(..)}`.
    let old_index: HashMap<&str, usize> = old_itos
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i))
        .collect();

    let mut new_emb = Vec::with_capacity(new_itos.len() * cols);
    let mut new_bias = Vec::with_capacity(new_itos.len());
    for word in new_itos {
        let old = old_index.get(word.as_str()).copied();
        match old.and_then(|j| emb.row(j)) {
            Some(row) => new_emb.extend_from_slice(row),
            None => new_emb.extend_from_slice(&mean_row),
        }
        if let (Some(b), Some(mean)) = (bias, mean_bias) {
            new_bias.push(old.and_then(|j| b.get(j).copied()).unwrap_or(mean));
        }
    }

    let new_emb = RawTensor {
        shape: vec![new_itos.len(), cols],
        data: new_emb,
        source_dtype: emb.source_dtype,
    };
    let had_bias = bias.is_some();
    if state.contains(DECODER_WEIGHT) {
        state.insert(DECODER_WEIGHT, new_emb.clone());
    }
    state.insert(ENCODER_WEIGHT, new_emb);
    if had_bias {
        state.insert(
            DECODER_BIAS,
            RawTensor {
                shape: vec![new_itos.len()],
                data: new_bias,
                source_dtype: super::SourceDType::F32,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastai::test_support::fixture;
    use crate::fastai::{normalize_keys, read_itos, read_pth};

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// The `param.*` tensors of `pretrained_adapted.safetensors` (fastai v2 names).
    fn reference_params() -> StateDict {
        let bytes = std::fs::read(fixture("pretrained_adapted.safetensors")).expect("fixture");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        let mut out = StateDict::new();
        for (name, view) in st.tensors() {
            let Some(name) = name.strip_prefix("param.") else {
                continue;
            };
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            let data = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let t = RawTensor::new(view.shape().to_vec(), data).expect("consistent");
            out.insert(name, t);
        }
        out
    }

    #[test]
    fn parity_with_fastai_load_pretrained() {
        let file = read_pth(fixture("wt103_like_lstm_fwd.pth")).expect("pth");
        let (mut state, _) = normalize_keys(file).expect("keys");
        let old_itos = read_itos(fixture("wt103_like_itos.pkl")).expect("itos");
        let text = std::fs::read_to_string(fixture("meta.json")).unwrap();
        let meta: serde_json::Value = serde_json::from_str(&text).unwrap();
        let new_itos: Vec<String> = meta["pretrained_new_itos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        match_embeds(&mut state, &old_itos, &new_itos).expect("match_embeds");

        // Map the reference's v2 names to canonical ones (this also checks that its
        // `0.encoder_dp.emb.weight` equals `0.encoder.weight`).
        let reference = reference_params();
        let n_reference = reference.len();
        let (reference, report) = normalize_keys(reference).expect("reference keys");
        assert_eq!(report.dropped, ["0.encoder_dp.emb.weight"]);
        assert_eq!(reference.len() + 1, n_reference);
        assert_eq!(
            state.keys().collect::<Vec<_>>(),
            reference.keys().collect::<Vec<_>>()
        );
        let mut worst = 0f32;
        for (name, want) in reference.iter() {
            let got = state.get(name).unwrap();
            assert_eq!(got.shape, want.shape, "{name}");
            for (i, (a, b)) in got.data.iter().zip(&want.data).enumerate() {
                let d = (a - b).abs();
                assert!(d <= 1e-5, "{name}[{i}]: ours {a}, fastai {b}");
                worst = worst.max(d);
            }
        }
        eprintln!(
            "match_embeds parity: {} tensors, max abs diff {worst:e}",
            reference.len()
        );
    }

    fn toy_state(bias: bool) -> StateDict {
        let mut sd = StateDict::new();
        // Rows: a = [0, 1], b = [2, 3], a = [4, 5] (duplicate), c = [6, 7].
        let emb = RawTensor::new(vec![4, 2], (0..8).map(|x| x as f32).collect()).unwrap();
        sd.insert(ENCODER_WEIGHT, emb.clone());
        sd.insert(DECODER_WEIGHT, emb);
        if bias {
            let b = RawTensor::new(vec![4], vec![1.0, 2.0, 3.0, 6.0]).unwrap();
            sd.insert(DECODER_BIAS, b);
        }
        sd
    }

    #[test]
    fn copies_by_string_last_duplicate_wins_unseen_get_means() {
        let mut sd = toy_state(true);
        let old = strings(&["a", "b", "a", "c"]);
        let new = strings(&["c", "a", "new", "xxfake", "b"]);
        match_embeds(&mut sd, &old, &new).unwrap();
        let emb = sd.get(ENCODER_WEIGHT).unwrap();
        assert_eq!(emb.shape, [5, 2]);
        let mean = [3.0, 4.0];
        assert_eq!(
            emb.data,
            [
                6.0, 7.0, 4.0, 5.0, mean[0], mean[1], mean[0], mean[1], 2.0, 3.0
            ]
        );
        assert_eq!(sd.get(DECODER_WEIGHT), Some(emb));
        assert_eq!(
            sd.get(DECODER_BIAS).unwrap().data,
            [6.0, 3.0, 3.0, 3.0, 2.0]
        );
    }

    #[test]
    fn without_bias_or_decoder_writes_only_what_exists() {
        let mut sd = toy_state(false);
        sd.remove(DECODER_WEIGHT);
        let old = strings(&["a", "b", "a", "c"]);
        match_embeds(&mut sd, &old, &strings(&["b"])).unwrap();
        assert_eq!(sd.keys().collect::<Vec<_>>(), [ENCODER_WEIGHT]);
        assert_eq!(sd.get(ENCODER_WEIGHT).unwrap().data, [2.0, 3.0]);
    }

    #[test]
    fn vocab_length_must_match_embedding_rows() {
        let mut sd = toy_state(true);
        let before = sd.clone();
        let err = match_embeds(&mut sd, &strings(&["a", "b", "c"]), &strings(&["a"]));
        assert!(matches!(
            err,
            Err(FastaiError::VocabMismatch {
                vocab_len: 3,
                rows: 4,
                ..
            })
        ));
        assert_eq!(sd, before, "nothing is written on error");
        let mut bad_bias = toy_state(true);
        bad_bias.insert(DECODER_BIAS, RawTensor::zeros(vec![3]));
        let old = strings(&["a", "b", "a", "c"]);
        assert!(matches!(
            match_embeds(&mut bad_bias, &old, &old),
            Err(FastaiError::Shape { .. })
        ));
        assert!(matches!(
            match_embeds(&mut StateDict::new(), &old, &old),
            Err(FastaiError::MissingKeys { .. })
        ));
    }
}
