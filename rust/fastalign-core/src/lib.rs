//! fastalign-core: the numerical kernels behind fastalign, in plain Rust.
//!
//! Nothing here knows about Python. Every function takes slices and scalars, validates what
//! it is given and returns [`Error`] instead of panicking, so the binding crate can hand any
//! input from a user straight through.
//!
//! The kernels reproduce TRL 1.16.0's formulas operation for operation: element-wise steps are
//! done in the caller's float type (`f32` or `f64`) exactly as torch does them, and reductions
//! accumulate in `f64` and round once, which gives the correctly rounded result where torch's
//! vectorised reductions are within a few ulp of it.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod advantages;
pub mod error;
pub mod losses;
mod memcopy;
pub mod numeric;
pub mod overlong;
pub mod packing;
pub mod par;
pub mod ratios;
pub mod rewards;
pub mod rows;
pub mod select;
mod stats;

pub use error::{Error, Result};
pub use numeric::Real;
