//! Custom operations: the fused LSTM recurrence with a hand-written backward.
//!
//! * [`lstm_kernel`]: the recurrence on `f32` slices (forward and backward), no burn types.
//! * [`fused_lstm`]: the same as one burn operation (a backend extension for the CPU backends,
//!   with its backward registered in the autodiff graph) and the tensor-op fallback used on
//!   every other backend.
//! * [`gemv`]: the recurrent product for small batches (inference), `f32` or bf16 weights;
//!   [`gemv_i8`] the same with int8 weights; [`amx`] bf16 products on Intel AMX tiles for larger
//!   batches.
//! * [`autocast`]: mixed-precision training, a scope in which the products run in bf16 on AMX
//!   tiles ([`bf16_linear`] for linear layers, [`lstm_kernel`] for the recurrence).
//! * [`mask`]: dropout masks drawn on the host, counter-based and parallel.
//! * [`cross_entropy`]: softmax cross-entropy as one operation with a hand-written backward.

pub mod amx;
pub mod autocast;
pub mod bf16_linear;
mod bf16_pack;
pub mod cross_entropy;
pub mod fused_lstm;
pub mod gemv;
pub mod gemv_i8;
pub mod lstm_kernel;
pub mod mask;
pub mod packed;
pub(crate) mod simd;
