//! Classifier fine-tuning (ULMFiT stage 3): BPT3C classifier, gradual unfreezing,
//! discriminative rates, best-epoch checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::groups::{LayerGroups, classifier_groups};
use super::learner::{
    self, FitPlan, LearnerConfig, LrFindResult, Policy, Progress, Reporter, TrainError, at_step,
    begin_epoch, check_finite, default_mom, epoch_dir, lr_find_loop, prune_checkpoints, seconds,
    write_checkpoint,
};
use super::log::EpochRecord;
use super::loss::{activation_reg, cross_entropy, temporal_activation_reg};
use super::lr_find::LrFinder;
use super::metrics::ConfusionMatrix;
use super::optimizer::Optimizer;
use super::parallel::{DataParallel, materialize, take_rows};
use super::schedule::LrSpec;
use crate::data::{ClasBatch, ClasDataLoader, ClasLoaderConfig, restore_order};
use crate::nn::{AwdLstm, TextClassifier};

/// Labelled, numericalised documents.
#[derive(Clone, Debug, Default)]
pub struct LabelledDocs {
    /// Token ids of each document.
    pub docs: Vec<Vec<u32>>,
    /// Class of each document.
    pub labels: Vec<usize>,
}

/// Validation metrics of a classifier.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ClasMetrics {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Accuracy.
    pub accuracy: f64,
    /// Error rate (1 - accuracy).
    pub error_rate: f64,
    /// Macro-averaged F1.
    pub f1: f64,
}

/// Fine-tunes a [`TextClassifier`] with fastai's recipe.
pub struct ClassifierLearner {
    /// The model (on an autodiff device).
    pub model: TextClassifier,
    /// Its layer groups (fastai `awd_lstm_clas_split`).
    pub groups: LayerGroups,
    /// The optimizer and its state.
    pub optimizer: Optimizer,
    /// Settings.
    pub config: LearnerConfig,
    /// Metrics of every epoch trained so far.
    pub history: Vec<EpochRecord>,
    /// Save the weights of the best epoch (highest validation accuracy) here.
    pub best_path: Option<PathBuf>,
    /// Best validation accuracy so far and its epoch.
    pub best: Option<(usize, f64)>,
    train_docs: Arc<[Vec<u32>]>,
    train_labels: Vec<usize>,
    valid: LabelledDocs,
    n_class: usize,
    frozen: usize,
    epochs_done: usize,
    parallel: DataParallel,
}

fn batch_tensors(batch: &ClasBatch, device: &Device) -> (Tensor<2, Int>, Option<Tensor<1, Int>>) {
    let x = Tensor::from_data(
        TensorData::new(batch.x.clone(), [batch.bs, batch.len]),
        device,
    );
    let y = batch
        .labels
        .as_ref()
        .map(|l| Tensor::from_data(TensorData::new(l.clone(), [batch.bs]), device));
    (x, y)
}

impl ClassifierLearner {
    /// A learner over labelled documents; the model must be on an autodiff device and every
    /// label below its number of classes.
    pub fn new(
        model: TextClassifier,
        train: LabelledDocs,
        valid: LabelledDocs,
        config: LearnerConfig,
    ) -> Result<Self, TrainError> {
        if !model.encoder.embedding.device().is_autodiff() {
            return Err(TrainError::NotAutodiff);
        }
        let n_class = model.n_class();
        for (what, set) in [("training", &train), ("validation", &valid)] {
            if set.docs.len() != set.labels.len() {
                return Err(TrainError::NoData(format!(
                    "{what} set: {} documents but {} labels",
                    set.docs.len(),
                    set.labels.len()
                )));
            }
            if let Some(bad) = set.labels.iter().find(|&&l| l >= n_class) {
                return Err(TrainError::NoData(format!(
                    "{what} set: label {bad} but the model has {n_class} classes"
                )));
            }
        }
        materialize(&model);
        let groups = classifier_groups(&model);
        let parallel = DataParallel::single(model.encoder.embedding.device());
        Ok(Self {
            optimizer: Optimizer::new(config.optimizer.clone()),
            model,
            groups,
            config,
            history: vec![],
            best_path: None,
            best: None,
            train_docs: train.docs.into(),
            train_labels: train.labels,
            valid,
            n_class,
            frozen: 0,
            epochs_done: 0,
            parallel,
        })
    }

