//! Language-model pretraining and fine-tuning (ULMFiT stages 1 and 2).
//!
//! ```text
//! let mut learn = LanguageModelLearner::new(lm, train_docs, valid_docs, LmLearnerConfig::default())?;
//! learn.freeze();                                         // only the embedding/decoder group
//! learn.fit_one_cycle(1, 1e-2.into())?;
//! learn.unfreeze();
//! learn.fit_one_cycle(10, 1e-3.into())?;
//! learn.save_encoder("encoder.bpk".as_ref())?;
//! ```

use std::path::Path;
use std::sync::Arc;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::groups::{LayerGroups, language_model_groups};
use super::learner::{
    self, FitPlan, LearnerConfig, LrFindResult, Policy, Progress, Reporter, TrainError, at_step,
    begin_epoch, check_finite, default_mom, epoch_dir, lr_find_loop, prune_checkpoints, seconds,
    write_checkpoint,
};
use super::log::EpochRecord;
use super::loss::{activation_reg, lm_cross_entropy, temporal_activation_reg};
use super::lr_find::LrFinder;
use super::metrics::perplexity;
use super::optimizer::Optimizer;
use super::parallel::{DataParallel, materialize, take_rows};
use super::schedule::LrSpec;
use crate::data::{LmBatch, LmDataLoader, LmLoaderConfig};
use crate::nn::{AwdLstmState, LanguageModel};

/// Settings of a [`LanguageModelLearner`].
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LmLearnerConfig {
    /// Shared learner settings.
    pub learner: LearnerConfig,
    /// Tokens per batch row (fastai v2 `seq_len`: 72; the paper's BPTT: 70).
    pub seq_len: usize,
    /// Train on reversed documents (the backward model of the paper's ensemble).
    pub backwards: bool,
}

impl Default for LmLearnerConfig {
    fn default() -> Self {
        Self {
            learner: LearnerConfig::default(),
            seq_len: 72,
            backwards: false,
        }
    }
}

/// Validation metrics of a language model.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct LmMetrics {
    /// Mean cross-entropy per token.
    pub loss: f64,
    /// Next-token accuracy.
    pub accuracy: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
}

/// Trains an AWD-LSTM language model with fastai's recipe.
pub struct LanguageModelLearner {
    /// The model (on an autodiff device).
    pub model: LanguageModel,
    /// Its layer groups (fastai `awd_lstm_lm_split`).
    pub groups: LayerGroups,
    /// The optimizer and its state.
    pub optimizer: Optimizer,
    /// Settings.
    pub config: LmLearnerConfig,
    /// Metrics of every epoch trained so far.
    pub history: Vec<EpochRecord>,
    train: Arc<[Vec<u32>]>,
    valid: Arc<[Vec<u32>]>,
    frozen: usize,
    epochs_done: usize,
    parallel: DataParallel,
}

/// The carried hidden state of each data-parallel shard (one entry per device in use).
type ShardStates = Vec<Option<AwdLstmState>>;

fn ids(data: Vec<i64>, rows: usize, cols: usize, device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(data, [rows, cols]), device)
}

impl LanguageModelLearner {
    /// A learner over numericalised documents (each starting with `xxbos`, as fastai makes them).
    /// The model must be on an autodiff device.
    pub fn new(
        model: LanguageModel,
        train: Vec<Vec<u32>>,
        valid: Vec<Vec<u32>>,
        config: LmLearnerConfig,
    ) -> Result<Self, TrainError> {
        if !model.encoder.embedding.device().is_autodiff() {
            return Err(TrainError::NotAutodiff);
        }
        materialize(&model);
        let groups = language_model_groups(&model);
        let parallel = DataParallel::single(model.encoder.embedding.device());
        Ok(Self {
            optimizer: Optimizer::new(config.learner.optimizer.clone()),
            model,
            groups,
            config,
            history: vec![],
            train: train.into(),
            valid: valid.into(),
            frozen: 0,
            epochs_done: 0,
            parallel,
        })
    }

