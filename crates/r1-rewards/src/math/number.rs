//! Exact numbers: parsing literals and size-bounded rational arithmetic.
//!
//! Answers are compared exactly whenever possible (so `10^{30}` and `10^{30}+1`
//! differ), but an exact power like `10^{10^{10}}` would need gigabytes. Every
//! operation therefore checks the size of its result against [`MAX_BITS`] and gives
//! up (returns `None`) instead, which makes the caller fall back to floating point.

use num_bigint::{BigInt, Sign};
use num_integer::Integer;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

/// Largest numerator + denominator size (in bits) we compute with exactly.
/// 1000! is about 8,500 bits; 2^65536 is far beyond any contest answer.
pub const MAX_BITS: u64 = 65_536;

/// Largest decimal exponent accepted in a literal like `1.5e300`.
const MAX_LITERAL_EXP: i64 = 4_000;

/// Size of a rational in bits, used for the bounds above.
pub fn bits(r: &BigRational) -> u64 {
    r.numer().bits() + r.denom().bits()
}

/// Returns `r` if it is within [`MAX_BITS`], else `None`.
pub fn bounded(r: BigRational) -> Option<BigRational> {
    (bits(&r) <= MAX_BITS).then_some(r)
}

/// Parses a plain decimal literal: `42`, `-3.50`, `.5`, `1.5e-3`, `2E10`.
/// Returns the exact value and whether it had a fractional part or exponent (such
/// literals are often rounded, which allows a tolerance when comparing).
pub fn parse_decimal(s: &str) -> Option<(BigRational, bool)> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(k) => {
            let e: i64 = body[k + 1..].parse().ok()?;
            (&body[..k], e)
        }
        None => (body, 0),
    };
    if exp.abs() > MAX_LITERAL_EXP {
        return None;
    }
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(k) => (&mantissa[..k], &mantissa[k + 1..]),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{int_part}{frac_part}");
    let mut n: BigInt = if digits.is_empty() {
        BigInt::zero()
    } else {
        digits.parse().ok()?
    };
    if neg {
        n = -n;
    }
    let scale = exp - frac_part.len() as i64;
    let ten = BigInt::from(10u32);
    let r = if scale >= 0 {
        BigRational::from_integer(n * num_traits::pow(ten, scale as usize))
    } else {
        BigRational::new(n, num_traits::pow(ten, (-scale) as usize))
    };
    let inexact = !frac_part.is_empty() || exp != 0 || mantissa.ends_with('.');
    bounded(r).map(|r| (r, inexact))
}

/// Removes thousands separators when the whole string is one grouped number:
/// `1,234,567.5` → `1234567.5`, `1 000` → `1000`. Anything else is left alone, so
/// `1,2` (a list) is not mistaken for a number.
pub fn strip_thousands(s: &str) -> Option<String> {
    let t = s.trim();
    let (sign, body) = match t.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", t),
    };
    let (int_part, frac) = match body.find('.') {
        Some(k) => (&body[..k], &body[k..]),
        None => (body, ""),
    };
    if !frac.is_empty() && !frac[1..].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    for sep in [',', ' '] {
        let groups: Vec<&str> = int_part.split(sep).collect();
        if groups.len() < 2 {
            continue;
        }
        let first_ok =
            (1..=3).contains(&groups[0].len()) && groups[0].bytes().all(|b| b.is_ascii_digit());
        let rest_ok = groups[1..]
            .iter()
            .all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()));
        if first_ok && rest_ok {
            return Some(format!("{sign}{}{frac}", groups.concat()));
        }
    }
    None
}

/// `base^exp` exactly for an integer exponent, if the result stays bounded.
pub fn pow_int(base: &BigRational, exp: &BigInt) -> Option<BigRational> {
    if base.is_zero() {
        return if exp.is_negative() {
            None
        } else if exp.is_zero() {
            Some(BigRational::one())
        } else {
            Some(BigRational::zero())
        };
    }
    if base.abs().is_one() {
        let odd = exp.is_odd();
        return Some(if base.is_negative() && odd {
            -BigRational::one()
        } else {
            BigRational::one()
        });
    }
    let e = exp.abs().to_u64()?;
    // Estimated size of the result; refuse before allocating.
    if bits(base).saturating_mul(e) > MAX_BITS {
        return None;
    }
    let r = num_traits::pow(base.clone(), e as usize);
    bounded(if exp.is_negative() { r.recip() } else { r })
}

