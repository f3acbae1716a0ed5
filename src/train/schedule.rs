//! Learning-rate and momentum schedules and discriminative learning rates.
//!
//! * [`OneCycle`]: fastai v2's `fit_one_cycle` (`combined_cos` for lr and momentum), bit-exact
//!   with fastai, including its float32 computation of the position inside each phase
//!   (spec §4.5).
//! * [`Stlr`]: the paper's slanted triangular learning rates (eq. 3, spec §4.4), and
//!   [`CircularLr`]: how fastai 0.7's `CircularLR` (used by the original ULMFiT scripts)
//!   realised them.
//! * [`even_mults`] and [`LrSpec`]: fastai's spreading of one learning rate over the parameter
//!   groups (spec §4.6).
//!
//! The LR finder is in [`lr_find`](super::lr_find), the fixture check in
//! [`schedule_parity`](super::schedule_parity).

use serde::{Deserialize, Serialize};

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

pub(crate) fn check(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
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
}