    /// Trains data-parallel on `devices` (see [`DataParallel`]): the first must be the device
    /// the model lives on; each batch's rows are split across them. The hidden state of each
    /// shard is carried on its device, so the result equals one device's up to rounding.
    pub fn set_devices(&mut self, devices: Vec<Device>) -> Result<(), TrainError> {
        learner::set_devices(self, devices)
    }

    /// The devices training runs on (the model's alone unless [`set_devices`](Self::set_devices)).
    pub fn devices(&self) -> &[Device] {
        self.parallel.devices()
    }

    /// fastai's `freeze_to(n)`: groups before `n` (negative: counted from the end) get no
    /// gradient; the optimizer state is reset.
    pub fn freeze_to(&mut self, n: isize) {
        learner::freeze_to(self, n);
    }

    /// Trains only the last group (for a language model: the embedding and decoder).
    pub fn freeze(&mut self) {
        self.freeze_to(-1);
    }

    /// Trains every group.
    pub fn unfreeze(&mut self) {
        self.freeze_to(0);
    }

    /// Number of frozen groups.
    pub fn frozen_groups(&self) -> usize {
        self.frozen
    }

    /// fastai's `fit_one_cycle(epochs, lr)` with the text learners' momentum cycle.
    pub fn fit_one_cycle(
        &mut self,
        epochs: usize,
        lr: LrSpec,
    ) -> Result<Vec<EpochRecord>, TrainError> {
        self.fit(epochs, lr, &Policy::one_cycle())
    }

    /// The paper's slanted triangular learning rates over `epochs`.
    pub fn fit_stlr(&mut self, epochs: usize, lr: LrSpec) -> Result<Vec<EpochRecord>, TrainError> {
        self.fit(epochs, lr, &Policy::stlr())
    }

    fn loader(
        &self,
        docs: &Arc<[Vec<u32>]>,
        shuffle_seed: Option<u64>,
    ) -> Result<LmDataLoader<Arc<[Vec<u32>]>>, TrainError> {
        let mut cfg = LmLoaderConfig::new(self.config.learner.bs, self.config.seq_len)
            .with_backwards(self.config.backwards);
        if let Some(seed) = shuffle_seed {
            cfg = cfg.with_shuffle(seed);
        }
        Ok(LmDataLoader::new(Arc::clone(docs), cfg)?)
    }

    /// Trains for `epochs` with `policy`; prints and logs metrics per epoch. On a NaN or
    /// infinite loss it stops with [`TrainError::NonFiniteLoss`] and keeps the last good
    /// parameters.
    pub fn fit(
        &mut self,
        epochs: usize,
        lr: LrSpec,
        policy: &Policy,
    ) -> Result<Vec<EpochRecord>, TrainError> {
        self.fit_from(epochs, lr, policy, 0)
    }

    /// Continues a fit of `epochs` interrupted after a checkpoint: loads the checkpoint and
    /// trains the remaining epochs with the schedule where it stopped. With the same seed the
    /// result equals the uninterrupted run.
    pub fn resume_fit(
        &mut self,
        dir: &Path,
        epochs: usize,
        lr: LrSpec,
        policy: &Policy,
    ) -> Result<Vec<EpochRecord>, TrainError> {
        let done = self.resume(dir)?;
        self.fit_from(epochs, lr, policy, done)
    }

