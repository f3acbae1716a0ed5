//! The fastai parity checks (the same ones `examples/fastai_parity.rs` prints), on every CPU
//! backend this build has. The fixtures come from `shared/fixtures/fastai` (or
//! `$ULMFIT_FIXTURES`); without them every test fails and says how to get them.

use ulmfit::parity::{self, CheckResult};

fn devices() -> Vec<(String, burn::tensor::Device)> {
    ulmfit::device::available()
        .into_iter()
        .filter(|d| *d != "cuda")
        .map(|d| (d.to_string(), ulmfit::device::parse(d).expect("device")))
        .collect()
}

fn fixtures() -> std::path::PathBuf {
    let dir = parity::fixtures_dir();
    assert!(
        dir.join("meta.json").is_file(),
        "fastai fixtures not found at {}: they come with the project's shared/ folder \
         (../shared/fixtures/fastai); set ULMFIT_FIXTURES to their directory or regenerate them \
         with generate.py there",
        dir.display()
    );
    dir
}

fn assert_pass(results: Vec<CheckResult>) {
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.pass)
        .map(|r| serde_json::to_string(r).unwrap_or_default())
        .collect();
    assert!(failed.is_empty(), "failed checks:\n{}", failed.join("\n"));
}

macro_rules! model_check {
    ($name:ident, $f:path) => {
        #[test]
        fn $name() {
            let dir = fixtures();
            for (dev, device) in devices() {
                let r = $f(&dir, &device);
                assert!(
                    r.pass,
                    "{dev}: {}",
                    serde_json::to_string(&r).unwrap_or_default()
                );
            }
        }
    };
}

model_check!(lm_eval, parity::model::lm_eval);
model_check!(lm_train_grads, parity::model::lm_train_grads);
model_check!(clas_eval, parity::model::clas_eval);
model_check!(clas_train_grads, parity::model::clas_train_grads);
model_check!(wt103_like, parity::model::wt103_like);
model_check!(pretrained_adapted, parity::model::pretrained_adapted);
model_check!(adam_steps, parity::train::adam_steps);

#[test]
fn pipeline_checks() {
    assert_pass(parity::pipeline_checks(&fixtures()));
}
