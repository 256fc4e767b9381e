//! The float types the kernels are generic over.

/// `f32` or `f64`, with the few operations the kernels need.
pub trait Real:
    Copy
    + PartialOrd
    + Send
    + Sync
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    const NAN: Self;
    /// Largest finite value (what `torch.nan_to_num` maps `+inf` to).
    const MAX: Self;
    /// Most negative finite value (what `torch.nan_to_num` maps `-inf` to).
    const LOWEST: Self;
    /// Round an `f64` to this type (round to nearest even, as torch's casts do).
    fn from_f64(x: f64) -> Self;
    /// An `int64` as this type, rounded once (torch's int-to-float promotion in `x * mask`).
    fn from_i64(x: i64) -> Self;
    /// An `f32` as this type (exact).
    fn from_f32(x: f32) -> Self;
    fn to_f64(self) -> f64;
    fn is_nan(self) -> bool;
    fn is_infinite(self) -> bool;
    fn abs(self) -> Self;
    fn sqrt(self) -> Self;
    /// `n / (n - 1)` as torch computes it for integer counts: both cast to `f32`, divided in
    /// `f32` (the default dtype), then widened to `Self`. TRL's `nanstd` uses exactly this.
    fn bessel(n: usize) -> Self {
        Self::from_f64(f64::from(n as f32 / (n - 1) as f32))
    }
    /// [`Real::bessel`] of a count already held in this type (`c >= 2`, exact): the same
    /// `f32` division, so a block of groups can compute it in vector lanes.
    #[inline(always)]
    fn bessel_of(c: Self) -> Self {
        let c = c.to_f64();
        Self::from_f64(f64::from(c as f32 / (c - 1.0) as f32))
    }
    /// `count` as a float of this type (exact below 2^24 for `f32`).
    fn from_count(n: usize) -> Self;
    /// `torch.nan_to_num(x, nan=0.0)` with its default infinity handling (branch-free, so
    /// loops using it vectorise).
    fn nan_to_num(self) -> Self;
}

macro_rules! impl_real {
    ($t:ty) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NAN: Self = <$t>::NAN;
            const MAX: Self = <$t>::MAX;
            const LOWEST: Self = <$t>::MIN;
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn from_i64(x: i64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn from_f32(x: f32) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline(always)]
            fn is_infinite(self) -> bool {
                <$t>::is_infinite(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn from_count(n: usize) -> Self {
                n as $t
            }
            #[inline(always)]
            fn nan_to_num(self) -> Self {
                let x = if self.is_nan() { 0.0 } else { self };
                let x = if x > <$t>::MAX { <$t>::MAX } else { x };
                if x < <$t>::MIN {
                    <$t>::MIN
                } else {
                    x
                }
            }
        }
    };
}
impl_real!(f32);
impl_real!(f64);