    fn fit_from(
        &mut self,
        epochs: usize,
        lr: LrSpec,
        policy: &Policy,
        first_epoch: usize,
    ) -> Result<Vec<EpochRecord>, TrainError> {
        let cfg = self.config.learner.clone();
        let _autocast = cfg.bf16.then(crate::ops::autocast::bf16_autocast);
        let n_iter = self.loader(&self.train, None)?.len();
        if n_iter == 0 {
            return Err(TrainError::NoData(format!(
                "{} training tokens do not fill batches of {} rows",
                self.train.iter().map(Vec::len).sum::<usize>(),
                cfg.bs
            )));
        }
        let plan = FitPlan::new(&lr, policy, &cfg, self.groups.len(), epochs, n_iter)?;
        let mut reporter = Reporter::new(&cfg);
        let mut records = vec![];
        for epoch in first_epoch..epochs {
            let global_epoch = self.epochs_done;
            let (seed, bar, start) = begin_epoch(&self.parallel, &cfg, global_epoch, n_iter);
            let mut loader = self.loader(&self.train, Some(seed))?;
            let mut states: ShardStates = vec![];
            let (mut loss_sum, mut count) = (0.0f64, 0usize);
            for (b, batch) in loader.epoch().enumerate() {
                let (step, lrs, mom) = plan.at(epoch, b);
                let (loss, new_states) = self
                    .train_step(&batch, states, &lrs, mom)
                    .map_err(|e| at_step(e, global_epoch, step))?;
                states = new_states;
                let n = batch.bs * batch.seq_len;
                loss_sum += loss * n as f64;
                count += n;
                bar.inc(1);
            }
            bar.finish_and_clear();
            let valid = self.validate()?;
            let rec = EpochRecord {
                epoch: global_epoch,
                train_loss: loss_sum / count.max(1) as f64,
                valid_loss: valid.map(|m| m.loss),
                metrics: valid
                    .map(|m| {
                        vec![
                            ("accuracy".into(), m.accuracy),
                            ("perplexity".into(), m.perplexity),
                        ]
                    })
                    .unwrap_or_default(),
                seconds: seconds(start),
            };
            reporter.report(&rec)?;
            self.history.push(rec.clone());
            records.push(rec);
            self.epochs_done += 1;
            if let Some(dir) = &cfg.checkpoint_dir {
                self.write_checkpoint(&epoch_dir(dir, self.epochs_done), epoch + 1)?;
                prune_checkpoints(dir);
            }
        }
        Ok(records)
    }

    /// Writes a checkpoint (weights, optimizer state, epochs done, frozen groups, history).
    pub fn save_checkpoint(&self, dir: &Path) -> Result<(), TrainError> {
        self.write_checkpoint(dir, 0)
    }

    fn write_checkpoint(&self, dir: &Path, fit_epochs_done: usize) -> Result<(), TrainError> {
        write_checkpoint(
            dir,
            &self.model,
            &self.optimizer,
            &Progress {
                epochs_done: self.epochs_done,
                frozen: self.frozen,
                history: self.history.clone(),
                fit_epochs_done,
            },
        )
    }

    /// Resumes from a checkpoint written by [`save_checkpoint`](Self::save_checkpoint) (or by
    /// `fit` with `checkpoint_dir`) for the same architecture. Returns the epochs of the
    /// interrupted fit that were completed.
    pub fn resume(&mut self, dir: &Path) -> Result<usize, TrainError> {
        learner::resume_learner(self, dir)
    }