    /// Loads an encoder saved by `LanguageModelLearner::save_encoder` into the model (the
    /// vocabulary must be the language model's) and freezes all but the head, as fastai's
    /// `load_encoder` does.
    pub fn load_encoder(&mut self, path: &Path) -> Result<(), TrainError> {
        let enc: AwdLstm = crate::weights::load_module(self.model.encoder.clone(), path)?;
        self.model.encoder = enc;
        self.groups = classifier_groups(&self.model);
        self.freeze();
        Ok(())
    }

    /// Trains data-parallel on `devices` (see [`DataParallel`]): the first must be the device
    /// the model lives on; each batch's documents are split across them. BatchNorm then sees
    /// each shard's statistics, as in PyTorch's `DataParallel`.
    pub fn set_devices(&mut self, devices: Vec<Device>) -> Result<(), TrainError> {
        learner::set_devices(self, devices)
    }

    /// The devices training runs on (the model's alone unless [`set_devices`](Self::set_devices)).
    pub fn devices(&self) -> &[Device] {
        self.parallel.devices()
    }

    /// fastai's `freeze_to(n)`; BatchNorm stays trainable; optimizer state is reset.
    pub fn freeze_to(&mut self, n: isize) {
        learner::freeze_to(self, n);
    }

    /// Trains only the head.
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

    /// Epochs trained so far.
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// fastai's `fit_one_cycle` with the text learners' momentum cycle.
    pub fn fit_one_cycle(
        &mut self,
        epochs: usize,
        lr: LrSpec,
    ) -> Result<Vec<EpochRecord>, TrainError> {
        self.fit(epochs, lr, &Policy::one_cycle())
    }

    /// The paper's slanted triangular learning rates.
    pub fn fit_stlr(&mut self, epochs: usize, lr: LrSpec) -> Result<Vec<EpochRecord>, TrainError> {
        self.fit(epochs, lr, &Policy::stlr())
    }

    /// ULMFiT's gradual unfreezing with discriminative rates, as fastai's tutorials run it:
    /// head only at `lr`; then `freeze_to(-2)` at `slice(lr/2/2.6^4, lr/2)`; `freeze_to(-3)` at
    /// `slice(lr/4/2.6^4, lr/4)`; then everything for `final_epochs` at
    /// `slice(lr/20/2.6^4, lr/20)` (fastai: lr 2e-2, then 1e-2, 5e-3, 1e-3), one epoch per stage.
    pub fn gradual_unfreezing(
        &mut self,
        lr: f64,
        final_epochs: usize,
        policy: &Policy,
    ) -> Result<Vec<EpochRecord>, TrainError> {
        let mut out = vec![];
        let disc = |top: f64| LrSpec::slice(top / 2.6f64.powi(4), top);
        self.freeze_to(-1);
        out.extend(self.fit(1, LrSpec::Float(lr), policy)?);
        self.freeze_to(-2);
        out.extend(self.fit(1, disc(lr / 2.0), policy)?);
        self.freeze_to(-3);
        out.extend(self.fit(1, disc(lr / 4.0), policy)?);
        self.unfreeze();
        out.extend(self.fit(final_epochs, disc(lr / 20.0), policy)?);
        Ok(out)
    }

    fn train_loader(&self, seed: u64) -> Result<ClasDataLoader<Arc<[Vec<u32>]>>, TrainError> {
        let mut cfg = ClasLoaderConfig::train(self.config.bs, self.model.bptt, seed);
        cfg.pad_idx = self.model.pad_idx as i64;
        // fastai drops the last partial batch in training; keep it when it is the only one.
        cfg.drop_last = self.train_docs.len() >= 2 * self.config.bs;
        Ok(ClasDataLoader::new(
            Arc::clone(&self.train_docs),
            Some(self.train_labels.clone()),
            cfg,
        )?)
    }

    /// Trains for `epochs`; reports metrics per epoch; keeps the best epoch's weights in
    /// `best_path` when set; stops on a non-finite loss keeping the last good parameters.
    pub fn fit(
        &mut self,
        epochs: usize,
        lr: LrSpec,
        policy: &Policy,
    ) -> Result<Vec<EpochRecord>, TrainError> {
        self.fit_from(epochs, lr, policy, 0)
    }

