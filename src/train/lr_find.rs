//! fastai v2's learning-rate finder: the exponential schedule, its stopping rule, the loss
//! smoothing and the suggestion rules (`valley`, `minimum`, `steep`).

use serde::{Deserialize, Serialize};

use super::schedule::{ScheduleError, check};

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

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn lr_finder_schedule_and_stop() {
        let _serial = crate::test_util::serial();
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
        let _serial = crate::test_util::serial();
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
        let _serial = crate::test_util::serial();
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
