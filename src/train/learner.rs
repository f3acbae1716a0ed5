//! What the two learners share: configuration, errors, the per-step learning-rate plumbing,
//! the non-finite-loss guard, progress bars and per-epoch reporting.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::log::{CsvLogger, EpochRecord, EpochTable, LogError};
use super::optimizer::OptimizerConfig;
use super::schedule::{LrSpec, OneCycle, Schedule, Stlr};

/// Settings shared by both learners.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LearnerConfig {
    /// Batch size (fastai default: 64).
    pub bs: usize,
    /// AR coefficient on the dropped last-layer output (fastai `TextLearner`: 2).
    pub ar_alpha: f64,
    /// TAR coefficient on the raw last-layer output (fastai `TextLearner`: 1).
    pub tar_beta: f64,
    /// Clip gradients to this global L2 norm (fastai default: off).
    pub clip: Option<f64>,
    /// Optimizer (fastai default: Adam, wd 0.01).
    pub optimizer: OptimizerConfig,
    /// Momentum cycle of one-cycle schedules (fastai `TextLearner`: 0.8, 0.7, 0.8).
    pub moms: (f64, f64, f64),
    /// Seed of the data order and of the dropout masks (re-seeded at every epoch, so a run
    /// resumed at an epoch boundary repeats the uninterrupted run exactly).
    pub seed: u64,
    /// Draw progress bars (only on a terminal).
    pub progress: bool,
    /// Print one table line of metrics per epoch.
    pub print_metrics: bool,
    /// Append per-epoch metrics to this CSV file.
    pub csv_log: Option<PathBuf>,
    /// Write a checkpoint (weights, optimizer state, progress) here after every epoch; after a
    /// failure it holds the last good epoch.
    pub checkpoint_dir: Option<PathBuf>,
    /// Mixed precision: run the LSTMs' and the decoder's products in bf16 on AMX tiles, in an
    /// [`autocast`](crate::ops::autocast) scope around every fit (PyTorch's bf16 `autocast`,
    /// the CPU counterpart of fastai's `to_fp16()`). Without AMX it changes nothing. Default off.
    #[serde(default)]
    pub bf16: bool,
}

