//! Learning-rate and momentum schedules, discriminative learning rates and the LR finder.
//!
//! * [`OneCycle`]: fastai v2's `fit_one_cycle` (`combined_cos` for lr and momentum), bit-exact
//!   with fastai, including its float32 computation of the position inside each phase
//!   (spec §4.5).
//! * [`Stlr`]: the paper's slanted triangular learning rates (eq. 3, spec §4.4), and
//!   [`CircularLr`]: how fastai 0.7's `CircularLR` (used by the original ULMFiT scripts)
//!   realised them.
//! * [`even_mults`] and [`LrSpec`]: fastai's spreading of one learning rate over the parameter
//!   groups (spec §4.6).
//! * [`LrFinder`], [`SmoothLoss`], [`LrFindRun`], [`valley`], [`minimum`], [`steep`]: fastai v2's
//!   `lr_find` schedule, stopping rule, loss smoothing and suggestion rules.
//! * [`schedules_check`]: parity against the `schedules.json` fixture recorded from fastai.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Errors of the schedule module.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// A schedule hyper-parameter is out of its domain.
    #[error("invalid schedule parameter `{name}` = {value}: {reason}")]
    InvalidParam {
        /// Parameter name.
        name: &'static str,
        /// Offending value.
        value: f64,
        /// What is expected.
        reason: &'static str,
    },
    /// The learning-rate finder got unusable input.
    #[error("lr finder: {0}")]
    LrFind(String),
    /// The fixture file could not be read.
    #[error("cannot read schedule fixture {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The fixture file is not valid JSON.
    #[error("cannot parse schedule fixture {path}: {source}")]
    Json {
        /// File path.
        path: String,
        /// Underlying error.
        source: serde_json::Error,
    },
    /// The fixture file parses but an entry is malformed or of an unknown kind.
    #[error("schedule fixture {path}, entry `{entry}`: {reason}")]
    Fixture {
        /// File path.
        path: String,
        /// Entry name (top-level key).
        entry: String,
        /// What is wrong.
        reason: String,
    },
}

// ------------------------------------------------------------------------------------------------
// Common interface
// ------------------------------------------------------------------------------------------------

/// A per-iteration learning-rate (and optionally momentum) schedule, so the learner can take
/// any of [`OneCycle`], [`Stlr`] or [`CircularLr`].
///
/// `iter` counts training batches from 0 across all epochs of one fit; `total` is the number of
/// training batches of that fit (epochs × batches per epoch).
pub trait Schedule {
    /// The schedule's own peak learning rate.
    fn peak_lr(&self) -> f64;
    /// Learning rate at `iter` of `total` for a parameter group whose peak rate is `lr_max`
    /// (fastai evaluates the schedule once per group with that group's own peak).
    fn lr_for(&self, lr_max: f64, iter: usize, total: usize) -> f64;
    /// Momentum (Adam's β1) at `iter` of `total`, or `None` if the schedule leaves it alone.
    fn mom(&self, iter: usize, total: usize) -> Option<f64>;
    /// Learning rate (for [`Schedule::peak_lr`]) and momentum at `iter` of `total`.
    fn lr_mom(&self, iter: usize, total: usize) -> (f64, Option<f64>) {
        (
            self.lr_for(self.peak_lr(), iter, total),
            self.mom(iter, total),
        )
    }
    /// Learning rate of every parameter group, given each group's peak (see [`LrSpec::per_group`]).
    fn group_lrs(&self, peaks: &[f64], iter: usize, total: usize) -> Vec<f64> {
        peaks.iter().map(|&p| self.lr_for(p, iter, total)).collect()
    }
}

/// Position `iter / total` used to evaluate [`OneCycle`] (what the fixture uses: fastai's
/// `pct_train` for a fit of one epoch, up to rounding). `total == 0` gives 0.
pub fn pos_at(iter: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        iter as f64 / total as f64
    }
}

/// fastai v2's `pct_train` before batch `batch` of epoch `epoch`, computed exactly the way its
/// `TrainEvalCallback` does: reset to `epoch / n_epoch` at the start of each epoch, then
/// `+= 1 / (n_iter * n_epoch)` after each batch. It differs from [`pos_at`] by a few ulps at
/// most; after the float32 cast inside [`combined_cos`] the two almost always coincide.
pub fn fastai_pct_train(epoch: usize, batch: usize, n_epoch: usize, n_iter: usize) -> f64 {
    if n_epoch == 0 || n_iter == 0 {
        return 0.0;
    }
    let step = 1.0 / (n_iter * n_epoch) as f64;
    let mut pct = epoch as f64 / n_epoch as f64;
    for _ in 0..batch {
        pct += step;
    }
    pct
}

