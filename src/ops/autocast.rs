//! Mixed-precision training on AMX tiles: a scope in which the CPU products run in bf16.
//!
//! Inside [`bf16_autocast`]'s scope (on the thread that opened it) the LSTM layers' recurrence
//! ([`lstm_kernel::forward`](super::lstm_kernel::forward)), their input projections and the
//! language model's decoder ([`bf16_linear`](super::bf16_linear)) multiply on Intel AMX tiles:
//! both operands rounded to bf16, products exact and sums in `f32`, in the forward and in the
//! backward. Parameters, optimizer state, activations between the products, losses and
//! gradients stay `f32`, so no loss scaling is needed (bf16 has `f32`'s exponent range). This is
//! what PyTorch's `torch.autocast("cpu", dtype=torch.bfloat16)` does, and the CPU counterpart of
//! fastai's `to_fp16()`.
//!
//! Where the products cannot run on tiles (no AMX: AMD, Intel before Sapphire Rapids, other
//! systems, `ULMFIT_NO_AMX` set; or a device other than flex and ndarray) the scope changes
//! nothing: training stays `f32`.
//!
//! # Example
//!
//! ```
//! use ulmfit::ops::autocast::{bf16_autocast, bf16_autocast_active};
//!
//! assert!(!bf16_autocast_active());
//! {
//!     let _scope = bf16_autocast();
//!     assert!(bf16_autocast_active()); // products in here run in bf16 where the CPU allows
//! }
//! assert!(!bf16_autocast_active());
//! ```

use std::cell::Cell;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
}

/// The scope opened by [`bf16_autocast`]; closing it (dropping it) restores what was before.
#[must_use = "the scope ends when this value is dropped"]
#[derive(Debug)]
pub struct Bf16Autocast {
    before: bool,
}

/// Opens a scope in which this thread's CPU products run in bf16 on AMX tiles (see the
/// [module docs](self)).
pub fn bf16_autocast() -> Bf16Autocast {
    Bf16Autocast {
        before: ACTIVE.with(|a| a.replace(true)),
    }
}

/// Whether this thread is inside a [`bf16_autocast`] scope (whether or not the CPU has AMX).
pub fn bf16_autocast_active() -> bool {
    ACTIVE.with(Cell::get)
}

impl Drop for Bf16Autocast {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(self.before));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scopes nest, and each restores what was active before it.
    #[test]
    fn scopes_nest() {
        assert!(!bf16_autocast_active());
        let outer = bf16_autocast();
        {
            let _inner = bf16_autocast();
            assert!(bf16_autocast_active());
        }
        assert!(
            bf16_autocast_active(),
            "the inner scope restores the outer one"
        );
        std::thread::spawn(|| assert!(!bf16_autocast_active(), "per thread"))
            .join()
            .unwrap();
        drop(outer);
        assert!(!bf16_autocast_active());
    }
}
