//! Classification and language-model metrics over plain slices: accuracy, error rate,
//! confusion matrix with per-class precision / recall / F1, macro F1, and perplexity.
//!
//! Conventions follow fastai (`accuracy`, `error_rate`, `Perplexity`, `AvgLoss`) and, for F1,
//! scikit-learn's `f1_score(average="macro")` that fastai's `F1Score` wraps: classes that occur
//! neither in the targets nor in the predictions are left out of the macro average, and an
//! undefined precision or recall (0/0) counts as 0.

use serde::{Deserialize, Serialize};

/// Errors of the metrics module.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    /// Predictions and targets differ in length.
    #[error("{preds} predictions but {targets} targets")]
    LengthMismatch {
        /// Number of predictions.
        preds: usize,
        /// Number of targets.
        targets: usize,
    },
    /// No samples at all.
    #[error("no samples to compute `{0}` over")]
    Empty(&'static str),
    /// A class id is `>= n_classes`.
    #[error("{what}[{index}] = {class} is out of range for {n_classes} classes")]
    ClassOutOfRange {
        /// `preds` or `targets`.
        what: &'static str,
        /// Position in the slice.
        index: usize,
        /// Offending class id.
        class: usize,
        /// Number of classes.
        n_classes: usize,
    },
    /// Logits length is not a multiple of the number of classes.
    #[error("{len} logits do not split into rows of {n_classes} classes")]
    BadShape {
        /// Length of the logits slice.
        len: usize,
        /// Row length.
        n_classes: usize,
    },
    /// A NaN logit (its row has no well-defined argmax).
    #[error("logit {index} is NaN")]
    NaN {
        /// Flat position of the NaN.
        index: usize,
    },
}

fn check_lengths(
    preds: &[usize],
    targets: &[usize],
    what: &'static str,
) -> Result<(), MetricsError> {
    if preds.len() != targets.len() {
        return Err(MetricsError::LengthMismatch {
            preds: preds.len(),
            targets: targets.len(),
        });
    }
    if preds.is_empty() {
        return Err(MetricsError::Empty(what));
    }
    Ok(())
}

/// Fraction of predictions equal to their target (fastai `accuracy`).
pub fn accuracy(preds: &[usize], targets: &[usize]) -> Result<f64, MetricsError> {
    check_lengths(preds, targets, "accuracy")?;
    let correct = preds.iter().zip(targets).filter(|(p, t)| p == t).count();
    Ok(correct as f64 / preds.len() as f64)
}

/// `1 − accuracy` (fastai `error_rate`).
pub fn error_rate(preds: &[usize], targets: &[usize]) -> Result<f64, MetricsError> {
    check_lengths(preds, targets, "error_rate")?;
    let wrong = preds.iter().zip(targets).filter(|(p, t)| p != t).count();
    Ok(wrong as f64 / preds.len() as f64)
}

/// Row-wise argmax of row-major `logits` with `n_classes` columns (first maximum on ties, as
/// `torch.argmax`). A NaN logit is an error. Works for `f32` and `f64` logits.
pub fn argmax_rows<T: Copy + Into<f64>>(
    logits: &[T],
    n_classes: usize,
) -> Result<Vec<usize>, MetricsError> {
    if n_classes == 0 || !logits.len().is_multiple_of(n_classes) {
        return Err(MetricsError::BadShape {
            len: logits.len(),
            n_classes,
        });
    }
    logits
        .chunks_exact(n_classes)
        .enumerate()
        .map(|(r, row)| {
            let mut best = 0;
            let mut best_v = f64::NEG_INFINITY;
            for (c, v) in row.iter().enumerate() {
                let v: f64 = (*v).into();
                if v.is_nan() {
                    return Err(MetricsError::NaN {
                        index: r * n_classes + c,
                    });
                }
                if c == 0 || v > best_v {
                    best = c;
                    best_v = v;
                }
            }
            Ok(best)
        })
        .collect()
}

