//! Parity of the schedules with the `schedules.json` fixture recorded from fastai.

use serde::Serialize;
use std::path::Path;

use super::schedule::*;

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
}
