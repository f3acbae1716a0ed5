//! Criterion benchmarks of the workloads in `WORKLOADS.md`, built by the same code as the JSON
//! runner (`examples/bench`).
//!
//! ```text
//! cargo bench --features flex --bench workloads                       # every workload, cpu device
//! ULMFIT_BENCH_DEVICE=ndarray cargo bench --bench workloads -- lstm_layer
//! ```
//!
//! `ULMFIT_BENCH_DEVICE` picks the device (default `cpu`), `ULMFIT_BENCH_THREADS` the rayon
//! threads (default 2, as the PyTorch baseline). Throughput is reported in tokens (or documents)
//! per second. Besides the workloads: batch-32 and batch-1 inference with bf16 and int8
//! recurrent weights (`clas_infer_b1_int8`, ...), and `burn::nn::Lstm` on the single-layer
//! workloads (`lstm_layer_fwd/burn_nn_lstm`), for reference.

#[allow(dead_code)] // The JSON runner uses more of it.
#[path = "../examples/bench/workloads.rs"]
mod workloads;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use workloads::{BF16_NAMES, LayerImpl, NAMES, build};

fn workloads(c: &mut Criterion) {
    let threads = std::env::var("ULMFIT_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    // Fails only if a pool exists already, which then serves as well.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
    let name = std::env::var("ULMFIT_BENCH_DEVICE").unwrap_or_else(|_| "cpu".to_string());
    let device = ulmfit::device::parse(&name).expect("ULMFIT_BENCH_DEVICE");
    let mut group = c.benchmark_group("workloads");
    group.sample_size(10);
    for name in NAMES.iter().chain(&BF16_NAMES) {
        let mut w = build(name, &device, LayerImpl::Fused).expect("a known workload");
        group.throughput(Throughput::Elements(w.per_step as u64));
        group.bench_function(*name, |b| b.iter(|| (w.step)()));
    }
    // The reference: burn's own `nn::Lstm` on the single-layer workloads.
    for name in ["lstm_layer_fwd", "lstm_layer_train"] {
        let mut w = build(name, &device, LayerImpl::Burn).expect("a known workload");
        group.throughput(Throughput::Elements(w.per_step as u64));
        group.bench_function(format!("{name}/burn_nn_lstm"), |b| b.iter(|| (w.step)()));
    }
    group.finish();
}

criterion_group!(benches, workloads);
criterion_main!(benches);