impl Default for LearnerConfig {
    fn default() -> Self {
        Self {
            bs: 64,
            ar_alpha: 2.0,
            tar_beta: 1.0,
            clip: None,
            optimizer: OptimizerConfig::default(),
            moms: (0.8, 0.7, 0.8),
            seed: 0,
            progress: true,
            print_metrics: true,
            csv_log: None,
            checkpoint_dir: None,
            bf16: false,
        }
    }
}

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The model is not on an autodiff device, so it cannot be trained.
    #[error("the model must live on an autodiff device to be trained (use `device.autodiff()`)")]
    NotAutodiff,
    /// The loss became NaN or infinite; the model keeps the parameters of the last good step.
    #[error(
        "the loss became {loss} at epoch {epoch}, step {step} (learning rate too high?); the \
         learner keeps the parameters from before that step"
    )]
    NonFiniteLoss {
        /// Epoch (0-based) of the fit.
        epoch: usize,
        /// Step (0-based) within the fit.
        step: usize,
        /// The loss value.
        loss: f32,
    },
    /// No batch could be made (too little data for the batch size).
    #[error("no training batch: {0}")]
    NoData(String),
    /// Data could not be batched.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// Weights could not be saved or loaded.
    #[error(transparent)]
    Weights(#[from] crate::weights::WeightsError),
    /// A schedule was invalid.
    #[error(transparent)]
    Schedule(#[from] super::schedule::ScheduleError),
    /// Metrics could not be logged.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The devices of a data-parallel run are unusable.
    #[error("data-parallel devices: {0}")]
    Devices(String),
    /// A checkpoint is not usable.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Which schedule a fit follows.
#[derive(Clone, Debug)]
pub enum Policy {
    /// fastai's one-cycle (cosine warm-up and annealing, momentum cycling).
    OneCycle {
        /// Fraction of the steps spent warming up (fastai: 0.25).
        pct_start: f64,
        /// Initial rate = peak / div (fastai: 25).
        div: f64,
        /// Final rate = peak / div_final (fastai: 1e5).
        div_final: f64,
    },
    /// The paper's slanted triangular learning rates (cut_frac 0.1, ratio 32).
    Stlr {
        /// Fraction of the steps spent increasing (paper: 0.1).
        cut_frac: f64,
        /// Ratio of peak to lowest rate (paper: 32).
        ratio: f64,
    },
}

impl Policy {
    /// fastai's `fit_one_cycle` defaults.
    pub fn one_cycle() -> Self {
        Self::OneCycle {
            pct_start: 0.25,
            div: 25.0,
            div_final: 1e5,
        }
    }

    /// The paper's STLR (cut_frac 0.1, ratio 32).
    pub fn stlr() -> Self {
        Self::Stlr {
            cut_frac: 0.1,
            ratio: 32.0,
        }
    }

    /// The schedule for a peak rate (per-group peaks come from the [`LrSpec`]).
    pub(crate) fn schedule(
        &self,
        lr: &LrSpec,
        moms: (f64, f64, f64),
    ) -> Result<Box<dyn Schedule>, TrainError> {
        let peak = lr.max_lr();
        Ok(match *self {
            Self::OneCycle {
                pct_start,
                div,
                div_final,
            } => {
                let s = OneCycle::new(peak)
                    .with_pct_start(pct_start)
                    .with_div(div)
                    .with_div_final(div_final)
                    .with_moms(moms);
                s.validate()?;
                Box::new(s)
            }
            Self::Stlr { cut_frac, ratio } => {
                let s = Stlr {
                    lr_max: peak,
                    cut_frac,
                    ratio,
                };
                s.validate()?;
                Box::new(s)
            }
        })
    }
}

/// Momentum when the schedule leaves it alone: the first of the cycle (fastai's `mom`).
pub(crate) fn default_mom(config: &LearnerConfig) -> f64 {
    config.moms.0
}

/// A progress bar over `len` steps (hidden unless enabled and on a terminal).
pub(crate) fn progress(len: usize, enabled: bool, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(len as u64),
        if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed_precise}<{eta_precise}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// Prints and logs the metrics of an epoch.
pub(crate) struct Reporter {
    table: EpochTable,
    csv: Option<CsvLogger>,
    print: bool,
}

impl Reporter {
    pub(crate) fn new(config: &LearnerConfig) -> Self {
        Self {
            table: EpochTable::new(),
            csv: config.csv_log.clone().map(CsvLogger::new),
            print: config.print_metrics,
        }
    }

    pub(crate) fn report(&mut self, rec: &EpochRecord) -> Result<(), TrainError> {
        if self.print {
            self.table.print(rec)?;
        }
        if let Some(csv) = self.csv.as_mut() {
            csv.log(rec)?;
        }
        Ok(())
    }
}

/// Checks a step's loss.
pub(crate) fn check_finite(loss: f32, epoch: usize, step: usize) -> Result<(), TrainError> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(TrainError::NonFiniteLoss { epoch, step, loss })
    }
}

/// Seconds since `start`.
pub(crate) fn seconds(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// What a checkpoint records besides the weights and the optimizer state.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Epochs trained so far.
    pub epochs_done: usize,
    /// Frozen groups (`freeze_to`).
    pub frozen: usize,
    /// Metrics of every epoch so far.
    pub history: Vec<EpochRecord>,
    /// Epochs of the fit in progress that were completed (its schedule resumes from there).
    pub fit_epochs_done: usize,
}

/// Writes a checkpoint folder: `model.bpk` (weights), `optimizer.safetensors` (moment
/// estimates), `progress.json`; each file atomically.
pub(crate) fn write_checkpoint<M: burn::module::Module>(
    dir: &std::path::Path,
    model: &M,
    optimizer: &super::optimizer::Optimizer,
    progress: &Progress,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|source| TrainError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let fail = |message: String| TrainError::Checkpoint {
        path: dir.to_path_buf(),
        message,
    };
    let io = |(path, source)| TrainError::Io { path, source };
    let opt = optimizer.state_to_bytes(model).map_err(fail)?;
    crate::atomic::write_atomic(&dir.join("optimizer.safetensors"), &opt).map_err(io)?;
    let json = serde_json::to_vec_pretty(progress).map_err(|e| fail(e.to_string()))?;
    crate::atomic::write_atomic(&dir.join("progress.json"), &json).map_err(io)?;
    crate::weights::save_module(model.clone(), &dir.join("model.bpk"))?;
    Ok(())
}

/// Reads a checkpoint folder written by [`write_checkpoint`] into `model` and `optimizer`.
pub(crate) fn read_checkpoint<M: burn::module::Module>(
    dir: &std::path::Path,
    model: M,
    optimizer: &mut super::optimizer::Optimizer,
) -> Result<(M, Progress), TrainError> {
    let fail = |message: String| TrainError::Checkpoint {
        path: dir.to_path_buf(),
        message,
    };
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| TrainError::Io { path, source })
    };
    let progress: Progress =
        serde_json::from_slice(&read("progress.json")?).map_err(|e| fail(e.to_string()))?;
    let model = crate::weights::load_module(model, &dir.join("model.bpk"))?;
    let device = model
        .devices()
        .first()
        .cloned()
        .ok_or_else(|| fail("the model has no parameters".into()))?
        .inner();
    optimizer
        .load_state_bytes(&model, &read("optimizer.safetensors")?, &device)
        .map_err(fail)?;
    Ok((model, progress))
}

