//! Data-parallel training over several devices, with burn's own multi-device machinery.
//!
//! The pattern is burn-train 0.22's `MultiDeviceTrainEpoch` with the optimizer on the main
//! device: every batch is split by rows into one shard per device; each device gets a
//! [`Module::fork`] of the model (parameters copied and tracked there), computes its shard's loss
//! and gradients on its own thread, the gradients are moved to the main device with
//! [`GradientsParams::to_device`] and summed with burn's [`GradientsAccumulator`]; then the
//! learner's fastai optimizer takes one step on the main device's model.
//!
//! Each shard's loss is weighted by its share of the batch's rows before the backward pass, so
//! the summed gradient is the gradient of the whole batch's mean loss: cross-entropy, AR and
//! TAR give the same gradient as one device within rounding (tested).
//!
//! What differs from one device, as in PyTorch's `DataParallel`:
//! - **BatchNorm** (the classifier head) normalises each shard with its own batch statistics,
//!   and burn's `RunningState` averages the shards' running-statistic updates. With more than
//!   one device the order of that average depends on thread timing, so the running statistics
//!   (only they) are not bit-reproducible run to run.
//! - **Dropout masks** are drawn on each device from that device's own generator (seeded by the
//!   learner at every epoch from the configured seed and the device's position).
//!
//! On GPUs list the devices, `cuda:0` first: `DataParallel::new(vec![cuda0, cuda1])`. On a
//! CPU, burn has one device per backend, so two CPU devices are `ndarray` and `flex`; that runs
//! the whole machinery (forks, transfers, accumulation) but gives no speed-up, since both share
//! the same cores. It is how the tests check it.

use std::ops::Range;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::Device;

use super::learner::TrainError;

/// The devices a learner trains on; the first is the main device, where the model, the
/// optimizer state and the validation run live.
#[derive(Clone, Debug)]
pub struct DataParallel {
    devices: Vec<Device>,
}

impl DataParallel {
    /// Training on `devices` (the first is the main one). Every device must be an autodiff
    /// device and appear once.
    pub fn new(devices: Vec<Device>) -> Result<Self, TrainError> {
        if devices.is_empty() {
            return Err(TrainError::Devices("no device given".into()));
        }
        if let Some(d) = devices.iter().find(|d| !d.is_autodiff()) {
            return Err(TrainError::Devices(format!(
                "{d:?} is not an autodiff device (use `device.autodiff()`)"
            )));
        }
        for (i, d) in devices.iter().enumerate() {
            if devices[..i].contains(d) {
                return Err(TrainError::Devices(format!("{d:?} is listed twice")));
            }
        }
        Ok(Self { devices })
    }

    /// One device: plain training, no threads, no copies.
    pub fn single(device: Device) -> Self {
        Self {
            devices: vec![device],
        }
    }

    /// The devices, main first.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The main device.
    pub fn main(&self) -> &Device {
        &self.devices[0]
    }

    /// The row ranges of a batch of `rows` rows, one per device that gets at least one row
    /// (earlier devices get the extra rows of an uneven split).
    pub fn shards(&self, rows: usize) -> Vec<Range<usize>> {
        let n = self.devices.len().min(rows.max(1));
        let (base, extra) = (rows / n, rows % n);
        let mut start = 0;
        (0..n)
            .map(|k| {
                let len = base + usize::from(k < extra);
                let r = start..start + len;
                start += len;
                r
            })
            .collect()
    }

