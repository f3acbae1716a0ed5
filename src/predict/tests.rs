use std::sync::Arc;

use super::*;
use crate::bundle::tests::tiny_bundle;
use burn::tensor::Int;

const TEXTS: [&str; 6] = [
    "Good movie!",
    "bad",
    "Very, very good. Very good movie, very bad movie. Good!",
    "",
    "   \n\t ",
    "xxpad xxpad",
];

fn model_probs(model: &TextClassifier, ids: &[u32]) -> Vec<f32> {
    let ids: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
    let x = Tensor::<2, Int>::from_data(
        TensorData::new(ids.clone(), [1, ids.len()]),
        &model.encoder.embedding.device(),
    );
    crate::test_util::to_vec(softmax(model.forward(x).logits, 1))
}

#[test]
fn batch_is_in_input_order_and_matches_single_texts() {
    // One bundle for the predictor and the direct check: tests share the device generator, so
    // two bundles built from one seed can differ when tests run in parallel.
    let bundle = tiny_bundle(Direction::Forward, 7);
    let p = Predictor::new(bundle.clone())
        .with_config(PredictorConfig {
            batch_size: 2,
            max_tokens: None,
        })
        .unwrap();
    let batch = p.predict_batch(&TEXTS).unwrap();
    assert_eq!(batch.len(), TEXTS.len());
    for (t, b) in TEXTS.iter().zip(&batch) {
        let one = p.predict(t).unwrap();
        crate::test_util::assert_close(&b.probabilities, &one.probabilities, 1e-6, t);
        assert!((b.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(b.label, p.labels()[b.label_index]);
        assert_eq!(b.label_index, argmax(&b.probabilities));
    }
    // Directly from the model: the tokenizer's ids, xxpad read as xxunk.
    let toks = bundle.tokenizer().tokenize(TEXTS[2]);
    let ids = bundle.vocab.numericalize(&toks);
    crate::test_util::assert_close(
        &batch[2].probabilities,
        &model_probs(&bundle.model, &ids),
        1e-6,
        "model",
    );
    let pad_text = bundle
        .vocab
        .numericalize(&bundle.tokenizer().tokenize(TEXTS[5]));
    assert_eq!(pad_text, [2, 1, 1]);
    crate::test_util::assert_close(
        &batch[5].probabilities,
        &model_probs(&bundle.model, &[2, 0, 0]),
        1e-6,
        "xxpad",
    );
    // Runs are bit-identical.
    assert_eq!(p.predict_batch(&TEXTS).unwrap(), batch);
}

#[test]
fn empty_and_whitespace_texts_are_the_bos_document() {
    let bundle = tiny_bundle(Direction::Forward, 8);
    let want = model_probs(&bundle.model, &[2]);
    let p = Predictor::new(bundle);
    for t in ["", " \n\t  "] {
        crate::test_util::assert_close(&p.predict(t).unwrap().probabilities, &want, 1e-6, t);
    }
    assert_eq!(p.predict_batch::<&str>(&[]).unwrap(), vec![]);
    assert!(matches!(
        p.predict_tokens(&[vec!["good".into()], vec![]]),
        Err(PredictError::NoTokens { index: 1 })
    ));
}

#[test]
fn backward_models_read_reversed_ids_and_ensembles_average() {
    let fwd = tiny_bundle(Direction::Forward, 9);
    let bwd = tiny_bundle(Direction::Backward, 10);
    let text = TEXTS[0];
    let mut ids = fwd.vocab.numericalize(&fwd.tokenizer().tokenize(text));
    let pf = model_probs(&fwd.model, &ids);
    ids.reverse();
    let pb = model_probs(&bwd.model, &ids);
    let back = Predictor::new(bwd.clone()).predict(text).unwrap();
    crate::test_util::assert_close(&back.probabilities, &pb, 1e-6, "backward");
    let both = Predictor::ensemble(fwd.clone(), bwd.clone()).unwrap();
    assert!(both.is_ensemble());
    let mean: Vec<f32> = pf.iter().zip(&pb).map(|(a, b)| (a + b) / 2.0).collect();
    crate::test_util::assert_close(
        &both.predict(text).unwrap().probabilities,
        &mean,
        1e-6,
        "mean",
    );
    // Directions swapped, labels differing: refused.
    assert!(matches!(
        Predictor::ensemble(bwd.clone(), fwd.clone()),
        Err(BundleError::WrongDirection { .. })
    ));
    let mut other = bwd;
    other.manifest.labels[0] = "z".into();
    assert!(matches!(
        Predictor::ensemble(fwd, other),
        Err(BundleError::EnsembleMismatch(_))
    ));
}

#[test]
fn max_tokens_keeps_the_first_tokens() {
    let bundle = tiny_bundle(Direction::Forward, 11);
    let ids = bundle
        .vocab
        .numericalize(&bundle.tokenizer().tokenize(TEXTS[2]));
    let want = model_probs(&bundle.model, &ids[..5]);
    let p = Predictor::new(bundle)
        .with_config(PredictorConfig {
            batch_size: 64,
            max_tokens: Some(5),
        })
        .unwrap();
    crate::test_util::assert_close(
        &p.predict(TEXTS[2]).unwrap().probabilities,
        &want,
        1e-6,
        "cap",
    );
    assert!(
        p.clone()
            .with_config(PredictorConfig {
                batch_size: 0,
                max_tokens: None
            })
            .is_err()
    );
}

#[test]
fn shared_between_threads() {
    let p = Arc::new(Predictor::new(tiny_bundle(Direction::Forward, 12)));
    let want = p.predict_batch(&TEXTS).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let p = Arc::clone(&p);
            std::thread::spawn(move || p.predict_batch(&TEXTS).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), want);
    }
}

/// bf16 recurrent weights move the probabilities by little and keep every label whose f32
/// margin exceeds that, on the reference device (weights rounded in f32) and on flex (bf16
/// tensors read by the row-streaming kernel), one document per batch and several.
fn bf16_keeps_labels_on(device: &burn::tensor::Device) {
    use burn::module::Module;
    let texts = [
        "Good movie!",
        "bad",
        "Very, very good. Very good movie, very bad movie. Good!",
        "movie movie bad good very",
        "good good good",
    ];
    let mut bundle = tiny_bundle(Direction::Forward, 11);
    bundle.model = bundle.model.to_device(device);
    for batch_size in [1, 64] {
        let config = PredictorConfig {
            batch_size,
            max_tokens: None,
        };
        let p = Predictor::new(bundle.clone())
            .with_config(config.clone())
            .unwrap();
        let q = p.clone().with_bf16_recurrent_weights();
        assert!(q.has_bf16_recurrent_weights() && !p.has_bf16_recurrent_weights());
        let (a, b) = (
            p.predict_batch(&texts).unwrap(),
            q.predict_batch(&texts).unwrap(),
        );
        assert!(a != b, "rounding the weights changes the probabilities");
        for (t, (a, b)) in texts.iter().zip(a.iter().zip(&b)) {
            crate::test_util::assert_close(&b.probabilities, &a.probabilities, 1e-2, t);
            let mut sorted = a.probabilities.clone();
            sorted.sort_by(|x, y| y.total_cmp(x));
            if sorted[0] - sorted[1] > 2e-2 {
                assert_eq!(a.label, b.label, "{t}");
            }
        }
    }
}

#[test]
fn bf16_recurrent_weights_keep_labels() {
    bf16_keeps_labels_on(&crate::test_util::test_device());
}

#[cfg(feature = "flex")]
#[test]
fn bf16_recurrent_weights_keep_labels_flex() {
    bf16_keeps_labels_on(&burn::tensor::Device::flex());
}
