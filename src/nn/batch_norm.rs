//! `BatchNorm1d` with PyTorch's exact semantics (the classifier head's normalisation).
//!
//! burn's `BatchNorm` updates its running variance with the biased batch variance; PyTorch (and
//! so fastai) uses the unbiased one. This layer follows PyTorch so that running statistics match
//! after training. Training mode normalises with the batch's (biased) statistics; eval mode with
//! the running ones.

use burn::module::{Flag, Module, Param, RunningState};
use burn::tensor::{Device, Tensor};

use super::dropout::is_training;

/// Batch normalisation over the features of a `[batch, features]` input.
#[derive(Module, Debug)]
pub struct BatchNorm1d {
    /// Scale (PyTorch `weight`).
    pub weight: Param<Tensor<1>>,
    /// Shift (PyTorch `bias`).
    pub bias: Param<Tensor<1>>,
    /// Running mean (PyTorch `running_mean`).
    pub running_mean: RunningState<Tensor<1>>,
    /// Running variance, unbiased (PyTorch `running_var`).
    pub running_var: RunningState<Tensor<1>>,
    /// Weight of the newest batch in the running statistics (PyTorch default 0.1).
    pub momentum: f64,
    /// Added to the variance (PyTorch default 1e-5).
    pub eps: f64,
    /// Whether the layer behaves as in training.
    pub training: Param<Flag>,
}

impl BatchNorm1d {
    /// A layer over `features` with fastai v2's initialisation: weight 1, bias 1e-3
    /// (`_get_norm` in fastai `layers.py`); running mean 0, running variance 1.
    pub fn new(features: usize, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([features], device)),
            bias: Param::from_tensor(Tensor::full([features], 1e-3, device)),
            running_mean: RunningState::new(Tensor::zeros([features], device)),
            running_var: RunningState::new(Tensor::ones([features], device)),
            momentum: 0.1,
            eps: 1e-5,
            training: Param::from_bool(true),
        }
    }

    /// Number of features.
    pub fn features(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Normalises `input`.
    ///
    /// # Shapes
    ///
    /// - input: `[batch, features]`
    /// - output: `[batch, features]`
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let device = input.device();
        let [batch, _] = input.dims();
        let (mean, var) = if is_training(&self.training, &device) && batch > 1 {
            let mean = input.clone().mean_dim(0);
            let var = (input.clone() - mean.clone()).square().mean_dim(0);
            let m = self.momentum;
            let unbiased = var
                .clone()
                .detach()
                .mul_scalar(batch as f64 / (batch - 1) as f64);
            let rm = self.running_mean.value_sync().to_device(&device);
            let rv = self.running_var.value_sync().to_device(&device);
            self.running_mean.update(
                (rm.mul_scalar(1.0 - m) + mean.clone().detach().squeeze_dim::<1>(0).mul_scalar(m))
                    .detach(),
            );
            self.running_var.update(
                (rv.mul_scalar(1.0 - m) + unbiased.squeeze_dim::<1>(0).mul_scalar(m)).detach(),
            );
            // burn keeps an update per thread until the next `value_sync`; a module copied
            // before that (`valid()`, an optimizer step, saving) would see the old statistics.
            // Merge it now.
            let _ = self.running_mean.value_sync();
            let _ = self.running_var.value_sync();
            (mean, var)
        } else {
            (
                self.running_mean
                    .value_sync()
                    .to_device(&device)
                    .unsqueeze_dim(0),
                self.running_var
                    .value_sync()
                    .to_device(&device)
                    .unsqueeze_dim(0),
            )
        };
        let inv_std = (var + self.eps).sqrt().recip();
        (input - mean) * inv_std * self.weight.val().unsqueeze_dim(0)
            + self.bias.val().unsqueeze_dim(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, test_device, to_vec};

    #[test]
    fn training_uses_batch_statistics_and_updates_running_ones() {
        let device = test_device().autodiff();
        let bn = BatchNorm1d::new(2, &device);
        let x = Tensor::<2>::from_data([[1.0, 10.0], [3.0, 20.0], [5.0, 60.0]], &device);
        let y = to_vec(bn.forward(x));
        // Column 0: mean 3, biased var 8/3.
        let s = (8.0f32 / 3.0 + 1e-5).sqrt();
        assert_close(
            &[y[0], y[2], y[4]],
            &[-2.0 / s + 1e-3, 1e-3, 2.0 / s + 1e-3],
            1e-5,
            "col 0",
        );
        // Running stats: 0.9 * 0 + 0.1 * 3; 0.9 * 1 + 0.1 * unbiased var 4.
        let rm = to_vec(bn.running_mean.value_sync());
        let rv = to_vec(bn.running_var.value_sync());
        assert_close(&[rm[0], rv[0]], &[0.3, 0.9 + 0.4], 1e-6, "running");
    }

    #[test]
    fn eval_uses_running_statistics() {
        let device = test_device();
        let bn = BatchNorm1d::new(1, &device);
        let y = to_vec(bn.forward(Tensor::<2>::from_data([[2.0], [4.0]], &device)));
        let s = (1.0f32 + 1e-5).sqrt();
        assert_close(&y, &[2.0 / s + 1e-3, 4.0 / s + 1e-3], 1e-6, "eval");
    }
}