/// Accuracy of row-major `logits` (`n_classes` per row) against `targets`.
pub fn accuracy_from_logits<T: Copy + Into<f64>>(
    logits: &[T],
    n_classes: usize,
    targets: &[usize],
) -> Result<f64, MetricsError> {
    accuracy(&argmax_rows(logits, n_classes)?, targets)
}

/// Perplexity `exp(mean cross-entropy)` (fastai `Perplexity`; natural log).
pub fn perplexity(mean_loss: f64) -> f64 {
    mean_loss.exp()
}

/// Batch-size-weighted running mean of batch losses (fastai `AvgLoss`: `total += mean·bs`,
/// `count += bs`); what fastai reports as the validation loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AvgLoss {
    total: f64,
    count: usize,
}

impl AvgLoss {
    /// Empty average.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a batch whose mean loss is `batch_mean` over `batch_size` items.
    pub fn add(&mut self, batch_mean: f64, batch_size: usize) {
        self.total += batch_mean * batch_size as f64;
        self.count += batch_size;
    }

    /// Mean loss so far, `None` before any item.
    pub fn value(&self) -> Option<f64> {
        (self.count > 0).then(|| self.total / self.count as f64)
    }

    /// `exp` of [`AvgLoss::value`].
    pub fn perplexity(&self) -> Option<f64> {
        self.value().map(perplexity)
    }

    /// Number of items seen.
    pub fn count(&self) -> usize {
        self.count
    }
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassStats {
    /// `tp / (tp + fp)`, 0 when the class is never predicted.
    pub precision: f64,
    /// `tp / (tp + fn)`, 0 when the class never occurs.
    pub recall: f64,
    /// Harmonic mean of precision and recall, 0 when both are 0.
    pub f1: f64,
    /// Number of targets of this class.
    pub support: u64,
}

/// Confusion matrix: `count(t, p)` = number of samples of true class `t` predicted as `p`
/// (rows = truth, columns = prediction, as fastai's `ClassificationInterpretation`).
/// Serializable for reports; not deserializable (its invariants are not checked on input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfusionMatrix {
    n_classes: usize,
    counts: Vec<u64>,
    total: u64,
}

impl ConfusionMatrix {
    /// All-zero matrix for `n_classes` classes.
    pub fn new(n_classes: usize) -> Self {
        Self {
            n_classes,
            counts: vec![0; n_classes * n_classes],
            total: 0,
        }
    }

    /// Matrix of `preds` against `targets` (same length; empty is allowed).
    pub fn from_preds(
        preds: &[usize],
        targets: &[usize],
        n_classes: usize,
    ) -> Result<Self, MetricsError> {
        if preds.len() != targets.len() {
            return Err(MetricsError::LengthMismatch {
                preds: preds.len(),
                targets: targets.len(),
            });
        }
        let mut m = Self::new(n_classes);
        for (i, (&p, &t)) in preds.iter().zip(targets).enumerate() {
            m.add_at(p, t, i)?;
        }
        Ok(m)
    }

    fn add_at(&mut self, pred: usize, target: usize, index: usize) -> Result<(), MetricsError> {
        for (what, class) in [("preds", pred), ("targets", target)] {
            if class >= self.n_classes {
                return Err(MetricsError::ClassOutOfRange {
                    what,
                    index,
                    class,
                    n_classes: self.n_classes,
                });
            }
        }
        self.counts[target * self.n_classes + pred] += 1;
        self.total += 1;
        Ok(())
    }

    /// Adds one sample.
    pub fn add(&mut self, pred: usize, target: usize) -> Result<(), MetricsError> {
        let index = usize::try_from(self.total).unwrap_or(usize::MAX);
        self.add_at(pred, target, index)
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Samples of true class `target` predicted as `pred` (0 when out of range).
    pub fn count(&self, target: usize, pred: usize) -> u64 {
        if target < self.n_classes && pred < self.n_classes {
            self.counts[target * self.n_classes + pred]
        } else {
            0
        }
    }

    /// The matrix as rows (truth) of columns (prediction).
    pub fn rows(&self) -> Vec<Vec<u64>> {
        if self.n_classes == 0 {
            return Vec::new();
        }
        self.counts
            .chunks_exact(self.n_classes)
            .map(<[u64]>::to_vec)
            .collect()
    }

    /// Number of samples.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Number of correct predictions (the diagonal).
    pub fn correct(&self) -> u64 {
        (0..self.n_classes).map(|c| self.count(c, c)).sum()
    }

    /// Accuracy, `None` when empty.
    pub fn accuracy(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| self.correct() as f64 / total as f64)
    }

