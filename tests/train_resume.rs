//! Checkpoint -> resume gives the same parameters as an uninterrupted run with the same seed.
//!
//! Alone in its own test binary: burn's CPU backends draw dropout masks from one process-wide
//! generator, which tests running in parallel would share.

use ulmfit::nn::{AwdLstmConfig, LanguageModelConfig};
use ulmfit::train::learner::{LearnerConfig, Policy, epoch_dir};
use ulmfit::train::{LanguageModelLearner, LmLearnerConfig, LrSpec};

fn docs() -> Vec<Vec<u32>> {
    (0..8)
        .map(|d| (0..30).map(|i| 2 + ((d * 7 + i * 3) % 13) as u32).collect())
        .collect()
}

fn values(t: burn::tensor::Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32")
}

#[test]
fn resume_equals_uninterrupted_run() {
    let device = ulmfit::device::parse("ndarray")
        .expect("ndarray")
        .autodiff();
    let dir = std::env::temp_dir().join(format!("ulmfit-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    device.seed(11);
    // Dropout on (drop_mult 0.5): the masks are part of what must repeat.
    let init = LanguageModelConfig::new(
        AwdLstmConfig::new(16)
            .with_emb_size(8)
            .with_hidden_size(12)
            .with_n_layers(2)
            .with_drop_mult(0.5),
    )
    .with_output_p(0.05)
    .init(&device);
    let config = |checkpoints: bool| LmLearnerConfig {
        learner: LearnerConfig {
            bs: 4,
            seed: 3,
            progress: false,
            print_metrics: false,
            checkpoint_dir: checkpoints.then(|| dir.clone()),
            ..LearnerConfig::default()
        },
        seq_len: 6,
        backwards: false,
    };
    let mut a = LanguageModelLearner::new(init.clone(), docs(), vec![], config(true)).unwrap();
    a.fit_one_cycle(2, LrSpec::Float(1e-2)).unwrap();
    assert!(epoch_dir(&dir, 1).join("model.bpk").is_file());

    let mut b = LanguageModelLearner::new(init.clone(), docs(), vec![], config(false)).unwrap();
    b.resume_fit(
        &epoch_dir(&dir, 1),
        2,
        LrSpec::Float(1e-2),
        &Policy::one_cycle(),
    )
    .unwrap();
    assert_eq!(b.epochs_done(), 2);
    for l in 0..2 {
        assert_eq!(
            values(a.model.encoder.rnns[l].forward.weight_hh.val()),
            values(b.model.encoder.rnns[l].forward.weight_hh.val()),
            "layer {l}"
        );
    }
    assert_eq!(
        values(a.model.encoder.embedding.val()),
        values(b.model.encoder.embedding.val())
    );
    // The run did move the weights.
    assert_ne!(
        values(init.encoder.embedding.val()),
        values(a.model.encoder.embedding.val())
    );
    let _ = std::fs::remove_dir_all(&dir);
}
