//! One parity check's result and float comparisons.

use serde::Serialize;

/// The outcome of one parity check, printed as one JSON line by the parity runner.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// Check name (`lm_eval`, `clas_train_grads`, ...).
    pub check: String,
    /// Largest error found (absolute, or relative where `relative` is set).
    pub max_abs_err: f64,
    /// The tolerance it was held to.
    pub tolerance: f64,
    /// Whether `max_abs_err <= tolerance` and nothing else failed.
    pub pass: bool,
    /// Whether errors are relative to the compared tensor's largest magnitude.
    pub relative: bool,
    /// Number of values compared.
    pub compared: usize,
    /// What was compared, or why it failed.
    pub detail: String,
}

/// Accumulates comparisons for one check.
#[derive(Clone, Debug)]
pub struct Comparison {
    name: String,
    tolerance: f64,
    relative: bool,
    max_err: f64,
    compared: usize,
    worst: String,
    problems: Vec<String>,
}

impl Comparison {
    /// Absolute comparison (outputs: fixtures README tolerance 1e-5).
    pub fn absolute(name: &str, tolerance: f64) -> Self {
        Self::new(name, tolerance, false)
    }

    /// Relative comparison: each tensor's error divided by its largest magnitude (gradients and
    /// parameters after optimizer steps: 1e-4).
    pub fn relative(name: &str, tolerance: f64) -> Self {
        Self::new(name, tolerance, true)
    }

    fn new(name: &str, tolerance: f64, relative: bool) -> Self {
        Self {
            name: name.to_string(),
            tolerance,
            relative,
            max_err: 0.0,
            compared: 0,
            worst: String::new(),
            problems: vec![],
        }
    }

    /// Compares one tensor's values.
    pub fn compare(&mut self, what: &str, got: &[f32], want: &[f32]) {
        if got.len() != want.len() {
            self.problems.push(format!(
                "{what}: {} values, expected {}",
                got.len(),
                want.len()
            ));
            return;
        }
        let scale = if self.relative {
            want.iter()
                .fold(0.0f64, |m, v| m.max(f64::from(v.abs())))
                .max(1e-12)
        } else {
            1.0
        };
        for (g, w) in got.iter().zip(want) {
            let err = (f64::from(*g) - f64::from(*w)).abs() / scale;
            let err = if err.is_nan() { f64::INFINITY } else { err };
            if err > self.max_err {
                self.max_err = err;
                self.worst = what.to_string();
            }
        }
        self.compared += got.len();
    }

    /// Records a failure that is not a numeric difference.
    pub fn fail(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    /// The result.
    pub fn finish(self, detail: &str) -> CheckResult {
        let pass = self.problems.is_empty() && self.max_err <= self.tolerance && self.compared > 0;
        let mut detail = detail.to_string();
        if !self.worst.is_empty() {
            detail.push_str(&format!("; largest error in {}", self.worst));
        }
        if self.compared == 0 {
            detail.push_str("; nothing was compared");
        }
        for p in &self.problems {
            detail.push_str("; ");
            detail.push_str(p);
        }
        CheckResult {
            check: self.name,
            max_abs_err: self.max_err,
            tolerance: self.tolerance,
            pass,
            relative: self.relative,
            compared: self.compared,
            detail,
        }
    }
}

/// A check that could not run at all (missing or malformed input).
pub fn failed(check: &str, tolerance: f64, error: impl std::fmt::Display) -> CheckResult {
    CheckResult {
        check: check.to_string(),
        max_abs_err: f64::INFINITY,
        tolerance,
        pass: false,
        relative: false,
        compared: 0,
        detail: error.to_string(),
    }
}