    /// One optimisation step (data-parallel over the learner's devices); returns the batch's
    /// cross-entropy and the carried state of every shard.
    fn train_step(
        &mut self,
        batch: &LmBatch,
        states: ShardStates,
        lrs: &[f64],
        mom: f64,
    ) -> Result<(f64, ShardStates), TrainError> {
        let cfg = &self.config.learner;
        let (bs, sl) = (batch.bs, batch.seq_len);
        let shards = self.parallel.shards(bs);
        let mut states = states;
        states.resize(shards.len(), None);
        let inputs: Vec<_> = shards.into_iter().zip(states).collect();
        let (grads, outs) =
            self.parallel
                .run(&self.model, inputs, |model, (rows, state), device| {
                    let n = rows.len();
                    let x = ids(take_rows(&batch.x, sl, &rows), n, sl, device);
                    let y = ids(take_rows(&batch.y, sl, &rows), n, sl, device);
                    let out = model.forward(x, state);
                    let ce = lm_cross_entropy(out.logits, y);
                    let ce_value = ce.clone().into_scalar::<f32>();
                    check_finite(ce_value, 0, 0)?;
                    let mut loss = ce;
                    if cfg.ar_alpha != 0.0 {
                        loss = loss + activation_reg(out.dropped, cfg.ar_alpha);
                    }
                    if cfg.tar_beta != 0.0 {
                        loss = loss + temporal_activation_reg(out.raw, cfg.tar_beta);
                    }
                    // A shard's mean loss weighted by its share of the rows: the summed gradients
                    // are those of the whole batch's mean.
                    let share = n as f64 / bs as f64;
                    if n != bs {
                        loss = loss.mul_scalar(share);
                    }
                    let grads = GradientsParams::from_grads(loss.backward(), &model);
                    Ok((grads, (f64::from(ce_value) * share, Some(out.state))))
                })?;
        let (model, _) =
            self.optimizer
                .step(self.model.clone(), grads, &self.groups, lrs, mom, cfg.clip);
        self.model = model;
        let (losses, states): (Vec<f64>, ShardStates) = outs.into_iter().unzip();
        Ok((losses.iter().sum(), states))
    }

