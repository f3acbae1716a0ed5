//! Runs every fastai parity check that a fixture folder allows and prints one JSON line per
//! check, then `N passed, M failed`; exits non-zero if any check failed.
//!
//! ```text
//! cargo run --release --example fastai_parity -- ../shared/fixtures/fastai
//! cargo run --release --features flex --example fastai_parity -- ../shared/fixtures/fastai --device flex
//! ```
//!
//! Model sizes are read from the weights and bptt / max_len / head sizes from `meta.json`, so
//! the runner works on any fixture folder made by the fixtures' `generate.py`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut dir: Option<PathBuf> = None;
    let mut devices: Vec<String> = vec![];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--device" => match args.next() {
                Some(d) => devices.push(d),
                None => {
                    eprintln!("--device needs a value ({:?})", ulmfit::device::available());
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("usage: fastai_parity [FIXTURES_DIR] [--device NAME]...");
                return ExitCode::SUCCESS;
            }
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    let dir = dir.unwrap_or_else(ulmfit::parity::fixtures_dir);
    if !dir.is_dir() {
        eprintln!(
            "fixtures folder {} not found: pass it as the first argument or set ULMFIT_FIXTURES",
            dir.display()
        );
        return ExitCode::from(2);
    }
    if devices.is_empty() {
        devices = ulmfit::device::available()
            .into_iter()
            .filter(|d| *d != "cuda")
            .map(String::from)
            .collect();
    }
    let (mut passed, mut failed) = (0, 0);
    let mut report = |result: ulmfit::parity::CheckResult, device: &str| {
        let mut line = serde_json::to_value(&result).unwrap_or_default();
        line["device"] = serde_json::Value::from(device);
        println!("{line}");
        if result.pass {
            passed += 1;
        } else {
            failed += 1;
        }
    };
    for result in ulmfit::parity::pipeline_checks(&dir) {
        report(result, "none");
    }
    for name in &devices {
        let device = match ulmfit::device::parse(name) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        };
        for result in ulmfit::parity::model_checks(&dir, &device) {
            report(result, name);
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
