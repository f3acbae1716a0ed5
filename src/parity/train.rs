//! Parity checks of training: fastai's Adam over the LM's layer groups.

use std::path::Path;

use burn::optim::GradientsParams;
use burn::tensor::Device;

use super::fixture::Fixture;
use super::model::{GRAD_TOL, load_lm_for_training};
use super::report::{CheckResult, Comparison, failed};
use crate::train::groups::language_model_groups;
use crate::train::loss::lm_cross_entropy;
use crate::train::optimizer::{Optimizer, OptimizerConfig};
use crate::weights::language_model_state_dict;

/// `adam_steps`: two steps of fastai's Adam (wd 0.01, mom 0.9, sqr_mom 0.99, eps 1e-5) over the
/// four LM layer groups with the recorded discriminative rates; losses and every parameter.
pub fn adam_steps(dir: &Path, device: &Device) -> CheckResult {
    let name = "adam_steps";
    let run = || -> Result<CheckResult, String> {
        let device = device.clone().autodiff();
        let mut lm = load_lm_for_training(dir, &device)?;
        let fx =
            Fixture::read(&dir.join("lm_adam_steps.safetensors")).map_err(|e| e.to_string())?;
        let ev = Fixture::read(&dir.join("lm_eval.safetensors")).map_err(|e| e.to_string())?;
        let tg =
            Fixture::read(&dir.join("lm_train_grads.safetensors")).map_err(|e| e.to_string())?;
        let lrs: Vec<f64> = fx
            .get("group_lrs")
            .map_err(|e| e.to_string())?
            .floats
            .iter()
            .map(|v| f64::from(*v))
            .collect();
        let input = ev.get("input0").map_err(|e| e.to_string())?;
        let target = tg.get("target0").map_err(|e| e.to_string())?;
        let groups = language_model_groups(&lm);
        if groups.len() != lrs.len() {
            return Err(format!(
                "{} layer groups but {} recorded rates",
                groups.len(),
                lrs.len()
            ));
        }
        let mut opt = Optimizer::new(OptimizerConfig::default());
        let mut cmp = Comparison::relative(name, GRAD_TOL);
        for step in 1..=2 {
            let out = lm.forward(super::model::int_tensor(input, &device), None);
            let loss = lm_cross_entropy(out.logits, super::model::int_tensor(target, &device));
            let want = fx
                .get(&format!("step{step}.loss"))
                .map_err(|e| e.to_string())?;
            cmp.compare(
                &format!("step{step}.loss"),
                &super::model::floats(loss.clone()),
                &want.floats,
            );
            let grads = GradientsParams::from_grads(loss.backward(), &lm);
            lm = opt.step(lm, grads, &groups, &lrs, 0.9, None).0;
            let sd = language_model_state_dict(&lm);
            for (pname, raw) in sd.iter() {
                let key = format!("step{step}.param.{pname}");
                let want = fx.get(&key).map_err(|e| e.to_string())?;
                cmp.compare(&key, &raw.data, &want.floats);
            }
        }
        Ok(cmp.finish("losses and every parameter after each of two Adam steps, 4 groups"))
    };
    run().unwrap_or_else(|e| failed(name, GRAD_TOL, e))
}
