//! One-call loaders: file -> canonical state dict + vocabulary + sizes.

use std::path::Path;

use super::keys::ModelKind;
use super::{
    AwdLstmDims, ClassifierHeadDims, FastaiError, StateDict, fill_missing_decoder_bias,
    infer_awd_lstm_dims, infer_classifier_head, normalize_keys, read_itos, read_pth,
};

/// Load fastai language-model weights (e.g. WikiText-103 `lstm_fwd.pth` + `itos_wt103.pkl`).
///
/// Reads the `.pth` (zip or legacy container, bare state dict or learner save), maps its keys
/// to the canonical naming ([`keys`](super::keys)), infers and checks the sizes, checks that
/// the vocabulary has one token per embedding row, and inserts a zero decoder bias for 0.7
/// files (the returned `dims.decoder_bias` still says whether the file had one). An
/// encoder-only file (`save_encoder`) is accepted too (`dims.has_decoder == false`); a
/// classifier state dict is refused with [`FastaiError::WrongModelKind`].
///
/// To fine-tune on another vocabulary, follow with [`match_embeds`](super::match_embeds).
pub fn load_fastai_lm(
    pth_path: impl AsRef<Path>,
    itos_path: impl AsRef<Path>,
) -> Result<(StateDict, Vec<String>, AwdLstmDims), FastaiError> {
    let (state, kind) = read_canonical(pth_path.as_ref())?;
    if kind == ModelKind::Classifier {
        return Err(FastaiError::WrongModelKind {
            expected: "language-model",
            found: kind.name(),
        });
    }
    let (mut state, itos, dims) = check_vocab(state, itos_path.as_ref())?;
    fill_missing_decoder_bias(&mut state, &dims);
    Ok((state, itos, dims))
}

/// Load fastai text-classifier weights (`learn.save` of a `text_classifier_learner`, v2, v1
/// or 0.7 naming) and the vocabulary it was trained with.
///
/// Like [`load_fastai_lm`], plus the head sizes. A language-model or encoder-only state dict
/// is refused with [`FastaiError::WrongModelKind`].
pub fn load_fastai_classifier(
    pth_path: impl AsRef<Path>,
    itos_path: impl AsRef<Path>,
) -> Result<(StateDict, Vec<String>, AwdLstmDims, ClassifierHeadDims), FastaiError> {
    let (state, kind) = read_canonical(pth_path.as_ref())?;
    if kind != ModelKind::Classifier {
        return Err(FastaiError::WrongModelKind {
            expected: "classifier",
            found: kind.name(),
        });
    }
    let (state, itos, dims) = check_vocab(state, itos_path.as_ref())?;
    let head = infer_classifier_head(&state, &dims)?;
    Ok((state, itos, dims, head))
}

fn read_canonical(path: &Path) -> Result<(StateDict, ModelKind), FastaiError> {
    let (state, report) = normalize_keys(read_pth(path)?)?;
    Ok((state, report.kind))
}

fn check_vocab(
    state: StateDict,
    itos_path: &Path,
) -> Result<(StateDict, Vec<String>, AwdLstmDims), FastaiError> {
    let dims = infer_awd_lstm_dims(&state)?;
    let itos = read_itos(itos_path)?;
    if itos.len() != dims.vocab_size {
        return Err(FastaiError::VocabMismatch {
            which: "itos",
            vocab_len: itos.len(),
            rows: dims.vocab_size,
        });
    }
    Ok((state, itos, dims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastai::keys::{DECODER_BIAS, ENCODER_WEIGHT};
    use crate::fastai::test_support::{fixture, itos_file, legacy_file, v2_lm_entries};

    #[test]
    fn loads_zip_lm_and_its_vocab() {
        let (state, itos, dims) =
            load_fastai_lm(fixture("lm.pth"), fixture("lm_itos.pkl")).expect("loads");
        assert_eq!(itos.len(), dims.vocab_size);
        assert_eq!(state.len(), 1 + 4 * dims.n_layers + 2);
        assert!(dims.has_decoder && dims.decoder_bias && dims.tied_decoder);
        assert_eq!(
            state.get(ENCODER_WEIGHT).unwrap().shape,
            [dims.vocab_size, dims.emb_size]
        );
    }

    #[test]
    fn loads_legacy_v1_lm_and_its_vocab() {
        let (state, itos, dims) = load_fastai_lm(
            fixture("wt103_like_lstm_fwd.pth"),
            fixture("wt103_like_itos.pkl"),
        )
        .expect("loads");
        assert_eq!(itos.len(), dims.vocab_size);
        assert_eq!(state.len(), 1 + 4 * dims.n_layers + 2);
        // Vocabulary of another model: refused.
        assert!(matches!(
            load_fastai_lm(fixture("wt103_like_lstm_fwd.pth"), fixture("lm_itos.pkl")),
            Err(FastaiError::VocabMismatch { which: "itos", .. })
        ));
    }

    #[test]
    fn loads_classifier_with_head_sizes() {
        let (state, itos, dims, head) =
            load_fastai_classifier(fixture("clas.pth"), fixture("lm_itos.pkl")).expect("loads");
        assert_eq!(itos.len(), dims.vocab_size);
        assert_eq!(head.layers[0], 3 * dims.emb_size);
        assert_eq!(
            state.len(),
            1 + 4 * dims.n_layers + 6 * (head.layers.len() - 1)
        );
    }

    #[test]
    fn kinds_are_checked() {
        assert!(matches!(
            load_fastai_lm(fixture("clas.pth"), fixture("lm_itos.pkl")),
            Err(FastaiError::WrongModelKind {
                found: "classifier",
                ..
            })
        ));
        assert!(matches!(
            load_fastai_classifier(fixture("lm.pth"), fixture("lm_itos.pkl")),
            Err(FastaiError::WrongModelKind {
                found: "language-model",
                ..
            })
        ));
    }

    #[test]
    fn fastai_07_lm_gets_a_zero_decoder_bias() {
        let entries: Vec<_> = v2_lm_entries("0.", (5, 2, 3, 2), true)
            .into_iter()
            .filter(|(k, _)| k != DECODER_BIAS)
            .map(|(k, v)| {
                let k = k
                    .replace("encoder_dp.emb", "encoder_with_dropout.embed")
                    .replace("weight_hh_l0_raw", "module.weight_hh_l0_raw");
                (k, v)
            })
            .collect();
        let file = legacy_file("fwd_wt103.h5", entries);
        let itos = itos_file(5);
        let (state, _, dims) = load_fastai_lm(file.path(), itos.path()).expect("loads");
        assert!(dims.has_decoder && !dims.decoder_bias);
        assert_eq!(state.get(DECODER_BIAS).unwrap().data, [0.0; 5]);
    }

    #[test]
    fn encoder_only_file_loads_as_lm_without_decoder() {
        let file = legacy_file("enc.pth", v2_lm_entries("", (5, 2, 3, 2), false));
        let itos = itos_file(5);
        let (state, _, dims) = load_fastai_lm(file.path(), itos.path()).expect("loads");
        assert!(!dims.has_decoder && !state.contains(DECODER_BIAS));
    }
}