    /// Targets of class `c` (row sum).
    pub fn support(&self, c: usize) -> u64 {
        (0..self.n_classes).map(|p| self.count(c, p)).sum()
    }

    /// Predictions of class `c` (column sum).
    pub fn predicted(&self, c: usize) -> u64 {
        (0..self.n_classes).map(|t| self.count(t, c)).sum()
    }

    /// Precision, recall, F1 and support of class `c`.
    pub fn class_stats(&self, c: usize) -> ClassStats {
        let tp = self.count(c, c) as f64;
        let support = self.support(c);
        let predicted = self.predicted(c);
        let ratio = |den: u64| if den == 0 { 0.0 } else { tp / den as f64 };
        let (precision, recall) = (ratio(predicted), ratio(support));
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        ClassStats {
            precision,
            recall,
            f1,
            support,
        }
    }

    /// [`ConfusionMatrix::class_stats`] of every class.
    pub fn per_class(&self) -> Vec<ClassStats> {
        (0..self.n_classes).map(|c| self.class_stats(c)).collect()
    }

    /// Macro F1 over the classes that occur in the targets or the predictions
    /// (scikit-learn's default label set); `None` when the matrix is empty.
    pub fn macro_f1(&self) -> Option<f64> {
        let present: Vec<f64> = (0..self.n_classes)
            .filter(|&c| self.support(c) + self.predicted(c) > 0)
            .map(|c| self.class_stats(c).f1)
            .collect();
        (!present.is_empty()).then(|| present.iter().sum::<f64>() / present.len() as f64)
    }
}