    /// Seeds every device's generator: the main one with `seed`, the others with seeds derived
    /// from it and their position.
    pub fn seed(&self, seed: u64) {
        for (k, d) in self.devices.iter().enumerate() {
            d.seed(seed.wrapping_add((k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        }
    }

    /// Runs `step` on every shard and returns the gradients summed on the main device, with the
    /// per-shard outputs in shard order.
    ///
    /// `inputs` has one entry per shard (see [`shards`](Self::shards)); shard `k` runs on device
    /// `k` with `step(model_on_device_k, inputs[k], device_k)`, which returns the shard's
    /// gradients (of a loss already weighted by the shard's share of the batch) and an output.
    /// The first shard uses `model` itself; the others a fork of it, each on its own thread.
    pub fn run<M, I, O, F>(
        &self,
        model: &M,
        inputs: Vec<I>,
        step: F,
    ) -> Result<(GradientsParams, Vec<O>), TrainError>
    where
        M: Module + Send,
        I: Send,
        O: Send,
        F: Fn(M, I, &Device) -> Result<(GradientsParams, O), TrainError> + Sync,
    {
        if inputs.is_empty() || inputs.len() > self.devices.len() {
            return Err(TrainError::Devices(format!(
                "{} shards for {} devices",
                inputs.len(),
                self.devices.len()
            )));
        }
        let mut inputs = inputs.into_iter();
        let first = inputs.next().expect("checked non-empty");
        if inputs.len() == 0 {
            let (grads, out) = step(model.clone(), first, self.main())?;
            return Ok((grads, vec![out]));
        }
        // Fork on this thread, before any shard runs.
        let forks: Vec<(M, I, &Device)> = inputs
            .zip(&self.devices[1..])
            .map(|(input, device)| (model.clone().fork(device), input, device))
            .collect();
        let step = &step;
        let results: Vec<Result<(GradientsParams, O), TrainError>> = std::thread::scope(|s| {
            let handles: Vec<_> = forks
                .into_iter()
                .map(|(m, input, device)| s.spawn(move || step(m, input, device)))
                .collect();
            let mut results = vec![step(model.clone(), first, self.main())];
            for h in handles {
                results.push(h.join().unwrap_or_else(|panic| {
                    Err(TrainError::Devices(format!(
                        "a training worker panicked: {}",
                        panic_message(panic.as_ref())
                    )))
                }));
            }
            results
        });
        let mut acc = GradientsAccumulator::<M>::new();
        let mut outs = Vec::with_capacity(results.len());
        for result in results {
            let (grads, out) = result?;
            acc.accumulate(model, grads.to_device(self.main(), model));
            outs.push(out);
        }
        Ok((acc.grads(), outs))
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Initializes every lazily initialized parameter of `module` now, in visiting order.
///
/// burn draws a parameter's initial values when it is first used; forking a model to another
/// device uses it in a different order than a forward pass does. Learners call this when they
/// are built, so the same seed gives the same initial model on one device or several.
pub(crate) fn materialize<M: Module>(module: &M) {
    struct Touch;
    impl burn::module::ModuleVisitor for Touch {
        fn visit_float<const D: usize>(
            &mut self,
            param: &burn::module::Param<burn::tensor::Tensor<D>>,
        ) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}

/// The rows `rows` of a row-major `[_, cols]` table.
pub(crate) fn take_rows<T: Clone>(data: &[T], cols: usize, rows: &Range<usize>) -> Vec<T> {
    data[rows.start * cols..rows.end * cols].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::test_device;

    #[test]
    fn shards_cover_the_batch_in_order() {
        let two = DataParallel {
            devices: vec![test_device(), test_device()],
        };
        assert_eq!(two.shards(5), vec![0..3, 3..5]);
        assert_eq!(two.shards(4), vec![0..2, 2..4]);
        assert_eq!(two.shards(1), vec![0..1]);
        let one = DataParallel::single(test_device());
        assert_eq!(one.shards(7), vec![0..7]);
    }

    #[test]
    fn devices_are_checked() {
        let d = test_device();
        assert!(matches!(
            DataParallel::new(vec![]),
            Err(TrainError::Devices(_))
        ));
        assert!(matches!(
            DataParallel::new(vec![d.clone()]),
            Err(TrainError::Devices(m)) if m.contains("autodiff")
        ));
        assert!(matches!(
            DataParallel::new(vec![d.clone().autodiff(), d.clone().autodiff()]),
            Err(TrainError::Devices(m)) if m.contains("twice")
        ));
        assert!(DataParallel::new(vec![d.autodiff()]).is_ok());
    }

    #[test]
    fn take_rows_slices_row_major() {
        let t = [0, 1, 2, 3, 4, 5];
        assert_eq!(take_rows(&t, 2, &(1..3)), vec![2, 3, 4, 5]);
    }
}