    /// Continues a fit interrupted after a checkpoint (see `LanguageModelLearner::resume_fit`).
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
        let cfg = self.config.clone();
        let _autocast = cfg.bf16.then(crate::ops::autocast::bf16_autocast);
        let n_iter = self.train_loader(0)?.len();
        if n_iter == 0 {
            return Err(TrainError::NoData(format!(
                "{} training documents for batches of {}",
                self.train_docs.len(),
                cfg.bs
            )));
        }
        let plan = FitPlan::new(&lr, policy, &cfg, self.groups.len(), epochs, n_iter)?;
        let mut reporter = Reporter::new(&cfg);
        let mut records = vec![];
        for epoch in first_epoch..epochs {
            let global_epoch = self.epochs_done;
            let (seed, bar, start) = begin_epoch(&self.parallel, &cfg, global_epoch, n_iter);
            let mut loader = self.train_loader(seed)?;
            let (mut loss_sum, mut count) = (0.0f64, 0usize);
            for (b, batch) in loader.epoch().enumerate() {
                let (step, lrs, mom) = plan.at(epoch, b);
                let loss = self
                    .train_step(&batch, &lrs, mom)
                    .map_err(|e| at_step(e, global_epoch, step))?;
                loss_sum += loss * batch.bs as f64;
                count += batch.bs;
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
                            ("error_rate".into(), m.error_rate),
                            ("f1".into(), m.f1),
                        ]
                    })
                    .unwrap_or_default(),
                seconds: seconds(start),
            };
            reporter.report(&rec)?;
            self.history.push(rec.clone());
            records.push(rec);
            self.epochs_done += 1;
            if let Some(m) = valid
                && self.best.is_none_or(|(_, acc)| m.accuracy > acc)
            {
                self.best = Some((global_epoch, m.accuracy));
                if let Some(path) = &self.best_path {
                    crate::weights::save_module(self.model.clone(), path)?;
                }
            }
            if let Some(dir) = &cfg.checkpoint_dir {
                self.write_checkpoint(&epoch_dir(dir, self.epochs_done), epoch + 1)?;
                prune_checkpoints(dir);
            }
        }
        Ok(records)
    }

    /// One optimisation step (data-parallel over the learner's devices); returns the batch's
    /// mean cross-entropy.
    fn train_step(&mut self, batch: &ClasBatch, lrs: &[f64], mom: f64) -> Result<f64, TrainError> {
        let cfg = &self.config;
        let labels = batch
            .labels
            .as_ref()
            .ok_or_else(|| TrainError::NoData("a training batch without labels".into()))?;
        let (bs, len) = (batch.bs, batch.len);
        let shards = self.parallel.shards(bs);
        let (grads, losses) = self
            .parallel
            .run(&self.model, shards, |model, rows, device| {
                let n = rows.len();
                let x = Tensor::from_data(
                    TensorData::new(take_rows(&batch.x, len, &rows), [n, len]),
                    device,
                );
                let y =
                    Tensor::from_data(TensorData::new(take_rows(labels, 1, &rows), [n]), device);
                let out = model.forward(x);
                let ce = cross_entropy(out.logits, y);
                let value = ce.clone().into_scalar::<f32>();
                check_finite(value, 0, 0)?;
                let mut loss = ce;
                // fastai applies AR and TAR to the pooled encoder outputs of a classifier too.
                if cfg.ar_alpha != 0.0 {
                    loss = loss + activation_reg(out.encoded.output.clone(), cfg.ar_alpha);
                }
                if cfg.tar_beta != 0.0 {
                    loss = loss + temporal_activation_reg(out.encoded.output, cfg.tar_beta);
                }
                // Weighted by the shard's share of the documents: summed gradients are the batch's.
                let share = n as f64 / bs as f64;
                if n != bs {
                    loss = loss.mul_scalar(share);
                }
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                Ok((grads, f64::from(value) * share))
            })?;
        let (model, _) =
            self.optimizer
                .step(self.model.clone(), grads, &self.groups, lrs, mom, cfg.clip);
        self.model = model;
        Ok(losses.iter().sum())
    }

    /// fastai's `lr_find` (see `LanguageModelLearner::lr_find`); the model and optimizer are
    /// restored after.
    pub fn lr_find(&mut self, finder: LrFinder) -> Result<LrFindResult, TrainError> {
        let (model, optimizer) = (self.model.clone(), self.optimizer.clone());
        let n = self.groups.len();
        let mom = default_mom(&self.config);
        let mut loader = self.train_loader(self.config.seed)?;
        let mut batches: Vec<ClasBatch> = vec![];
        let result = lr_find_loop(finder, |_, lr| {
            if batches.is_empty() {
                batches = loader.epoch().collect();
                batches.reverse();
            }
            let Some(batch) = batches.pop() else {
                return Ok(None);
            };
            match self.train_step(&batch, &vec![lr; n], mom) {
                Ok(loss) => Ok(Some(loss)),
                Err(TrainError::NonFiniteLoss { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        self.model = model;
        self.optimizer = optimizer;
        result
    }

    /// Class probabilities of `docs`, in input order (batched by length internally).
    pub fn predict(&self, docs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, TrainError> {
        let model = self.model.valid();
        let device = model.encoder.embedding.device();
        let mut cfg = ClasLoaderConfig::valid(self.config.bs, model.bptt);
        cfg.pad_idx = model.pad_idx as i64;
        let mut loader = ClasDataLoader::new(docs, None, cfg)?;
        let mut rows = vec![];
        for batch in loader.epoch() {
            let (x, _) = batch_tensors(&batch, &device);
            let probs: Vec<f32> = softmax(model.forward(x).logits, 1)
                .into_data()
                .try_into_vec_as::<f32>()
                .map_err(|e| TrainError::NoData(format!("{e:?}")))?;
            for (r, &index) in batch.indices.iter().enumerate() {
                rows.push((
                    index,
                    probs[r * self.n_class..(r + 1) * self.n_class].to_vec(),
                ));
            }
        }
        Ok(restore_order(docs.len(), rows)?)
    }

    /// Loss, accuracy, error rate and macro F1 on the validation documents (`None` without any).
    pub fn validate(&self) -> Result<Option<ClasMetrics>, TrainError> {
        if self.valid.docs.is_empty() {
            return Ok(None);
        }
        let probs = self.predict(&self.valid.docs)?;
        let mut cm = ConfusionMatrix::new(self.n_class);
        let mut loss = 0.0f64;
        for (p, &t) in probs.iter().zip(&self.valid.labels) {
            let pred = p
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 { (i, v) } else { best }
                })
                .0;
            cm.add(pred, t)
                .map_err(|e| TrainError::NoData(e.to_string()))?;
            loss -= f64::from(p[t].max(1e-12)).ln();
        }
        let accuracy = cm.accuracy().unwrap_or(0.0);
        Ok(Some(ClasMetrics {
            loss: loss / probs.len() as f64,
            accuracy,
            error_rate: 1.0 - accuracy,
            f1: cm.macro_f1().unwrap_or(0.0),
        }))
    }

    /// Saves the classifier's weights (burnpack, atomically).
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        Ok(crate::weights::save_module(self.model.clone(), path)?)
    }

    /// Writes a checkpoint (weights, optimizer state, progress).
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

    /// Resumes from a checkpoint; returns the completed epochs of the interrupted fit.
    pub fn resume(&mut self, dir: &Path) -> Result<usize, TrainError> {
        learner::resume_learner(self, dir)
    }
}

impl learner::HasParts for ClassifierLearner {
    type Model = TextClassifier;

    fn split(model: &TextClassifier) -> LayerGroups {
        classifier_groups(model)
    }

    fn parts(&mut self) -> learner::Parts<'_, TextClassifier> {
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
    use crate::nn::{AwdLstmConfig, TextClassifierConfig};
    use crate::test_util::{test_device, to_vec};

    /// Class 0 documents use tokens 2..8, class 1 tokens 8..14.
    fn toy(n: usize) -> LabelledDocs {
        let mut docs = vec![];
        let mut labels = vec![];
        for i in 0..n {
            let label = i % 2;
            let len = 3 + (i * 7) % 9;
            docs.push(
                (0..len)
                    .map(|k| (2 + 6 * label + (i + k) % 6) as u32)
                    .collect(),
            );
            labels.push(label);
        }
        LabelledDocs { docs, labels }
    }

    fn learner(device: &Device) -> ClassifierLearner {
        let model = TextClassifierConfig::new(
            AwdLstmConfig::classifier(16)
                .with_emb_size(16)
                .with_hidden_size(24)
                .with_n_layers(2)
                .with_drop_mult(0.0),
            2,
        )
        .with_lin_ftrs(vec![8])
        .with_bptt(4)
        .with_max_len(16)
        .init(device);
        let model = crate::test_util::reinit_params(model, 5);
        // Small batches: enough steps for BatchNorm's running statistics (momentum 0.1) to forget
        // their initial values, which eval mode uses. No dropout: on a model this small, 10 % of
        // fastai's dropouts make the result depend on the initial weights (tests share the
        // device's generator, so those are not fixed).
        let config = LearnerConfig {
            bs: 8,
            progress: false,
            print_metrics: false,
            ..LearnerConfig::default()
        };
        ClassifierLearner::new(model, toy(128), toy(32), config).unwrap()
    }

    #[test]
    fn gradual_unfreezing_learns_a_separable_task() {
        let _serial = crate::test_util::serial();
        let device = test_device().autodiff();
        device.seed(5);
        let mut learn = learner(&device);
        let records = learn
            .gradual_unfreezing(2e-2, 8, &Policy::one_cycle())
            .unwrap();
        assert_eq!(records.len(), 11);
        assert_eq!(learn.frozen_groups(), 0);
        let m = learn.validate().unwrap().unwrap();
        // The validation documents are training documents; what remains is BatchNorm's running
        // statistics lagging the batch statistics (of length-sorted batches of 8), as in fastai.
        assert!(m.accuracy >= 0.85, "{m:?}");
        assert!(
            records[10].train_loss < 0.5 * records[0].train_loss,
            "{records:?}"
        );
        // Predictions come back in input order.
        let probs = learn.predict(&learn.valid.docs.clone()).unwrap();
        let acc = probs
            .iter()
            .zip(&learn.valid.labels)
            .filter(|(p, t)| usize::from(p[1] > p[0]) == **t)
            .count() as f64
            / probs.len() as f64;
        assert!((acc - m.accuracy).abs() < 1e-9);
    }

    /// Two CPU devices (ndarray + flex): the classifier trains, the parameters and optimizer
    /// stay on the main device, and each shard's BatchNorm sees its own rows.
    #[cfg(feature = "flex")]
    #[test]
    fn data_parallel_classifier_trains_on_two_devices() {
        let _serial = crate::test_util::serial();
        let device = test_device().autodiff();
        let mut learn = learner(&device);
        learn
            .set_devices(vec![device.clone(), Device::flex().autodiff()])
            .unwrap();
        assert_eq!(learn.devices().len(), 2);
        let records = learn.fit_one_cycle(8, LrSpec::Float(1e-2)).unwrap();
        assert!(records.iter().all(|r| r.train_loss.is_finite()));
        assert!(
            records[7].train_loss < 0.7 * records[0].train_loss,
            "{records:?}"
        );
        assert_eq!(learn.model.encoder.embedding.val().device(), device);
        assert_eq!(
            learn.model.head.blocks[0].linear.weight.val().device(),
            device
        );
        let m = learn.validate().unwrap().unwrap();
        assert!(m.accuracy >= 0.75, "{m:?}");
    }

    #[test]
    fn freezing_keeps_encoder_bit_identical_but_trains_batchnorm() {
        let _serial = crate::test_util::serial();
        let device = test_device().autodiff();
        let mut learn = learner(&device);
        learn.freeze();
        let emb = to_vec(learn.model.encoder.embedding.val());
        let rnn = to_vec(learn.model.encoder.rnns[1].forward.weight_ih.val());
        let bn = to_vec(learn.model.head.blocks[0].bn.weight.val());
        learn.fit_one_cycle(1, LrSpec::Float(1e-2)).unwrap();
        assert_eq!(to_vec(learn.model.encoder.embedding.val()), emb);
        assert_eq!(
            to_vec(learn.model.encoder.rnns[1].forward.weight_ih.val()),
            rnn
        );
        assert_ne!(to_vec(learn.model.head.blocks[0].bn.weight.val()), bn);
    }

    #[test]
    fn labels_out_of_range_are_refused() {
        let _serial = crate::test_util::serial();
        let device = test_device().autodiff();
        let l = learner(&device);
        let mut bad = toy(4);
        bad.labels[0] = 5;
        assert!(matches!(
            ClassifierLearner::new(l.model, bad, toy(2), l.config),
            Err(TrainError::NoData(_))
        ));
    }
}