/// Macro F1 of `preds` against `targets` (see [`ConfusionMatrix::macro_f1`]).
pub fn macro_f1(preds: &[usize], targets: &[usize], n_classes: usize) -> Result<f64, MetricsError> {
    check_lengths(preds, targets, "macro_f1")?;
    ConfusionMatrix::from_preds(preds, targets, n_classes)?
        .macro_f1()
        .ok_or(MetricsError::Empty("macro_f1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn accuracy_and_error_rate_small_case() {
        let p = [0, 1, 2, 1, 0];
        let t = [0, 1, 1, 1, 2];
        assert!(close(accuracy(&p, &t).unwrap(), 0.6));
        assert!(close(error_rate(&p, &t).unwrap(), 0.4));
        assert_eq!(
            accuracy(&p, &t[..4]),
            Err(MetricsError::LengthMismatch {
                preds: 5,
                targets: 4
            })
        );
        assert_eq!(accuracy(&[], &[]), Err(MetricsError::Empty("accuracy")));
    }

    #[test]
    fn argmax_and_logits_accuracy() {
        let logits: [f32; 9] = [0.1, 2.0, -1.0, 3.0, 3.0, 0.0, -5.0, -6.0, -4.0];
        assert_eq!(argmax_rows(&logits, 3).unwrap(), vec![1, 0, 2]);
        assert!(close(
            accuracy_from_logits(&logits, 3, &[1, 1, 2]).unwrap(),
            2.0 / 3.0
        ));
        assert!(matches!(
            argmax_rows(&logits, 4),
            Err(MetricsError::BadShape { .. })
        ));
        assert_eq!(
            argmax_rows(&[0.0f64, f64::NAN], 2),
            Err(MetricsError::NaN { index: 1 })
        );
        assert_eq!(argmax_rows(&[f64::NEG_INFINITY; 2], 2).unwrap(), vec![0]);
    }

    #[test]
    fn confusion_matrix_hand_checked() {
        // truth: 0 0 0 1 1 2 ; pred: 0 1 0 1 2 2
        let t = [0, 0, 0, 1, 1, 2];
        let p = [0, 1, 0, 1, 2, 2];
        let m = ConfusionMatrix::from_preds(&p, &t, 3).unwrap();
        assert_eq!(m.rows(), vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]);
        assert_eq!((m.total(), m.correct()), (6, 4));
        // class 0: tp 2, predicted 2, support 3 -> P 1, R 2/3, F1 0.8
        let s0 = m.class_stats(0);
        assert!(close(s0.precision, 1.0) && close(s0.recall, 2.0 / 3.0) && close(s0.f1, 0.8));
        // class 1: tp 1, predicted 2, support 2 -> P 0.5, R 0.5, F1 0.5
        let s1 = m.class_stats(1);
        assert!(close(s1.f1, 0.5) && s1.support == 2);
        // class 2: tp 1, predicted 2, support 1 -> P 0.5, R 1, F1 2/3
        assert!(close(m.class_stats(2).f1, 2.0 / 3.0));
        let mf1 = (0.8 + 0.5 + 2.0 / 3.0) / 3.0;
        assert!(close(m.macro_f1().unwrap(), mf1));
        assert!(close(macro_f1(&p, &t, 3).unwrap(), mf1));
        assert!(close(m.accuracy().unwrap(), accuracy(&p, &t).unwrap()));
        assert!(matches!(
            ConfusionMatrix::from_preds(&[3], &[0], 3),
            Err(MetricsError::ClassOutOfRange {
                what: "preds",
                class: 3,
                ..
            })
        ));
    }

    #[test]
    fn invariants() {
        // Perfect predictions: accuracy 1, every present class P = R = F1 = 1, macro F1 = 1.
        let t = [3, 1, 4, 1, 5, 2, 6, 5, 3, 5];
        let m = ConfusionMatrix::from_preds(&t, &t, 8).unwrap();
        assert_eq!(m.accuracy(), Some(1.0));
        assert_eq!(m.macro_f1(), Some(1.0));
        // Classes 0 and 7 never occur: excluded from the macro average, stats all zero.
        assert_eq!(m.class_stats(0).f1, 0.0);
        // All wrong: accuracy 0 and macro F1 0.
        let wrong: Vec<usize> = t.iter().map(|c| (c + 1) % 8).collect();
        let w = ConfusionMatrix::from_preds(&wrong, &t, 8).unwrap();
        assert_eq!((w.accuracy(), w.macro_f1()), (Some(0.0), Some(0.0)));
        // Sums: row sums = class counts in targets, column sums = in predictions, total = n.
        let p = [0, 1, 1, 2, 2, 2, 0, 1, 2, 0];
        let m = ConfusionMatrix::from_preds(&p, &t[..], 8).unwrap();
        for c in 0..8 {
            assert_eq!(m.support(c), t.iter().filter(|&&x| x == c).count() as u64);
            assert_eq!(m.predicted(c), p.iter().filter(|&&x| x == c).count() as u64);
            let s = m.class_stats(c);
            assert!((0.0..=1.0).contains(&s.f1));
            assert!(s.f1 <= s.precision.max(s.recall) + 1e-15);
            assert!(s.f1 + 1e-15 >= s.precision.min(s.recall));
        }
        assert_eq!(m.total(), 10);
        assert!(close(
            accuracy(&p, &t).unwrap() + error_rate(&p, &t).unwrap(),
            1.0
        ));
        // Incremental adds give the same matrix.
        let mut inc = ConfusionMatrix::new(8);
        for (a, b) in p.iter().zip(&t) {
            inc.add(*a, *b).unwrap();
        }
        assert_eq!(inc, m);
        assert_eq!(ConfusionMatrix::new(3).macro_f1(), None);
    }

    #[test]
    fn perplexity_and_avg_loss() {
        assert_eq!(perplexity(0.0), 1.0);
        assert!(close(perplexity(2f64.ln()), 2.0));
        let mut a = AvgLoss::new();
        assert_eq!(a.value(), None);
        a.add(1.0, 3);
        a.add(2.0, 1);
        assert!(close(a.value().unwrap(), 1.25));
        assert!(close(a.perplexity().unwrap(), 1.25f64.exp()));
        assert_eq!(a.count(), 4);
    }
}