/// Exact `n`-th root of a rational, if it is a perfect power (`8` → `2` for n = 3).
pub fn root_exact(x: &BigRational, n: u32) -> Option<BigRational> {
    if n == 0 || n > 64 {
        return None;
    }
    if x.is_negative() {
        if n.is_multiple_of(2) {
            return None;
        }
        return root_exact(&-x, n).map(|r| -r);
    }
    let root = |v: &BigInt| -> Option<BigInt> {
        let r = v.nth_root(n);
        (num_traits::pow(r.clone(), n as usize) == *v).then_some(r)
    };
    Some(BigRational::new(root(x.numer())?, root(x.denom())?))
}

/// `base^(p/q)` exactly when possible (perfect powers only).
pub fn pow_rational(base: &BigRational, exp: &BigRational) -> Option<BigRational> {
    if exp.is_integer() {
        return pow_int(base, exp.numer());
    }
    let q = exp.denom().to_u32()?;
    let r = root_exact(base, q)?;
    pow_int(&r, exp.numer())
}

/// `n!` for small non-negative integers (bounded by [`MAX_BITS`] via n ≤ 2000).
pub fn factorial(x: &BigRational) -> Option<BigRational> {
    if !x.is_integer() || x.is_negative() {
        return None;
    }
    let n = x.numer().to_u32()?;
    if n > 2000 {
        return None;
    }
    let mut acc = BigInt::one();
    for k in 2..=n {
        acc *= k;
    }
    Some(BigRational::from_integer(acc))
}

/// Binomial coefficient C(n, k) for integers, bounded.
pub fn binomial(n: &BigRational, k: &BigRational) -> Option<BigRational> {
    if !n.is_integer() || !k.is_integer() {
        return None;
    }
    let n = n.numer();
    let k = k.numer();
    if k.is_negative() || k > n {
        return Some(BigRational::zero());
    }
    let k2 = std::cmp::min(k.clone(), n - k).to_u32()?;
    if k2 > 5000 || n.bits() > 64 {
        return None;
    }
    let mut acc = BigInt::one();
    for i in 0..k2 {
        acc = acc * (n - BigInt::from(i)) / BigInt::from(i + 1);
    }
    bounded(BigRational::from_integer(acc))
}

/// Lossy conversion for the floating-point fallback.
pub fn to_f64(r: &BigRational) -> f64 {
    r.to_f64().unwrap_or_else(|| {
        if r.numer().sign() == Sign::Minus {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }
    })
}

/// Exact rational from an `f64` that holds a small integer (used by evaluation
/// points); `None` for non-finite input.
pub fn from_f64(x: f64) -> Option<BigRational> {
    BigRational::from_float(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> BigRational {
        parse_decimal(s).unwrap().0
    }

    #[test]
    fn decimals() {
        assert_eq!(r("0.50"), r(".5"));
        assert_eq!(r("1.5e3"), r("1500"));
        assert!(!parse_decimal("12").unwrap().1);
        assert!(parse_decimal("12.0").unwrap().1);
        assert!(parse_decimal("1e999999").is_none());
        assert!(parse_decimal("abc").is_none());
        assert!(parse_decimal(".").is_none());
    }

    #[test]
    fn thousands() {
        assert_eq!(strip_thousands("1,234,567").as_deref(), Some("1234567"));
        assert_eq!(strip_thousands("-1,234.50").as_deref(), Some("-1234.50"));
        assert_eq!(strip_thousands("1 000").as_deref(), Some("1000"));
        assert_eq!(strip_thousands("1,23"), None);
        assert_eq!(strip_thousands("12345"), None);
    }

    #[test]
    fn bounded_powers() {
        let ten = r("10");
        assert!(pow_int(&ten, &BigInt::from(10_000_000_000u64)).is_none());
        assert_eq!(pow_int(&ten, &BigInt::from(3)), Some(r("1000")));
        assert_eq!(root_exact(&r("27"), 3), Some(r("3")));
        assert_eq!(root_exact(&r("2"), 2), None);
        assert_eq!(pow_rational(&r("8"), &(r("2") / r("3"))), Some(r("4")));
    }
}