/// All positions of a fit of `n_epoch` epochs of `n_iter` batches, as [`fastai_pct_train`]
/// gives them, in training order (length `n_epoch * n_iter`).
pub fn fastai_positions(n_epoch: usize, n_iter: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n_epoch * n_iter);
    if n_epoch == 0 || n_iter == 0 {
        return out;
    }
    let step = 1.0 / (n_iter * n_epoch) as f64;
    for epoch in 0..n_epoch {
        let mut pct = epoch as f64 / n_epoch as f64;
        for _ in 0..n_iter {
            out.push(pct);
            pct += step;
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// One-cycle (fastai v2)
// ------------------------------------------------------------------------------------------------

/// fastai's cosine annealing `sched_cos`: from `start` (pos 0) to `end` (pos 1).
pub fn sched_cos(start: f64, end: f64, pos: f64) -> f64 {
    start + (1.0 + (std::f64::consts::PI * (1.0 - pos)).cos()) * (end - start) / 2.0
}

/// fastai's `combined_cos(pct, start, middle, end)` evaluated at `pos`: cosine from `start` to
/// `middle` over `[0, pct]`, then from `middle` to `end` over `[pct, 1]`.
///
/// Bit-exact with fastai: `combine_scheds` keeps the phase boundaries in a float32 tensor, so
/// `pos` is rounded to float32 and the position inside the phase is computed in float32 before
/// the (double) cosine. Doing it all in f64 differs by up to ~2e-6 relative near the end of the
/// schedule. Deviation: where fastai divides 0 by 0 (a phase of zero width, only reachable at
/// `pos >= 1` with `pct == 1`) this returns the phase's start value instead of NaN.
pub fn combined_cos(pct: f64, start: f64, middle: f64, end: f64, pos: f64) -> f64 {
    let b1 = pct as f32;
    let b2 = b1 + (1.0 - pct) as f32;
    let bounds = [0.0f32, b1, b2];
    let x = pos as f32;
    let mut idx = 0;
    for (i, b) in bounds.iter().enumerate() {
        if x >= *b {
            idx = i;
        }
    }
    let idx = idx.min(1);
    let width = bounds[idx + 1] - bounds[idx];
    let inner = if width > 0.0 {
        (x - bounds[idx]) / width
    } else {
        0.0
    };
    if idx == 0 {
        sched_cos(start, middle, inner as f64)
    } else {
        sched_cos(middle, end, inner as f64)
    }
}

/// fastai v2's one-cycle policy (`Learner.fit_one_cycle`, spec §4.5) for the learning rate and
/// the momentum (Adam's β1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OneCycle {
    /// Peak learning rate, reached at `pct_start` (`fit_one_cycle(lr_max=...)`; no default).
    pub lr_max: f64,
    /// The schedule starts at `lr_max / div`. Default 25 (fastai v2 `fit_one_cycle`).
    pub div: f64,
    /// The schedule ends at `lr_max / div_final`. Default 1e5 (fastai v2 `fit_one_cycle`).
    pub div_final: f64,
    /// Fraction of training spent warming up. Default 0.25 (fastai v2 `fit_one_cycle`;
    /// `fine_tune` uses 0.99 for its frozen phase and 0.3 after).
    pub pct_start: f64,
    /// Momentum at start, at `pct_start` and at the end. Default (0.8, 0.7, 0.8), the
    /// `TextLearner` moms (fastai v2 `text/learner.py`); plain `Learner` uses (0.95, 0.85, 0.95).
    pub moms: (f64, f64, f64),
}

impl OneCycle {
    /// One-cycle with fastai's defaults and the text learners' momentums.
    pub fn new(lr_max: f64) -> Self {
        Self {
            lr_max,
            div: 25.0,
            div_final: 1e5,
            pct_start: 0.25,
            moms: (0.8, 0.7, 0.8),
        }
    }

    /// Sets `pct_start`.
    pub fn with_pct_start(mut self, pct_start: f64) -> Self {
        self.pct_start = pct_start;
        self
    }

    /// Sets `div`.
    pub fn with_div(mut self, div: f64) -> Self {
        self.div = div;
        self
    }

    /// Sets `div_final`.
    pub fn with_div_final(mut self, div_final: f64) -> Self {
        self.div_final = div_final;
        self
    }

    /// Sets the momentums (start, middle, end).
    pub fn with_moms(mut self, moms: (f64, f64, f64)) -> Self {
        self.moms = moms;
        self
    }

    /// Checks the parameters: finite `lr_max`, positive finite `div`/`div_final`,
    /// `pct_start` in [0, 1], finite momentums.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        check(
            "lr_max",
            self.lr_max,
            self.lr_max.is_finite(),
            "must be finite",
        )?;
        check(
            "div",
            self.div,
            self.div.is_finite() && self.div > 0.0,
            "must be > 0",
        )?;
        check(
            "div_final",
            self.div_final,
            self.div_final.is_finite() && self.div_final > 0.0,
            "must be > 0",
        )?;
        check(
            "pct_start",
            self.pct_start,
            (0.0..=1.0).contains(&self.pct_start),
            "must be in [0, 1]",
        )?;
        for m in [self.moms.0, self.moms.1, self.moms.2] {
            check("moms", m, m.is_finite(), "must be finite")?;
        }
        Ok(())
    }

    /// (lr, mom) at `pos`, the fraction of training done (fastai's `pct_train`).
    pub fn at(&self, pos: f64) -> (f64, f64) {
        (self.lr_at(self.lr_max, pos), self.mom_at(pos))
    }

    /// Learning rate at `pos` for a group whose peak is `lr_max` (fastai passes an array of
    /// per-group peaks through the same formula).
    pub fn lr_at(&self, lr_max: f64, pos: f64) -> f64 {
        combined_cos(
            self.pct_start,
            lr_max / self.div,
            lr_max,
            lr_max / self.div_final,
            pos,
        )
    }

    /// Momentum at `pos`.
    pub fn mom_at(&self, pos: f64) -> f64 {
        let (a, b, c) = self.moms;
        combined_cos(self.pct_start, a, b, c, pos)
    }

    /// (lr, mom) before batch `batch` of epoch `epoch`, with fastai's exact `pct_train`.
    pub fn at_batch(
        &self,
        epoch: usize,
        batch: usize,
        n_epoch: usize,
        n_iter: usize,
    ) -> (f64, f64) {
        self.at(fastai_pct_train(epoch, batch, n_epoch, n_iter))
    }
}

impl Schedule for OneCycle {
    fn peak_lr(&self) -> f64 {
        self.lr_max
    }
    fn lr_for(&self, lr_max: f64, iter: usize, total: usize) -> f64 {
        self.lr_at(lr_max, pos_at(iter, total))
    }
    fn mom(&self, iter: usize, total: usize) -> Option<f64> {
        Some(self.mom_at(pos_at(iter, total)))
    }
}

fn check(
    name: &'static str,
    value: f64,
    ok: bool,
    reason: &'static str,
) -> Result<(), ScheduleError> {
    if ok {
        Ok(())
    } else {
        Err(ScheduleError::InvalidParam {
            name,
            value,
            reason,
        })
    }
}

// ------------------------------------------------------------------------------------------------
// Slanted triangular learning rates (paper) and fastai 0.7's CircularLR
// ------------------------------------------------------------------------------------------------

