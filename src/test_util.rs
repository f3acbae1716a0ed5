//! Helpers for unit tests.

use burn::tensor::{Device, Tensor};

/// The reference CPU device.
pub fn test_device() -> Device {
    crate::device::ndarray()
}

/// A tensor's values as `f32`.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 data")
}

/// `n` deterministic values spread over `[-1, 1)`, different for each `seed` (kernel tests).
pub fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 1000.0 - 0.5) * 2.0)
        .collect()
}

/// Asserts element-wise closeness.
pub fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what}: element {i}: got {g}, want {w} (tol {tol})"
        );
    }
}

/// `module` with every float parameter redrawn from a generator of its own, keeping each
/// parameter's mean and standard deviation (so constant ones, like BatchNorm's, stay as they
/// are). Tests run in parallel and share the device's generator, so a test that trains would
/// otherwise start from weights that depend on what ran beside it.
pub fn reinit_params<M: burn::module::Module>(module: M, seed: u64) -> M {
    use burn::module::{ModuleMapper, Param};
    use burn::tensor::TensorData;

    struct Redraw(u64);
    impl ModuleMapper for Redraw {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, tensor, mapper) = param.consume();
            let (device, dims, grad) = (tensor.device(), tensor.dims(), tensor.is_require_grad());
            let old = to_vec(tensor);
            let n = old.len().max(1) as f64;
            let mean = old.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = old
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n;
            // Uniform on [-sqrt(3), sqrt(3)) has unit variance (SplitMix64 draws).
            let new: Vec<f32> = (0..old.len())
                .map(|_| {
                    self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let u = (crate::ops::mask::mix(self.0) >> 11) as f64 / (1u64 << 53) as f64;
                    (mean + var.sqrt() * 3f64.sqrt() * (2.0 * u - 1.0)) as f32
                })
                .collect();
            let mut t = Tensor::<D>::from_data(TensorData::new(new, dims), &device);
            if grad {
                t = t.require_grad();
            }
            Param::from_mapped_value(id, t, mapper)
        }
    }
    module.map(&mut Redraw(seed))
}

/// Holds the tests that train with a learner to one at a time: a learner re-seeds the devices'
/// shared generators at every epoch and draws its data order and dropout masks from them, so two
/// such tests running side by side would interleave their draws (and their results would depend
/// on the timing).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
