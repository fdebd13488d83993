//! `exp` written so loops over it vectorise. libm's `expf` is a function call per
//! element, which keeps every loop around it scalar; softmax, SwiGLU and the
//! log-softmax over the 49k vocabulary make ~600 M such calls per SmolLM2 training
//! step. This version is arithmetic and bit operations only, accurate to ~2 ulp in
//! f32; f64 (used for gradient checks) keeps the exact libm `exp`.

/// `e^x`, vectorisable.
pub trait FastExp: Copy {
    fn fast_exp(self) -> Self;
}

impl FastExp for f64 {
    #[inline(always)]
    fn fast_exp(self) -> f64 {
        self.exp()
    }
}

impl FastExp for f32 {
    /// `e^x = 2^n · e^r` with `n = round(x / ln 2)`, `|r| ≤ ln 2 / 2`; `e^r` by its
    /// Taylor series to degree 7 (error < 1e-8 on that interval) in Horner form.
    #[inline(always)]
    fn fast_exp(self) -> f32 {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        // ln 2 split so n · LN2_HI is exact for |n| < 2^9.
        const LN2_HI: f32 = 0.693_145_75;
        const LN2_LO: f32 = 1.428_606_8e-6;
        // Beyond these e^x is 0 or ∞ in f32 (the smallest normal is e^-87.34).
        const LOW: f32 = -87.33;
        const HIGH: f32 = 88.72;
        // `max`/`min` rather than `clamp`: they drop a NaN, so `n` below is always a
        // small integer (NaN is restored at the end).
        #[allow(clippy::manual_clamp)]
        let x = self.max(LOW).min(HIGH);
        let n = (x * LOG2E + 0.5).floor();
        let r = x - n * LN2_HI - n * LN2_LO;
        let mut p = 1.0 / 5040.0;
        p = p * r + 1.0 / 720.0;
        p = p * r + 1.0 / 120.0;
        p = p * r + 1.0 / 24.0;
        p = p * r + 1.0 / 6.0;
        p = p * r + 0.5;
        p = p * r + 1.0;
        p = p * r + 1.0;
        // SAFETY: `x` is in [LOW, HIGH], so `n` is an integer in [-126, 128]. The
        // checked `as i32` (saturating, NaN to 0) compiled to a scalar conversion per
        // lane, inserted back one by one, and made every loop around this ~4× slower.
        let n = unsafe { n.to_int_unchecked::<i32>() };
        let scale = f32::from_bits(((n + 127) as u32) << 23);
        let y = p * scale;
        // Out-of-range inputs saturate; NaN stays NaN.
        if self < LOW {
            0.0
        } else if self > HIGH {
            f32::INFINITY
        } else if self.is_nan() {
            self
        } else {
            y
        }
    }
}

/// `Σ exp((z − max)/t)` over `z`, the normaliser of a tempered softmax (the sampler's,
/// once per row and token): f32 exponentials, summed in eight f64 lanes so 50k+ terms
/// lose no precision, compiled wide (at the default target `floor` is a libm call and
/// the loop stays scalar).
pub fn sum_exp_shifted(z: &[f32], max: f32, t: f32) -> f64 {
    super::cpu::wide(
        #[inline(always)]
        || {
            let term = |x: f32| ((x - max) / t).fast_exp() as f64;
            let chunks = z.chunks_exact(8);
            let tail: f64 = chunks.remainder().iter().map(|&x| term(x)).sum();
            let mut lanes = [0f64; 8];
            for c in chunks {
                for (a, &x) in lanes.iter_mut().zip(c) {
                    *a += term(x);
                }
            }
            lanes.iter().sum::<f64>() + tail
        },
    )
}

#[cfg(test)]
mod tests {
    use super::{sum_exp_shifted, FastExp};

    #[test]
    fn shifted_sums_match_libm_in_f64() {
        for n in [1usize, 7, 8, 9, 1000, 49_157] {
            let z: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 1013) as f32 * 0.02 - 9.0)
                .collect();
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            for t in [0.7f32, 1.0] {
                let want: f64 = z.iter().map(|&x| (((x - max) / t) as f64).exp()).sum();
                let got = sum_exp_shifted(&z, max, t);
                assert!(((got - want) / want).abs() < 1e-6, "n {n}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn matches_libm_to_a_few_ulp_over_the_whole_range() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (x.fast_exp() as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
    }

    #[test]
    fn edges_saturate_and_nan_propagates() {
        assert_eq!(0f32.fast_exp(), 1.0);
        assert_eq!((-1e9f32).fast_exp(), 0.0);
        assert_eq!(f32::NEG_INFINITY.fast_exp(), 0.0);
        assert_eq!(1e9f32.fast_exp(), f32::INFINITY);
        assert!(f32::NAN.fast_exp().is_nan());
    }
}