/// The paper's slanted triangular learning rates (Howard & Ruder 2018, eq. 3; spec §4.4):
/// `cut = ⌊T·cut_frac⌋`; `p = t/cut` for `t < cut`, else `1 − (t − cut)/(cut·(1/cut_frac − 1))`;
/// `η_t = η_max·(1 + p·(ratio − 1))/ratio`.
///
/// Reproduced literally, including the formula's behaviour when `T·cut_frac` is not an integer:
/// the decay then reaches `η_max/ratio` before `T` and keeps going down, becoming **negative**
/// at the end (the fixture, T = 37, records this). [`CircularLr`] (what the original scripts
/// ran) decays over exactly `T − cut` iterations instead. Deviation: for `T·cut_frac < 1` the
/// paper divides by zero; here `cut` is at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stlr {
    /// Peak learning rate η_max. Paper: 0.01 (classifier), 0.004 (LM fine-tuning) [P §3.2, §4.1].
    pub lr_max: f64,
    /// Fraction of iterations spent increasing. Default 0.1 (paper §3.2).
    pub cut_frac: f64,
    /// Ratio of the peak to the lowest rate. Default 32 (paper §3.2).
    pub ratio: f64,
}

impl Stlr {
    /// STLR with the paper's `cut_frac = 0.1` and `ratio = 32`.
    pub fn new(lr_max: f64) -> Self {
        Self {
            lr_max,
            cut_frac: 0.1,
            ratio: 32.0,
        }
    }

    /// Checks `cut_frac` in (0, 1], `ratio > 0`, finite `lr_max`.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        check(
            "lr_max",
            self.lr_max,
            self.lr_max.is_finite(),
            "must be finite",
        )?;
        check(
            "cut_frac",
            self.cut_frac,
            self.cut_frac > 0.0 && self.cut_frac <= 1.0,
            "must be in (0, 1]",
        )?;
        check(
            "ratio",
            self.ratio,
            self.ratio.is_finite() && self.ratio > 0.0,
            "must be > 0",
        )
    }

    /// η_t at iteration `t` of `total` (T).
    pub fn at(&self, t: usize, total: usize) -> f64 {
        self.lr_at(self.lr_max, t, total)
    }

    /// η_t for a group whose peak is `lr_max`.
    pub fn lr_at(&self, lr_max: f64, t: usize, total: usize) -> f64 {
        let cut = ((total as f64 * self.cut_frac).floor() as usize).max(1);
        let (t, cutf) = (t as f64, cut as f64);
        let p = if t < cutf {
            t / cutf
        } else {
            1.0 - (t - cutf) / (cutf * (1.0 / self.cut_frac - 1.0))
        };
        lr_max * (1.0 + p * (self.ratio - 1.0)) / self.ratio
    }
}

impl Schedule for Stlr {
    fn peak_lr(&self) -> f64 {
        self.lr_max
    }
    fn lr_for(&self, lr_max: f64, iter: usize, total: usize) -> f64 {
        self.lr_at(lr_max, iter, total)
    }
    fn mom(&self, _iter: usize, _total: usize) -> Option<f64> {
        None
    }
}

/// fastai 0.7's `CircularLR` (`sgdr.py`), which the original ULMFiT scripts used to realise
/// STLR through `fit(..., use_clr=(div, cut_div))` (spec §4.4).
///
/// With cycle length `nb` (= `total`), `cut = nb // cut_div`; `p = t/cut` for `t <= cut`, else
/// `1 − (t − cut)/(nb − cut)`; `lr = base·(1 + p·(div − 1))/div`; after `nb` iterations the
/// cycle restarts. Differences from [`Stlr`]: the cut uses integer division; the decay runs over
/// `nb − cut` iterations (never negative; the paper's `cut·(1/cut_frac − 1)` only equals it when
/// `cut_div` divides `nb`); it cycles; optional linear momentum `moms.0 → moms.1` (at cut)
/// `→ moms.0`. The ULMFiT scripts did not cycle momentum. Deviation: where 0.7 divides by zero
/// (`nb < cut_div`), `cut` is taken as 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CircularLr {
    /// Base (peak) learning rate of the group.
    pub lr_max: f64,
    /// Peak / lowest ratio. Default 32, as the ULMFiT LM scripts' `use_clr=(32, 10)`
    /// (the 0.7 class default is 4; classifier scripts used 8).
    pub div: f64,
    /// The rate rises over `1/cut_div` of the cycle. Default 10 (`use_clr=(32, 10)`;
    /// the 0.7 class default is 8; classifier scripts used 3 and 8).
    pub cut_div: usize,
    /// Optional momentum cycle (high, low): `CircularLR(momentums=...)`. Default `None`.
    pub moms: Option<(f64, f64)>,
}

impl CircularLr {
    /// `CircularLR` as the ULMFiT LM scripts configured it: `use_clr=(32, 10)`, no momentum.
    pub fn new(lr_max: f64) -> Self {
        Self {
            lr_max,
            div: 32.0,
            cut_div: 10,
            moms: None,
        }
    }

    fn pct(&self, t: usize, nb: usize) -> (f64, usize, usize) {
        let nb = nb.max(1);
        let t = t % nb;
        let cut = (nb / self.cut_div.max(1)).max(1);
        (t as f64, cut, nb)
    }

    /// Learning rate at iteration `t` of a cycle of `nb` iterations, for peak `lr_max`.
    pub fn lr_at(&self, lr_max: f64, t: usize, nb: usize) -> f64 {
        let (t, cut, nb) = self.pct(t, nb);
        let cutf = cut as f64;
        let p = if t > cutf {
            1.0 - (t - cutf) / (nb - cut) as f64
        } else {
            t / cutf
        };
        lr_max * (1.0 + p * (self.div - 1.0)) / self.div
    }

    /// Momentum at iteration `t` of a cycle of `nb` iterations, if `moms` is set.
    pub fn mom_at(&self, t: usize, nb: usize) -> Option<f64> {
        let (hi, lo) = self.moms?;
        let (t, cut, nb) = self.pct(t, nb);
        let cutf = cut as f64;
        let p = if t > cutf {
            (t - cutf) / (nb - cut) as f64
        } else {
            1.0 - t / cutf
        };
        Some(lo + p * (hi - lo))
    }
}

impl Schedule for CircularLr {
    fn peak_lr(&self) -> f64 {
        self.lr_max
    }
    fn lr_for(&self, lr_max: f64, iter: usize, total: usize) -> f64 {
        self.lr_at(lr_max, iter, total)
    }
    fn mom(&self, iter: usize, total: usize) -> Option<f64> {
        self.mom_at(iter, total)
    }
}

