//! What every kernel shares about numbers: the one float trait the kernels are generic over
//! ([`Real`], `f32` or `f64`), the vectorisable `f32` exponential, and the lane width of the
//! blocked reductions.

/// Width of the blocked loops (independent accumulators per lane, so the compiler vectorises
/// the reductions without reassociating a single sum).
pub const LANES: usize = 16;

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
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    /// The exponential of the loss kernels: [`exp_f32`] for `f32` (vectorises), libm for `f64`.
    fn kexp(self) -> Self;
    /// `torch.clamp(x, lo, hi)`: NaN stays NaN.
    #[inline(always)]
    fn clamp_to(self, lo: Self, hi: Self) -> Self {
        let x = if self < lo { lo } else { self };
        if x > hi {
            hi
        } else {
            x
        }
    }
    /// `torch.clamp(x, max=hi)`: NaN stays NaN.
    #[inline(always)]
    fn min_to(self, hi: Self) -> Self {
        if self > hi {
            hi
        } else {
            self
        }
    }
}

macro_rules! impl_real {
    ($t:ty, $kexp:path) => {
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
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn kexp(self) -> Self {
                $kexp(self)
            }
        }
    };
}
impl_real!(f32, exp_f32);
impl_real!(f64, f64::exp);

/// `2^n · p` exponential accurate to about 1e-10 relative, computed in `f64`: loops over it
/// vectorise (libm's `expf` does not) and its `f32` rounding is within an ulp of torch's.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let xd = f64::from(x);
    let xc = xd.clamp(-110.0, 100.0); // NaN stays NaN (fixed at the end)
                                      // round to nearest by the 1.5·2^52 trick (branch-free, vectorises; |x·log2 e| < 2^51):
                                      // `big`'s low mantissa bits hold n, so 2^n is built with integer adds and a shift
    const MAGIC: f64 = 6755399441055744.0;
    let big = xc * std::f64::consts::LOG2_E + MAGIC;
    let n = big - MAGIC;
    let r = xc - n * std::f64::consts::LN_2;
    // e^r, |r| <= 0.35: a degree-7 polynomial (least squares on Chebyshev nodes, relative
    // error < 5e-11, under 1/1000 of an f32 ulp), evaluated by Estrin's scheme: dependency
    // chains of 6 operations instead of Horner's 14 (the dapo kernel: 520 -> 464 us at 64 x 4096)
    let r2 = r * r;
    let r4 = r2 * r2;
    let q01 = 1.0000000002582838 * r + 0.9999999999619137;
    let q23 = 0.16666665023178906 * r + 0.5000000104201605;
    let q45 = 0.008333578387840563 * r + 0.041666226135738324;
    let q67 = 0.00019766904081779357 * r + 0.0013948145825644221;
    let p = (q23 * r2 + q01) + (q67 * r2 + q45) * r4;
    let scale = f64::from_bits(big.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(1023) << 52);
    let y = (p * scale) as f32;
    if x.is_nan() {
        x
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_within_an_ulp() {
        let mut x = -104.0f32;
        while x < 89.0 {
            let (a, b) = (exp_f32(x), f32::exp(x));
            let ulp = (b.to_bits() as i64 - a.to_bits() as i64).abs();
            assert!(ulp <= 1, "x={x}: {a} vs {b}");
            x += 0.0137;
        }
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
    }
}