/// The folder of the checkpoint written after `epochs_done` epochs inside a learner's
/// `checkpoint_dir`.
pub fn epoch_dir(dir: &std::path::Path, epochs_done: usize) -> PathBuf {
    dir.join(format!("epoch_{epochs_done:04}"))
}

/// Deletes the epoch checkpoints of `dir` older than the newest two (each can be large).
pub(crate) fn prune_checkpoints(dir: &std::path::Path) {
    let mut found = checkpoint_folders(dir);
    found.sort();
    let keep = found.len().saturating_sub(2);
    for (_, path) in found.into_iter().take(keep) {
        let _ = std::fs::remove_dir_all(path);
    }
}

fn checkpoint_folders(dir: &std::path::Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("epoch_")?.parse().ok()?;
            e.path()
                .join("progress.json")
                .is_file()
                .then(|| (n, e.path()))
        })
        .collect()
}

/// The checkpoint to resume from: `dir` itself if it is one, else its newest complete
/// `epoch_*` folder.
pub(crate) fn latest_checkpoint(dir: &std::path::Path) -> Result<PathBuf, TrainError> {
    if dir.join("progress.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    checkpoint_folders(dir)
        .into_iter()
        .max()
        .map(|(_, p)| p)
        .ok_or_else(|| TrainError::Checkpoint {
            path: dir.to_path_buf(),
            message: "no checkpoint here (no progress.json, no epoch_* folder)".into(),
        })
}

/// The outcome of a learning-rate finder run (fastai `lr_find`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LrFindResult {
    /// Rate of each batch.
    pub lrs: Vec<f64>,
    /// Smoothed loss of each batch.
    pub losses: Vec<f64>,
    /// fastai's default suggestion (`valley`), when the curve allows one.
    pub suggestion: Option<f64>,
}