// ------------------------------------------------------------------------------------------------
// Discriminative learning rates
// ------------------------------------------------------------------------------------------------

/// fastcore's `even_mults`: `n` log-spaced values from `start` to `stop`, computed as
/// `start·step^i` with `step = (stop/start)^(1/(n−1))` (bit-exact with fastcore).
/// `n == 1` gives `[stop]`; `n == 0` gives an empty vector.
pub fn even_mults(start: f64, stop: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![stop],
        _ => {
            let step = (stop / start).powf(1.0 / (n - 1) as f64);
            (0..n).map(|i| start * step.powf(i as f64)).collect()
        }
    }
}

/// A learning rate as fastai's `lr` / `lr_max` arguments take it (spec §4.6).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum LrSpec {
    /// A float: the same rate for every group.
    Float(f64),
    /// `slice(hi)` (`lo: None`) or `slice(lo, hi)`.
    Slice {
        /// Rate of the first group (`slice.start`).
        lo: Option<f64>,
        /// Rate of the last group (`slice.stop`).
        hi: f64,
    },
}

impl From<f64> for LrSpec {
    fn from(v: f64) -> Self {
        LrSpec::Float(v)
    }
}

impl LrSpec {
    /// `slice(lo, hi)`.
    pub fn slice(lo: f64, hi: f64) -> Self {
        LrSpec::Slice { lo: Some(lo), hi }
    }

    /// `slice(hi)`.
    pub fn slice_hi(hi: f64) -> Self {
        LrSpec::Slice { lo: None, hi }
    }

    /// The rate of each of `n` parameter groups, as fastai's `Optimizer.set_hyper` spreads it:
    /// float → the same value everywhere; `slice(lo, hi)` → [`even_mults`]`(lo, hi, n)`;
    /// `slice(hi)` → `hi/10` for all groups but the last, `hi` for the last. As in fastai, a
    /// `lo` of exactly 0 counts as absent (Python's `if v.start:`). `n == 0` gives `[]`.
    pub fn per_group(&self, n: usize) -> Vec<f64> {
        if n == 0 {
            return Vec::new();
        }
        match *self {
            LrSpec::Float(v) => vec![v; n],
            LrSpec::Slice { lo: Some(lo), hi } if lo != 0.0 => {
                let v = even_mults(lo, hi, n);
                if v.len() == 1 { vec![v[0]; n] } else { v }
            }
            LrSpec::Slice { hi, .. } => {
                let mut v = vec![hi / 10.0; n - 1];
                v.push(hi);
                v
            }
        }
    }

    /// The largest rate (the last group's for slices).
    pub fn max_lr(&self) -> f64 {
        match *self {
            LrSpec::Float(v) => v,
            LrSpec::Slice { hi, .. } => hi,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Learning-rate finder
// ------------------------------------------------------------------------------------------------

/// fastai v2's `Learner.lr_find` settings (`LRFinder` callback).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrFinder {
    /// First learning rate. Default 1e-7 (fastai v2 `lr_find`).
    pub start_lr: f64,
    /// Rate reached at `num_it`. Default 10 (fastai v2 `lr_find`).
    pub end_lr: f64,
    /// Number of batches. Default 100; fastai raises anything below 6 to 6 (`LRFinder`).
    pub num_it: usize,
    /// Stop once the smoothed loss exceeds 4× the best so far. Default true.
    pub stop_div: bool,
}

impl Default for LrFinder {
    fn default() -> Self {
        Self {
            start_lr: 1e-7,
            end_lr: 10.0,
            num_it: 100,
            stop_div: true,
        }
    }
}

impl LrFinder {
    /// Number of batches actually run (`max(num_it, 6)`, as `LRFinder.__init__`).
    pub fn effective_num_it(&self) -> usize {
        self.num_it.max(6)
    }

    /// Epochs fastai asks for: `num_it // batches_per_epoch + 1` (a zero-size loader gives 1).
    pub fn n_epoch(&self, batches_per_epoch: usize) -> usize {
        self.num_it.checked_div(batches_per_epoch).unwrap_or(0) + 1
    }

    /// Learning rate of batch `iter` (from 0): `start·(end/start)^(iter/num_it)` (`SchedExp`).
    pub fn lr_at(&self, iter: usize) -> f64 {
        let pos = iter as f64 / self.effective_num_it() as f64;
        self.start_lr * (self.end_lr / self.start_lr).powf(pos)
    }

    /// Checks `0 < start_lr < end_lr`, both finite.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        check(
            "start_lr",
            self.start_lr,
            self.start_lr.is_finite() && self.start_lr > 0.0,
            "must be > 0",
        )?;
        check(
            "end_lr",
            self.end_lr,
            self.end_lr.is_finite() && self.end_lr > self.start_lr,
            "must be finite and > start_lr",
        )
    }
}

/// fastai's `AvgSmoothLoss` (what `Recorder` records as the training loss): an exponential
/// moving average with debiasing, `val ← lerp(loss, val, β)`, value `val / (1 − β^count)`.
/// fastai keeps `val` in float32; this keeps f64.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SmoothLoss {
    /// Smoothing factor. Default 0.98 (fastai `Recorder(beta=0.98)`).
    pub beta: f64,
    count: u32,
    val: f64,
}

impl Default for SmoothLoss {
    fn default() -> Self {
        Self::new(0.98)
    }
}

impl SmoothLoss {
    /// A fresh average with smoothing `beta`.
    pub fn new(beta: f64) -> Self {
        Self {
            beta,
            count: 0,
            val: 0.0,
        }
    }

    /// Adds one batch loss and returns the new smoothed value.
    pub fn update(&mut self, loss: f64) -> f64 {
        self.count = self.count.saturating_add(1);
        // torch.lerp(loss, val, beta) with beta >= 0.5 evaluates as val - (val - loss)(1 - beta).
        self.val -= (self.val - loss) * (1.0 - self.beta);
        self.value()
    }

