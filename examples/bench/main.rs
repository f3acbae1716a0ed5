//! The crate's benchmark runner: the workloads of `WORKLOADS.md`, one JSON line each, in the form
//! of `pytorch_baseline.py` so both can be run back to back on one machine.
//!
//! ```text
//! cargo run --release --features flex --example bench -- --workload all --json
//! python /work/shared/bench/pytorch_baseline.py --threads 2
//! ```
//!
//! Timing follows the baseline: one warm-up step, then steps until both `--seconds` have passed
//! and at least three steps ran. The figure is tokens (or documents) per second.

mod workloads;

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use workloads::{LayerImpl, NAMES, build};

/// Benchmarks of the crate's LSTM, language model and classifier.
#[derive(Parser, Debug)]
struct Args {
    /// Workload name from WORKLOADS.md, or `all` (repeatable); `clas_infer_b1_bf16` and
    /// `clas_infer_b32_bf16` run the classifier with bf16 LSTM recurrent weights, `..._int8` with
    /// int8 ones.
    #[arg(long, default_value = "all")]
    workload: Vec<String>,
    /// Device: flex, ndarray or cpu.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Threads of the rayon pool (the baseline uses 2).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Minimum timed seconds per workload (the baseline: 8, or 2 with --quick).
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    /// Shorter timing windows (2 s), as the baseline's --quick.
    #[arg(long)]
    quick: bool,
    /// The LSTM of the lstm_layer_* workloads: fused, tensor-ops or burn (burn::nn::Lstm).
    #[arg(long, default_value = "fused")]
    lstm: String,
    /// Print JSON lines only (otherwise also a readable line on stderr).
    #[arg(long)]
    json: bool,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()?;
    let device = ulmfit::device::parse(&args.device)?;
    let layer_impl = LayerImpl::parse(&args.lstm)?;
    let min_seconds = if args.quick { 2.0 } else { args.seconds };
    let names: Vec<String> = if args.workload.iter().any(|w| w == "all") {
        NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        args.workload.clone()
    };
    for name in names {
        let mut w = build(&name, &device, layer_impl)?;
        (w.step)(); // warm-up
        let (start, mut iters) = (Instant::now(), 0usize);
        let elapsed = loop {
            (w.step)();
            iters += 1;
            let el = start.elapsed().as_secs_f64();
            if iters >= 3 && el >= min_seconds {
                break el;
            }
        };
        let value = w.per_step * iters as f64 / elapsed;
        let gflops = w.lstm_flop * iters as f64 / elapsed / 1e9;
        let line = serde_json::json!({
            "workload": name,
            "unit": w.unit,
            "value": (value * 100.0).round() / 100.0,
            "seconds": (elapsed * 1000.0).round() / 1000.0,
            "iters": iters,
            "device": args.device,
            "threads": args.threads,
            "lstm": if name.starts_with("lstm_layer") { layer_impl.name() } else { "fused" },
            "lstm_gflops": (gflops * 10.0).round() / 10.0,
        });
        println!("{line}");
        if !args.json {
            eprintln!(
                "{name}: {value:.1} {} ({iters} steps in {elapsed:.2} s, LSTM products {gflops:.0} GFLOP/s)",
                w.unit
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    ulmfit::malloc::keep_freed_memory();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
