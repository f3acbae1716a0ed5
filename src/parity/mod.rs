//! Parity with fastai, proven against reference fixtures recorded from fastai itself
//! (`shared/fixtures/fastai`, see its README). Each check returns a [`CheckResult`]; the
//! `fastai_parity` example prints them as JSON lines and the integration tests assert them.

pub mod fixture;
pub mod model;
pub mod report;
pub mod train;

use std::path::Path;

use burn::tensor::Device;

pub use crate::paths::fixtures_dir;
pub use fixture::{Fixture, FixtureError};
pub use report::CheckResult;

/// The checks that run a model, on `device`.
pub fn model_checks(dir: &Path, device: &Device) -> Vec<CheckResult> {
    vec![
        model::lm_eval(dir, device),
        model::lm_train_grads(dir, device),
        model::clas_eval(dir, device),
        model::clas_train_grads(dir, device),
        model::wt103_like(dir, device),
        model::pretrained_adapted(dir, device),
        train::adam_steps(dir, device),
    ]
}

/// The tokenizer must reproduce fastai's tokens exactly on at least this share of texts.
pub const TOKENIZER_MIN_RATE: f64 = 0.995;

/// Relative tolerance of the schedule values (they are computed, not trained: essentially exact).
pub const SCHEDULE_TOL: f64 = 1e-9;

/// The checks that need no model: language-model batching, classifier padding, the tokenizer,
/// the vocabulary and the schedules.
pub fn pipeline_checks(dir: &Path) -> Vec<CheckResult> {
    let mut out = vec![];
    out.push(
        match crate::data::lm_batches_check(dir.join("lm_batches.json")) {
            Ok(r) => exact_check(
                "lm_batches",
                r.matching_batches,
                r.expected_batches,
                r.passed,
                format!(
                    "{} of {} batches equal (bs {}, seq_len {}){}",
                    r.matching_batches,
                    r.expected_batches,
                    r.bs,
                    r.seq_len,
                    r.first_mismatch
                        .map(|m| format!("; {m}"))
                        .unwrap_or_default()
                ),
            ),
            Err(e) => report::failed("lm_batches", 0.0, e),
        },
    );
    out.push(
        match crate::data::clas_padding_check(
            dir.join("clas_eval.safetensors"),
            dir.join("meta.json"),
        ) {
            Ok(r) => exact_check(
                "clas_padding",
                r.matching_rows,
                r.rows,
                r.passed,
                format!(
                    "{} of {} padded rows equal (bptt {}){}",
                    r.matching_rows,
                    r.rows,
                    r.bptt,
                    r.first_mismatch
                        .map(|m| format!("; {m}"))
                        .unwrap_or_default()
                ),
            ),
            Err(e) => report::failed("clas_padding", 0.0, e),
        },
    );
    out.push(
        match crate::text::parity::tokenizer_check(dir.join("tokenizer_cases.jsonl")) {
            Ok(r) => {
                let misses: Vec<String> = r
                    .misses
                    .iter()
                    .take(5)
                    .map(|m| {
                        format!(
                            "line {} at token {}: fastai {:?}, ours {:?}",
                            m.line, m.first_diff, m.expected, m.got
                        )
                    })
                    .collect();
                CheckResult {
                    check: "tokenizer".into(),
                    max_abs_err: 1.0 - r.rate,
                    tolerance: 1.0 - TOKENIZER_MIN_RATE,
                    pass: r.cases > 0 && r.rate >= TOKENIZER_MIN_RATE,
                    relative: false,
                    compared: r.cases,
                    detail: format!(
                        "exact-match rate {:.4} ({} of {} texts){}",
                        r.rate,
                        r.exact,
                        r.cases,
                        if misses.is_empty() {
                            String::new()
                        } else {
                            format!("; misses: {}", misses.join(" | "))
                        }
                    ),
                }
            }
            Err(e) => report::failed("tokenizer", 1.0 - TOKENIZER_MIN_RATE, e),
        },
    );
    out.push(
        match crate::text::parity::vocab_check(dir.join("vocab_cases.json")) {
            Ok(r) => {
                let exact = r.cases.iter().filter(|c| c.exact).count();
                exact_check(
                    "vocab",
                    exact,
                    r.cases.len(),
                    r.all_exact,
                    format!(
                        "{exact} of {} make_vocab settings identical ({} distinct tokens)",
                        r.cases.len(),
                        r.distinct_tokens
                    ),
                )
            }
            Err(e) => report::failed("vocab", 0.0, e),
        },
    );
    out.push(
        match crate::train::schedule_parity::schedules_check(&dir.join("schedules.json")) {
            Ok(r) => CheckResult {
                check: "schedules".into(),
                max_abs_err: r.max_rel_err,
                tolerance: SCHEDULE_TOL,
                pass: r.values_compared > 0 && r.max_rel_err <= SCHEDULE_TOL,
                relative: true,
                compared: r.values_compared,
                detail: format!(
                    "{} values over {} entries (one-cycle lr and mom, STLR, even_mults); max abs err {:e}",
                    r.values_compared,
                    r.entries.len(),
                    r.max_abs_err
                ),
            },
            Err(e) => report::failed("schedules", SCHEDULE_TOL, e),
        },
    );
    out
}

/// A check of exact equality counted in items.
fn exact_check(
    check: &str,
    matching: usize,
    total: usize,
    passed: bool,
    detail: String,
) -> CheckResult {
    CheckResult {
        check: check.into(),
        max_abs_err: (total - matching.min(total)) as f64,
        tolerance: 0.0,
        pass: passed && total > 0 && matching == total,
        relative: false,
        compared: total,
        detail,
    }
}