    /// Debiased value (NaN before the first update, as 0/0 in fastai).
    pub fn value(&self) -> f64 {
        self.val / (1.0 - self.beta.powi(self.count as i32))
    }

    /// Number of losses seen.
    pub fn count(&self) -> u32 {
        self.count
    }
}

/// A running LR-finder: asks for the rate of each batch, records smoothed losses and applies
/// fastai's stopping rule.
#[derive(Debug, Clone)]
pub struct LrFindRun {
    finder: LrFinder,
    smooth: SmoothLoss,
    best: f64,
    done: bool,
    lrs: Vec<f64>,
    losses: Vec<f64>,
}

impl LrFindRun {
    /// Starts a run with fastai's default smoothing (β = 0.98).
    pub fn new(finder: LrFinder) -> Self {
        Self {
            finder,
            smooth: SmoothLoss::default(),
            best: f64::INFINITY,
            done: false,
            lrs: Vec::new(),
            losses: Vec::new(),
        }
    }

    /// Rate for the next batch, or `None` once the run is over.
    pub fn next_lr(&self) -> Option<f64> {
        (!self.done).then(|| self.finder.lr_at(self.lrs.len()))
    }

    /// Records the raw training loss of the batch just run at [`LrFindRun::next_lr`]; returns
    /// `true` if training should go on. As fastai: the batch is recorded first (rate and
    /// smoothed loss), then the best loss updated, then the run stops if
    /// `smoothed > 4·best` (with `stop_div`) or `num_it` batches are done. A NaN loss never
    /// triggers the divergence test (as in fastai), it only ends the suggestion window.
    pub fn record(&mut self, raw_loss: f64) -> bool {
        if self.done {
            return false;
        }
        let lr = self.finder.lr_at(self.lrs.len());
        let s = self.smooth.update(raw_loss);
        self.lrs.push(lr);
        self.losses.push(s);
        if s < self.best {
            self.best = s;
        }
        if (self.finder.stop_div && s > 4.0 * self.best)
            || self.lrs.len() >= self.finder.effective_num_it()
        {
            self.done = true;
        }
        !self.done
    }

    /// Whether the run is over.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Recorded rates (`Recorder.lrs`).
    pub fn lrs(&self) -> &[f64] {
        &self.lrs
    }

    /// Recorded smoothed losses (`Recorder.losses`).
    pub fn losses(&self) -> &[f64] {
        &self.losses
    }

    /// fastai's suggestion for this run (window `[num_it/10, len−5)`, cut at the first NaN).
    pub fn suggest(&self, method: SuggestMethod) -> Result<Suggestion, ScheduleError> {
        suggest(&self.lrs, &self.losses, self.finder.num_it, method)
    }
}

/// Pure form of the LR finder: given the raw losses of consecutive batches (at least as many
/// as the run uses), returns the recorded `(lrs, smoothed losses)` up to and including the
/// batch at which fastai stops.
pub fn lr_find_trace(finder: &LrFinder, raw_losses: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut run = LrFindRun::new(*finder);
    for &l in raw_losses {
        if !run.record(l) {
            break;
        }
    }
    (run.lrs, run.losses)
}

/// fastai v2's suggestion functions (`SuggestionMethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SuggestMethod {
    /// `valley` (the default since fastai 2.5): middle of the longest descending stretch.
    Valley,
    /// `minimum`: one tenth of the rate at the lowest loss.
    Minimum,
    /// `steep`: the rate where the loss falls fastest (per unit of log lr).
    Steep,
}

/// A suggested learning rate and the point to mark on the plot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// Which rule produced it.
    pub method: SuggestMethod,
    /// Suggested learning rate.
    pub lr: f64,
    /// (lr, loss) point fastai marks on the plot (for `minimum`, the minimum itself, not lr/10).
    pub point: (f64, f64),
}

/// The slice of a recorded run fastai's `lr_find` passes to the suggestion functions:
/// `[num_it/10 .. len−5]` (Python slicing, so empty when too short), truncated at the first NaN
/// loss.
pub fn suggestion_window(lrs: &[f64], losses: &[f64], num_it: usize) -> (Vec<f64>, Vec<f64>) {
    let len = lrs.len().min(losses.len());
    let end = len.saturating_sub(5);
    let start = (num_it / 10).min(end);
    let mut l = lrs[start..end].to_vec();
    let mut s = losses[start..end].to_vec();
    if let Some(nan) = s.iter().position(|v| v.is_nan()) {
        l.truncate(nan);
        s.truncate(nan);
    }
    (l, s)
}

/// Window + rule: what `lr_find(suggest_funcs=(method,))` returns for a recorded run.
pub fn suggest(
    lrs: &[f64],
    losses: &[f64],
    num_it: usize,
    method: SuggestMethod,
) -> Result<Suggestion, ScheduleError> {
    let (l, s) = suggestion_window(lrs, losses, num_it);
    match method {
        SuggestMethod::Valley => valley(&l, &s),
        SuggestMethod::Minimum => minimum(&l, &s),
        SuggestMethod::Steep => steep(&l, &s),
    }
}

fn check_pair(lrs: &[f64], losses: &[f64], min_len: usize) -> Result<(), ScheduleError> {
    if lrs.len() != losses.len() {
        return Err(ScheduleError::LrFind(format!(
            "{} learning rates but {} losses",
            lrs.len(),
            losses.len()
        )));
    }
    if lrs.len() < min_len {
        return Err(ScheduleError::LrFind(format!(
            "need at least {min_len} recorded points, got {} (run more iterations)",
            lrs.len()
        )));
    }
    Ok(())
}