    /// fastai's `lr_find`: trains on batches with an exponentially growing rate (the same for
    /// every group) and records the smoothed loss; the model and optimizer are restored after.
    pub fn lr_find(&mut self, finder: LrFinder) -> Result<LrFindResult, TrainError> {
        let (model, optimizer) = (self.model.clone(), self.optimizer.clone());
        let n = self.groups.len();
        let mom = default_mom(&self.config.learner);
        let seed = self.config.learner.seed;
        let mut loader = self.loader(&self.train, Some(seed))?;
        let mut batches: Vec<LmBatch> = vec![];
        let mut states: ShardStates = vec![];
        let result = lr_find_loop(finder, |i, lr| {
            if batches.is_empty() {
                batches = loader.epoch().collect();
                batches.reverse();
                states.clear();
            }
            let Some(batch) = batches.pop() else {
                return Ok(None);
            };
            let _ = i;
            match self.train_step(&batch, std::mem::take(&mut states), &vec![lr; n], mom) {
                Ok((loss, st)) => {
                    states = st;
                    Ok(Some(loss))
                }
                Err(TrainError::NonFiniteLoss { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        self.model = model;
        self.optimizer = optimizer;
        result
    }

    /// Loss, next-token accuracy and perplexity on the validation documents (`None` without any).
    pub fn validate(&self) -> Result<Option<LmMetrics>, TrainError> {
        let mut loader = self.loader(&self.valid, None)?;
        if loader.is_empty() {
            return Ok(None);
        }
        let model = self.model.valid();
        let device = model.encoder.embedding.device();
        let mut state = None;
        let (mut loss_sum, mut correct, mut count) = (0.0f64, 0.0f64, 0usize);
        for batch in loader.epoch() {
            let (bs, sl) = (batch.bs, batch.seq_len);
            let x = ids(batch.x, bs, sl, &device);
            let y = ids(batch.y, bs, sl, &device);
            let out = model.forward(x, state);
            state = Some(out.state);
            let n = bs * sl;
            let pred = out.logits.clone().argmax(2).reshape([bs, sl]);
            correct += pred.equal(y.clone()).int().sum().into_scalar::<i64>() as f64;
            loss_sum += f64::from(lm_cross_entropy(out.logits, y).into_scalar::<f32>()) * n as f64;
            count += n;
        }
        let loss = loss_sum / count as f64;
        Ok(Some(LmMetrics {
            loss,
            accuracy: correct / count as f64,
            perplexity: perplexity(loss),
        }))
    }

    /// Saves the whole language model (burnpack, atomically).
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        Ok(crate::weights::save_module(self.model.clone(), path)?)
    }

    /// Saves the encoder alone, for a classifier (fastai `save_encoder`).
    pub fn save_encoder(&self, path: &Path) -> Result<(), TrainError> {
        Ok(crate::weights::save_module(
            self.model.encoder.clone(),
            path,
        )?)
    }

    /// Epochs trained so far.
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }
}

impl learner::HasParts for LanguageModelLearner {
    type Model = LanguageModel;

    fn split(model: &LanguageModel) -> LayerGroups {
        language_model_groups(model)
    }

    fn parts(&mut self) -> learner::Parts<'_, LanguageModel> {
        learner::Parts {
            model: &mut self.model,
            groups: &mut self.groups,
            optimizer: &mut self.optimizer,
            history: &mut self.history,
            frozen: &mut self.frozen,
            epochs_done: &mut self.epochs_done,
            parallel: &mut self.parallel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{AwdLstmConfig, LanguageModelConfig};
    use crate::test_util::{test_device, to_vec};

    fn tiny(device: &Device, drop: f64) -> LanguageModel {
        let model = LanguageModelConfig::new(
            AwdLstmConfig::new(16)
                .with_emb_size(16)
                .with_hidden_size(32)
                .with_n_layers(2)
                .with_drop_mult(drop),
        )
        .with_output_p(0.1 * drop)
        .init(device);
        crate::test_util::reinit_params(model, 1)
    }

    /// Documents of a repeating 6-token cycle, each starting at another phase.
    fn cycle_docs(n: usize, len: usize) -> Vec<Vec<u32>> {
        (0..n)
            .map(|d| (0..len).map(|i| 2 + ((d + i) % 6) as u32).collect())
            .collect()
    }

    fn config(seed: u64) -> LmLearnerConfig {
        LmLearnerConfig {
            learner: LearnerConfig {
                bs: 4,
                seed,
                progress: false,
                print_metrics: false,
                ..LearnerConfig::default()
            },
            seq_len: 8,
            backwards: false,
        }
    }

    #[test]
    fn learns_a_repeating_sequence() {
        let _serial = crate::test_util::serial();
        let device = test_device().autodiff();
        device.seed(1);
        let mut learn = LanguageModelLearner::new(
            tiny(&device, 0.0),
            cycle_docs(16, 40),
            cycle_docs(4, 40),
            config(0),
        )
        .unwrap();
        learn.fit_one_cycle(6, LrSpec::Float(2e-2)).unwrap();
        let m = learn.validate().unwrap().unwrap();
        // Document boundaries are unpredictable (a new phase starts); everything else is not.
        assert!(m.accuracy > 0.9, "{m:?}");
        assert!(m.loss < 0.5, "{m:?}");
        assert_eq!(learn.history.len(), 6);
    }

    /// Data-parallel over two CPU devices (ndarray and flex, burn's forks, transfers and
    /// gradient accumulation) trains the same model as one device: without dropout the two
    /// runs differ only by rounding, carried hidden state, AR and TAR included.
    #[cfg(feature = "flex")]
    #[test]
    fn data_parallel_on_two_devices_matches_one_device() {
        let _serial = crate::test_util::serial();
        use burn::module::ModuleVisitor;
        use burn::module::Param;

        struct Collect(Vec<f32>);
        impl ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.0.extend(to_vec(param.val()));
            }
        }
        let params = |learn: &LanguageModelLearner| {
            let mut c = Collect(vec![]);
            learn.model.visit(&mut c);
            c.0
        };
        let main = test_device().autodiff();
        let other = Device::flex().autodiff();
        // One initial model for both runs (tests running alongside share the generator).
        let init = tiny(&main, 0.0);
        materialize(&init);
        let run = |devices: Vec<Device>| {
            let mut learn = LanguageModelLearner::new(
                init.clone(),
                cycle_docs(10, 30),
                cycle_docs(2, 30),
                // 5 rows: an uneven 3 + 2 split.
                LmLearnerConfig {
                    learner: LearnerConfig {
                        bs: 5,
                        ..config(0).learner
                    },
                    ..config(0)
                },
            )
            .unwrap();
            learn.set_devices(devices).unwrap();
            let rec = learn.fit_one_cycle(2, LrSpec::Float(1e-2)).unwrap();
            (params(&learn), rec)
        };
        let (one, rec_one) = run(vec![main.clone()]);
        let (two, rec_two) = run(vec![main.clone(), other]);
        assert_eq!(one.len(), two.len());
        let worst = one
            .iter()
            .zip(&two)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "largest parameter difference {worst}");
        let moved = one
            .iter()
            .zip(&params(
                &LanguageModelLearner::new(init.clone(), vec![], vec![], config(0)).unwrap(),
            ))
            .any(|(a, b)| a != b);
        assert!(moved, "training changed the parameters");
        for (a, b) in rec_one.iter().zip(&rec_two) {
            assert!((a.train_loss - b.train_loss).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn devices_must_start_with_the_models() {
        let _serial = crate::test_util::serial();
        let device = test_device().autodiff();
        let mut learn =
            LanguageModelLearner::new(tiny(&device, 0.0), cycle_docs(4, 20), vec![], config(0))
                .unwrap();
        assert_eq!(learn.devices(), std::slice::from_ref(&device));
        assert!(learn.set_devices(vec![device]).is_ok());
        assert!(matches!(
            learn.set_devices(vec![test_device()]),
            Err(TrainError::Devices(_))
        ));
    }

    #[test]
    fn lr_find_suggests_and_restores_the_model() {
        let _serial = crate::test_util::serial();
        let device = test_device().autodiff();
        let mut learn =
            LanguageModelLearner::new(tiny(&device, 0.0), cycle_docs(16, 40), vec![], config(0))
                .unwrap();
        let before = to_vec(learn.model.encoder.embedding.val());
        let finder = LrFinder {
            num_it: 40,
            ..LrFinder::default()
        };
        let r = learn.lr_find(finder).unwrap();
        assert!(r.lrs.len() >= 6 && r.lrs.len() <= 40);
        assert!(r.lrs.windows(2).all(|w| w[1] > w[0]), "rates grow");
        let lr = r.suggestion.expect("a suggestion");
        assert!(lr > 1e-7 && lr < 10.0);
        assert_eq!(
            to_vec(learn.model.encoder.embedding.val()),
            before,
            "model restored"
        );
        let svg = std::env::temp_dir().join(format!("ulmfit-lrfind-{}.svg", std::process::id()));
        r.write_svg(&svg).unwrap();
        assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
        let _ = std::fs::remove_file(&svg);
    }

    #[test]
    fn frozen_groups_do_not_move() {
        let _serial = crate::test_util::serial();
        let device = test_device().autodiff();
        let mut learn =
            LanguageModelLearner::new(tiny(&device, 0.5), cycle_docs(8, 30), vec![], config(0))
                .unwrap();
        learn.freeze();
        let before_rnn = to_vec(learn.model.encoder.rnns[0].forward.weight_hh.val());
        let before_emb = to_vec(learn.model.encoder.embedding.val());
        learn.fit_one_cycle(1, LrSpec::Float(1e-2)).unwrap();
        assert_eq!(
            to_vec(learn.model.encoder.rnns[0].forward.weight_hh.val()),
            before_rnn,
            "frozen LSTM weights are bit-identical"
        );
        assert_ne!(
            to_vec(learn.model.encoder.embedding.val()),
            before_emb,
            "last group trains"
        );
    }

    #[test]
    fn non_finite_loss_stops_with_the_step() {
        let _serial = crate::test_util::serial();
        let device = test_device().autodiff();
        let mut learn =
            LanguageModelLearner::new(tiny(&device, 0.0), cycle_docs(8, 30), vec![], config(0))
                .unwrap();
        match learn.fit_one_cycle(1, LrSpec::Float(1e12)) {
            Err(TrainError::NonFiniteLoss { step, .. }) => assert!(step > 0),
            other => panic!(
                "expected a non-finite loss, got {:?}",
                other.map(|r| r.len())
            ),
        }
    }
}