impl LrFindResult {
    /// Writes the curve (log-scale rate against smoothed loss, suggestion marked) as an SVG.
    pub fn write_svg(&self, path: &std::path::Path) -> Result<(), TrainError> {
        let markers: Vec<super::plot::PlotMarker> = self
            .suggestion
            .and_then(|lr| {
                let i = self.lrs.iter().position(|&l| l >= lr)?;
                Some(super::plot::PlotMarker {
                    label: format!("valley {lr:.2e}"),
                    lr,
                    loss: self.losses[i],
                })
            })
            .into_iter()
            .collect();
        let keep = self.lrs.len().saturating_sub(5).max(1).min(self.lrs.len());
        super::plot::write_lr_finder_svg(path, &self.lrs[..keep], &self.losses[..keep], &markers)
            .map_err(|e| TrainError::Checkpoint {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
    }
}

/// Runs fastai's LR-finder loop: `step(i, lr)` trains one batch at rate `lr` and returns its
/// loss; the rate grows exponentially until `num_it` batches or the loss diverges.
pub(crate) fn lr_find_loop(
    finder: super::lr_find::LrFinder,
    mut step: impl FnMut(usize, f64) -> Result<Option<f64>, TrainError>,
) -> Result<LrFindResult, TrainError> {
    finder.validate()?;
    let mut run = super::lr_find::LrFindRun::new(finder);
    let mut i = 0;
    while let Some(lr) = run.next_lr() {
        let Some(loss) = step(i, lr)? else { break };
        i += 1;
        if !run.record(if loss.is_finite() {
            loss
        } else {
            f64::INFINITY
        }) {
            break;
        }
    }
    let suggestion = run
        .suggest(super::lr_find::SuggestMethod::Valley)
        .ok()
        .map(|s| s.lr);
    Ok(LrFindResult {
        lrs: run.lrs().to_vec(),
        losses: run.losses().to_vec(),
        suggestion,
    })
}

/// The schedule of one fit, evaluated batch by batch.
pub(crate) struct FitPlan {
    schedule: Box<dyn Schedule>,
    peaks: Vec<f64>,
    /// Batches per epoch.
    pub(crate) n_iter: usize,
    total: usize,
    default_mom: f64,
}

impl FitPlan {
    /// The plan of a fit of `epochs` epochs of `n_iter` batches over `n_groups` groups.
    pub(crate) fn new(
        lr: &LrSpec,
        policy: &Policy,
        cfg: &LearnerConfig,
        n_groups: usize,
        epochs: usize,
        n_iter: usize,
    ) -> Result<Self, TrainError> {
        Ok(Self {
            schedule: policy.schedule(lr, cfg.moms)?,
            peaks: lr.per_group(n_groups),
            n_iter,
            total: epochs * n_iter,
            default_mom: default_mom(cfg),
        })
    }

    /// Step number, per-group learning rates and momentum of batch `b` of the fit's epoch `epoch`.
    pub(crate) fn at(&self, epoch: usize, b: usize) -> (usize, Vec<f64>, f64) {
        let step = epoch * self.n_iter + b;
        let lrs = self.schedule.group_lrs(&self.peaks, step, self.total);
        let mom = self
            .schedule
            .mom(step, self.total)
            .unwrap_or(self.default_mom);
        (step, lrs, mom)
    }
}

/// Starts an epoch: re-seeds the devices' generators from the configured seed and the epoch
/// number (so a resumed run repeats the uninterrupted one) and opens its progress bar.
pub(crate) fn begin_epoch(
    devices: &super::parallel::DataParallel,
    cfg: &LearnerConfig,
    global_epoch: usize,
    n_iter: usize,
) -> (u64, ProgressBar, Instant) {
    let seed = cfg.seed.wrapping_add(global_epoch as u64);
    devices.seed(seed);
    let bar = progress(n_iter, cfg.progress, &format!("epoch {global_epoch}"));
    (seed, bar, Instant::now())
}

/// Puts the epoch and step into a non-finite-loss error reported by a training step.
pub(crate) fn at_step(e: TrainError, epoch: usize, step: usize) -> TrainError {
    match e {
        TrainError::NonFiniteLoss { loss, .. } => TrainError::NonFiniteLoss { epoch, step, loss },
        e => e,
    }
}

/// Mutable access to what every learner keeps, for the logic both learners share
/// (freezing, devices, resuming).
pub(crate) struct Parts<'a, M> {
    pub(crate) model: &'a mut M,
    pub(crate) groups: &'a mut super::groups::LayerGroups,
    pub(crate) optimizer: &'a mut super::optimizer::Optimizer,
    pub(crate) history: &'a mut Vec<EpochRecord>,
    pub(crate) frozen: &'a mut usize,
    pub(crate) epochs_done: &'a mut usize,
    pub(crate) parallel: &'a mut super::parallel::DataParallel,
}

/// A learner's model type, its layer-group splitter and access to its [`Parts`].
pub(crate) trait HasParts {
    /// The model trained.
    type Model: burn::module::Module;
    /// fastai's splitter for the model (`awd_lstm_lm_split` / `awd_lstm_clas_split`).
    fn split(model: &Self::Model) -> super::groups::LayerGroups;
    /// The learner's parts.
    fn parts(&mut self) -> Parts<'_, Self::Model>;
}

/// fastai's `freeze_to(n)`: groups before `n` (negative: counted from the end) get no gradient;
/// BatchNorm stays trainable; the optimizer state is reset.
pub(crate) fn freeze_to<L: HasParts>(learner: &mut L, n: isize) {
    let p = learner.parts();
    *p.frozen = p.groups.frozen_prefix(n);
    *p.model = super::groups::apply_freeze(p.model.clone(), p.groups, *p.frozen);
    p.optimizer.reset_state();
}

/// Sets the devices of data-parallel training; the first must be the model's.
pub(crate) fn set_devices<L: HasParts>(
    learner: &mut L,
    devices: Vec<burn::tensor::Device>,
) -> Result<(), TrainError> {
    let parallel = super::parallel::DataParallel::new(devices)?;
    let p = learner.parts();
    let own = p.parallel.main().clone();
    if *parallel.main() != own {
        return Err(TrainError::Devices(format!(
            "the first device must be the model's ({own:?})"
        )));
    }
    *p.parallel = parallel;
    Ok(())
}

/// Loads the newest checkpoint under `dir` into a learner; returns the completed epochs of the
/// interrupted fit.
pub(crate) fn resume_learner<L: HasParts>(
    learner: &mut L,
    dir: &std::path::Path,
) -> Result<usize, TrainError> {
    let dir = latest_checkpoint(dir)?;
    let p = learner.parts();
    let (model, progress) = read_checkpoint(&dir, p.model.clone(), p.optimizer)?;
    *p.groups = L::split(&model);
    *p.frozen = progress.frozen;
    *p.model = super::groups::apply_freeze(model, p.groups, *p.frozen);
    *p.epochs_done = progress.epochs_done;
    *p.history = progress.history;
    Ok(progress.fit_epochs_done)
}