/// fastai's `valley`: longest strictly decreasing subsequence of the losses (O(n²) dynamic
/// programming), ending at `end` with length `len`; fastai takes `start = end − len` (one
/// before the actual first point) and suggests the rate at `start + ⌊s⌋ + ⌊s/2⌋`,
/// `s = (end − start)/3`, with Python's negative indexing when that is −1.
pub fn valley(lrs: &[f64], losses: &[f64]) -> Result<Suggestion, ScheduleError> {
    check_pair(lrs, losses, 1)?;
    let n = losses.len();
    let (mut max_start, mut max_end) = (0isize, 0usize);
    let mut lds = vec![1usize; n];
    for i in 1..n {
        for j in 0..i {
            if losses[i] < losses[j] && lds[i] < lds[j] + 1 {
                lds[i] = lds[j] + 1;
            }
            if lds[max_end] < lds[i] {
                max_end = i;
                // -1 when the valley starts at index 0 (fastai's off-by-one, kept).
                max_start = max_end as isize - lds[max_end] as isize;
            }
        }
    }
    let sections = (max_end as isize - max_start) as f64 / 3.0;
    let idx = max_start + sections as isize + (sections / 2.0) as isize;
    // Python indexing: -1 (only for valleys of at most 2 points from index 0) is the last point.
    let idx = if idx < 0 { idx + n as isize } else { idx };
    let idx = usize::try_from(idx).unwrap_or(0).min(n - 1);
    Ok(Suggestion {
        method: SuggestMethod::Valley,
        lr: lrs[idx],
        point: (lrs[idx], losses[idx]),
    })
}

fn first_argmin(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x < v[best] {
            best = i;
        }
    }
    best
}

fn loss_at_closest(lrs: &[f64], losses: &[f64], lr: f64) -> f64 {
    let mut best = 0;
    for (i, x) in lrs.iter().enumerate() {
        if (x - lr).abs() < (lrs[best] - lr).abs() {
            best = i;
        }
    }
    losses[best]
}

/// fastai's `minimum`: `lr_min / 10` where `lr_min` is the rate at the (first) lowest loss.
pub fn minimum(lrs: &[f64], losses: &[f64]) -> Result<Suggestion, ScheduleError> {
    check_pair(lrs, losses, 1)?;
    let lr_min = lrs[first_argmin(losses)];
    Ok(Suggestion {
        method: SuggestMethod::Minimum,
        lr: lr_min / 10.0,
        point: (lr_min, loss_at_closest(lrs, losses, lr_min)),
    })
}

/// fastai's `steep`: the rate `lrs[i]` minimising `(loss[i+1] − loss[i]) / (ln lr[i+1] − ln lr[i])`.
pub fn steep(lrs: &[f64], losses: &[f64]) -> Result<Suggestion, ScheduleError> {
    check_pair(lrs, losses, 2)?;
    if let Some(bad) = lrs.iter().find(|x| x.is_nan() || **x <= 0.0) {
        return Err(ScheduleError::LrFind(format!(
            "learning rate {bad} is not positive"
        )));
    }
    let grads: Vec<f64> = lrs
        .windows(2)
        .zip(losses.windows(2))
        .map(|(l, s)| (s[1] - s[0]) / (l[1].ln() - l[0].ln()))
        .collect();
    let lr_steep = lrs[first_argmin(&grads)];
    Ok(Suggestion {
        method: SuggestMethod::Steep,
        lr: lr_steep,
        point: (lr_steep, loss_at_closest(lrs, losses, lr_steep)),
    })
}

// ------------------------------------------------------------------------------------------------
// Fixture parity
// ------------------------------------------------------------------------------------------------

/// Result of comparing one fixture entry.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleEntryReport {
    /// Entry name (top-level key of `schedules.json`).
    pub name: String,
    /// `one_cycle`, `stlr` or `even_mults`.
    pub kind: String,
    /// Number of values compared.
    pub values_compared: usize,
    /// Largest absolute difference.
    pub max_abs_err: f64,
    /// Largest relative difference (`|a − b| / |b|`, absolute where `b == 0`).
    pub max_rel_err: f64,
}

/// Result of [`schedules_check`].
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleReport {
    /// Fixture file compared against.
    pub path: String,
    /// Number of values compared in total.
    pub values_compared: usize,
    /// Largest absolute difference over all values.
    pub max_abs_err: f64,
    /// Largest relative difference over all values.
    pub max_rel_err: f64,
    /// Per-entry detail.
    pub entries: Vec<ScheduleEntryReport>,
}

struct Entry<'a> {
    path: &'a str,
    name: &'a str,
    obj: &'a serde_json::Map<String, serde_json::Value>,
}

impl Entry<'_> {
    fn err(&self, reason: String) -> ScheduleError {
        ScheduleError::Fixture {
            path: self.path.to_string(),
            entry: self.name.to_string(),
            reason,
        }
    }
    fn num(&self, key: &str) -> Result<f64, ScheduleError> {
        self.obj
            .get(key)
            .and_then(|v| v.as_f64())
            .ok_or_else(|| self.err(format!("missing or non-numeric field `{key}`")))
    }
    fn count(&self, key: &str) -> Result<usize, ScheduleError> {
        self.obj
            .get(key)
            .and_then(|v| v.as_u64())
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| self.err(format!("missing or non-integer field `{key}`")))
    }
    fn list(&self, key: &str, len: usize) -> Result<Vec<f64>, ScheduleError> {
        let arr = self
            .obj
            .get(key)
            .and_then(|v| v.as_array())
            .ok_or_else(|| self.err(format!("missing list `{key}`")))?;
        if arr.len() != len {
            return Err(self.err(format!(
                "list `{key}` has {} values, expected {len}",
                arr.len()
            )));
        }
        arr.iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_f64()
                    .ok_or_else(|| self.err(format!("`{key}[{i}]` is not a number")))
            })
            .collect()
    }
}

#[derive(Default)]
struct Errs {
    n: usize,
    abs: f64,
    rel: f64,
}

impl Errs {
    fn add(&mut self, got: f64, want: f64) {
        let abs = (got - want).abs();
        let rel = if want == 0.0 { abs } else { abs / want.abs() };
        // NaN compares as the worst possible error.
        self.abs = if abs.is_nan() {
            f64::INFINITY
        } else {
            self.abs.max(abs)
        };
        self.rel = if rel.is_nan() {
            f64::INFINITY
        } else {
            self.rel.max(rel)
        };
        self.n += 1;
    }
}

fn check_entry(e: &Entry<'_>) -> Result<(&'static str, Errs), ScheduleError> {
    let mut errs = Errs::default();
    let has = |k: &str| e.obj.contains_key(k);
    if has("pct_start") && has("moms") {
        let n = e.count("n_iter")?;
        let m = e.list("moms", 3)?;
        let sched = OneCycle {
            lr_max: e.num("lr_max")?,
            div: e.num("div")?,
            div_final: e.num("div_final")?,
            pct_start: e.num("pct_start")?,
            moms: (m[0], m[1], m[2]),
        };
        let (lr, mom) = (e.list("lr", n)?, e.list("mom", n)?);
        for i in 0..n {
            let (l, mo) = sched.at(pos_at(i, n));
            errs.add(l, lr[i]);
            errs.add(mo, mom[i]);
        }
        Ok(("one_cycle", errs))
    } else if has("cut_frac") {
        let t = e.count("T")?;
        let sched = Stlr {
            lr_max: e.num("lr_max")?,
            cut_frac: e.num("cut_frac")?,
            ratio: e.num("ratio")?,
        };
        for (i, want) in e.list("lr", t)?.into_iter().enumerate() {
            errs.add(sched.at(i, t), want);
        }
        Ok(("stlr", errs))
    } else if has("start") && has("stop") {
        let n = e.count("n")?;
        let got = even_mults(e.num("start")?, e.num("stop")?, n);
        for (g, w) in got.into_iter().zip(e.list("values", n)?) {
            errs.add(g, w);
        }
        Ok(("even_mults", errs))
    } else {
        Err(e.err("unknown kind of entry (expected one-cycle, stlr or even_mults fields)".into()))
    }
}

/// Compares every entry of fastai's `schedules.json` (one-cycle lr and momentum, STLR,
/// `even_mults`) with this module. Fails on unreadable files and on entries it does not know,
/// so a new fixture entry cannot be skipped silently.
pub fn schedules_check(path: &Path) -> Result<ScheduleReport, ScheduleError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ScheduleError::Io {
        path: shown.clone(),
        source,
    })?;
    let root: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ScheduleError::Json {
            path: shown.clone(),
            source,
        })?;
    let top = root.as_object().ok_or_else(|| ScheduleError::Fixture {
        path: shown.clone(),
        entry: String::new(),
        reason: "top level is not an object".into(),
    })?;
    let mut report = ScheduleReport {
        path: shown.clone(),
        values_compared: 0,
        max_abs_err: 0.0,
        max_rel_err: 0.0,
        entries: Vec::new(),
    };
    for (name, value) in top {
        let obj = value.as_object().ok_or_else(|| ScheduleError::Fixture {
            path: shown.clone(),
            entry: name.clone(),
            reason: "entry is not an object".into(),
        })?;
        let entry = Entry {
            path: &shown,
            name,
            obj,
        };
        let (kind, errs) = check_entry(&entry)?;
        report.values_compared += errs.n;
        report.max_abs_err = report.max_abs_err.max(errs.abs);
        report.max_rel_err = report.max_rel_err.max(errs.rel);
        report.entries.push(ScheduleEntryReport {
            name: name.clone(),
            kind: kind.into(),
            values_compared: errs.n,
            max_abs_err: errs.abs,
            max_rel_err: errs.rel,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn fastai_schedule_fixture_parity() {
        let path = crate::paths::fixture("schedules.json");
        let r = schedules_check(&path).unwrap_or_else(|e| panic!("{e}"));
        // 3 one-cycle entries × 37 × (lr, mom) + 37 STLR + 5 even_mults.
        assert!(r.entries.len() >= 5, "{r:?}");
        assert!(r.values_compared >= 3 * 37 * 2 + 37 + 5, "{r:?}");
        // Bit-exact in practice; allow a few ulps for a different libm.
        assert!(r.max_rel_err <= 1e-13, "{r:?}");
    }

    #[test]
    fn one_cycle_spec_vectors() {
        // Spec §4.5 test vectors: lr_max 1e-2, text moms.
        let s = OneCycle::new(1e-2);
        s.validate().unwrap();
        let cases = [
            (0.0, 4e-4, 0.8),
            (0.125, 5.2e-3, 0.75),
            (0.25, 1e-2, 0.7),
            (0.625, 5.00005e-3, 0.75),
            (0.75, 2.50007e-3, 0.775),
            (1.0, 1e-7, 0.8),
        ];
        for (pos, lr, mom) in cases {
            let (l, m) = s.at(pos);
            assert!(close(l, lr, 1e-5), "pos {pos}: lr {l} vs {lr}");
            // fastai computes the in-phase position in float32: ~3e-9 off the exact value.
            assert!(close(m, mom, 1e-8), "pos {pos}: mom {m} vs {mom}");
        }
        // Per-group evaluation equals evaluating a schedule with that peak.
        let g = s.group_lrs(&[1e-3, 1e-2], 5, 37);
        assert_eq!(g[0], OneCycle::new(1e-3).lr_mom(5, 37).0);
        assert_eq!(g[1], s.lr_mom(5, 37).0);
    }

    #[test]
    fn fastai_pct_train_matches_ratio() {
        let pos = fastai_positions(3, 7);
        assert_eq!(pos.len(), 21);
        for (i, p) in pos.iter().enumerate() {
            assert!((p - pos_at(i, 21)).abs() < 1e-15);
            assert_eq!(*p, fastai_pct_train(i / 7, i % 7, 3, 7));
        }
        assert_eq!(fastai_positions(0, 5), Vec::<f64>::new());
    }

    #[test]
    fn stlr_spec_vectors_and_circular_lr() {
        let s = Stlr::new(0.01);
        s.validate().unwrap();
        for (t, want) in [
            (0, 3.125e-4),
            (50, 5.15625e-3),
            (100, 1e-2),
            (550, 5.15625e-3),
            (999, 3.2326e-4),
            (1000, 3.125e-4),
        ] {
            assert!(close(s.at(t, 1000), want, 1e-4), "t={t}: {}", s.at(t, 1000));
        }
        // When cut_div divides T, 0.7's CircularLR equals the paper's STLR.
        let c = CircularLr::new(0.01);
        for t in 0..1000 {
            assert!(close(c.lr_at(0.01, t, 1000), s.at(t, 1000), 1e-12), "t={t}");
        }
        // Otherwise CircularLR stays positive and cycles; STLR goes below lr/ratio.
        assert!((0..37).all(|t| c.lr_at(0.01, t, 37) > 0.01 / 32.0 - 1e-18));
        assert!(s.at(36, 37) < 0.0);
        assert_eq!(c.lr_at(0.01, 37 + 5, 37), c.lr_at(0.01, 5, 37));
        assert_eq!(c.mom(3, 37), None);
        let cm = CircularLr {
            moms: Some((0.8, 0.7)),
            ..c
        };
        assert_eq!(cm.mom(0, 100), Some(0.8));
        assert!(close(cm.mom(10, 100).unwrap(), 0.7, 1e-12));
        assert!(close(cm.mom(55, 100).unwrap(), 0.75, 1e-12));
    }

    #[test]
    fn lr_spec_spreading() {
        assert_eq!(LrSpec::Float(0.1).per_group(3), vec![0.1; 3]);
        assert_eq!(LrSpec::slice_hi(1.0).per_group(3), vec![0.1, 0.1, 1.0]);
        assert_eq!(LrSpec::slice(0.0, 1.0).per_group(2), vec![0.1, 1.0]);
        assert_eq!(LrSpec::slice(0.5, 1.0).per_group(1), vec![1.0]);
        assert!(LrSpec::slice(0.5, 1.0).per_group(0).is_empty());
        let lr = 1e-2;
        let v = LrSpec::slice(lr / 2.6f64.powi(4), lr).per_group(5);
        for (k, x) in v.iter().enumerate() {
            assert!(close(*x, lr / 2.6f64.powi(4 - k as i32), 1e-12));
        }
        assert_eq!(*v.last().unwrap(), lr);
        assert_eq!(LrSpec::from(3.0).max_lr(), 3.0);
    }

    #[test]
    fn lr_finder_schedule_and_stop() {
        let f = LrFinder::default();
        f.validate().unwrap();
        assert_eq!(f.lr_at(0), 1e-7);
        assert!(close(f.lr_at(50), 1e-3, 1e-12));
        assert_eq!(f.n_epoch(30), 4);
        assert_eq!(LrFinder { num_it: 2, ..f }.effective_num_it(), 6);
        // Flat loss: runs num_it batches.
        let (l, s) = lr_find_trace(&f, &[1.0; 500]);
        assert_eq!(l.len(), 100);
        assert!(s.iter().all(|v| close(*v, 1.0, 1e-12)));
        // Loss blowing up at batch 60: stops at the first batch whose smoothed loss > 4×best.
        let raw: Vec<f64> = (0..100).map(|i| if i < 60 { 1.0 } else { 1e3 }).collect();
        let (l, s) = lr_find_trace(&f, &raw);
        let stop = s.iter().position(|v| *v > 4.0).unwrap();
        assert_eq!(l.len(), stop + 1);
        assert!(stop >= 60);
        // Without stop_div the whole run is kept.
        let (l, _) = lr_find_trace(
            &LrFinder {
                stop_div: false,
                ..f
            },
            &raw,
        );
        assert_eq!(l.len(), 100);
    }

    #[test]
    fn smooth_loss_is_debiased_ema() {
        let mut s = SmoothLoss::default();
        assert_eq!(s.update(2.0), 2.0);
        let mut ema = 0.02 * 2.0;
        for (k, x) in [3.0, 1.0, 5.0].into_iter().enumerate() {
            ema = 0.98 * ema + 0.02 * x;
            let got = s.update(x);
            assert!(close(got, ema / (1.0 - 0.98f64.powi(k as i32 + 2)), 1e-12));
        }
        assert_eq!(s.count(), 4);
    }

    #[test]
    fn suggestions() {
        let lrs: Vec<f64> = (0..20).map(|i| 10f64.powf(-6.0 + i as f64 * 0.3)).collect();
        // Falls from index 2 to 12 then rises.
        let losses: Vec<f64> = (0..20)
            .map(|i: i32| {
                if i < 2 {
                    5.0
                } else {
                    3.0 + ((i - 12) as f64).powi(2) * 0.01
                }
            })
            .collect();
        let m = minimum(&lrs, &losses).unwrap();
        assert_eq!(m.point.0, lrs[12]);
        assert!(close(m.lr, lrs[12] / 10.0, 1e-15));
        let st = steep(&lrs, &losses).unwrap();
        assert_eq!(st.lr, lrs[1]); // the big drop 5 -> ~4 between 1 and 2
        // valley: longest decreasing run ends at 12 with length 12 ({0} ∪ 2..=12), so
        // start = 0, s = 4, index 0 + 4 + 2 = 6.
        let v = valley(&lrs, &losses).unwrap();
        assert_eq!(v.lr, lrs[6]);
        assert_eq!(v.point, (lrs[6], losses[6]));
        // Longest decreasing subsequence 3.9,3.8,3.7,3.5,3.0,2.5,2.0,1.9 (+4.0/4.5 before it)
        // ends at 12 with length 9: start 3, s = 3, index 3 + 3 + 1 = 7.
        let l2 = [
            4.0, 4.5, 3.9, 3.8, 4.2, 3.7, 3.5, 3.6, 3.0, 2.5, 2.7, 2.0, 1.9, 2.2, 3.0, 5.0, 9.0,
        ];
        assert_eq!(valley(&lrs[..17], &l2).unwrap().lr, lrs[7]);
        // Two decreasing points: start = -1, index -1 -> the last point (Python indexing).
        assert_eq!(valley(&[1.0, 2.0], &[3.0, 2.0]).unwrap().lr, 2.0);
        assert_eq!(valley(&[1.0], &[3.0]).unwrap().lr, 1.0);
        assert!(valley(&[], &[]).is_err());
        assert!(steep(&[1.0], &[1.0]).is_err());
        assert!(minimum(&[1.0, 2.0], &[1.0]).is_err());
        // Window: [num_it/10, len-5), cut at NaN.
        let mut l2 = losses.clone();
        l2[8] = f64::NAN;
        let (wl, ws) = suggestion_window(&lrs, &l2, 20);
        assert_eq!(wl.len(), 6);
        assert_eq!(ws[0], losses[2]);
        assert_eq!(suggestion_window(&lrs[..3], &losses[..3], 100).0.len(), 0);
    }
}
