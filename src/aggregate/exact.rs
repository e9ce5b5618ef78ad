//! Exact decimal addition for the LLM rollup's money and score sums:
//! `rust_decimal` rounds away fractional digits when its 96-bit mantissa
//! runs out; `exact_add` refuses to instead, judging exactness on values.

use rust_decimal::Decimal;

/// Exact decimal addition: `None` if `rust_decimal` would overflow or round
/// (it rounds away fractional digits when the mantissa runs out).
///
/// Exactness is judged on the values, never on scales: `rust_decimal`
/// returns the other operand unchanged when one side is zero (`0.00 + 0.8`
/// is `0.8`, scale 1), and sums read back from SQL have lost their trailing
/// zeros; both are exact. The reference is the sum computed in `i128` on
/// the operands' common scale after dropping trailing zeros.
pub fn exact_add(a: Decimal, b: Decimal) -> Option<Decimal> {
    let c = a.checked_add(b)?;
    (c == exact_sum(a, b)?).then_some(c)
}

/// `a + b` without rounding, or `None` if it has no `Decimal`
/// representation (more than 96 bits of mantissa at its scale once trailing
/// zeros are dropped).
fn exact_sum(a: Decimal, b: Decimal) -> Option<Decimal> {
    let (a, b) = (a.normalize(), b.normalize());
    let scale = a.scale().max(b.scale());
    // After `normalize` the operand with the larger scale ends in a non-zero
    // digit, so when the scales differ the sum ends in one too: a mantissa
    // too wide for i128 here is too wide for `Decimal` as well.
    let widen = |d: Decimal| {
        10i128
            .checked_pow(scale - d.scale())
            .and_then(|f| d.mantissa().checked_mul(f))
    };
    let sum = widen(a)?.checked_add(widen(b)?)?;
    Decimal::try_from_i128_with_scale(sum, scale)
        .ok()
        .or_else(|| {
            // Equal scales: the sum may end in zeros that make it fit.
            let (mut m, mut s) = (sum, scale);
            while s > 0 && m % 10 == 0 {
                m /= 10;
                s -= 1;
            }
            Decimal::try_from_i128_with_scale(m, s).ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn exact_add_refuses_to_round() {
        let tiny = Decimal::from_str("0.000000000000000001").unwrap();
        assert_eq!(
            exact_add(tiny, tiny).unwrap().to_string(),
            "0.000000000000000002"
        );
        let big = Decimal::from_str("9999999999.999999999999999999").unwrap();
        assert_eq!(
            exact_add(big, tiny).unwrap().to_string(),
            "10000000000.000000000000000000"
        );
        // 7·10^10 at 18 places uses 7·10^28 of the 7.9·10^28 mantissa: the
        // sum no longer fits, rust_decimal would drop a place, we refuse.
        let a = Decimal::from_i128_with_scale(70_000_000_000_000_000_000_000_000_001, 18);
        assert_eq!(a.checked_add(a).map(|c| c.scale() < 18), Some(true));
        assert_eq!(exact_add(a, a), None);
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn exact_add_judges_values_not_scales() {
        // One side zero at a larger scale: rust_decimal returns the other
        // operand as it is (issue 18: `0.00 + 0.8`, `0.0000 + 0.5`).
        for (a, b, sum) in [
            ("0.00", "0.8", "0.8"),
            ("0.0000", "0.5", "0.5"),
            ("0.5", "0.0000", "0.5"),
            ("-0.0025", "0.0025", "0"),
            ("0.0025", "-0.0025", "0"),
            ("0", "0", "0"),
            (
                "0.000000000000000000",
                "0.000000000000000001",
                "0.000000000000000001",
            ),
            // Stored sums come back without trailing zeros.
            ("0.5", "0.0025", "0.5025"),
            ("0.50", "0.0025", "0.5025"),
            ("1.000000000000000000", "2", "3"),
            ("-0.10", "0.1", "0"),
            (
                "9999999999.999999999999999999",
                "-9999999999.999999999999999999",
                "0",
            ),
            ("123.4500", "-0.45", "123"),
        ] {
            let got = exact_add(d(a), d(b)).unwrap_or_else(|| panic!("{a} + {b} refused"));
            assert_eq!(got, d(sum), "{a} + {b}");
        }
        // The batch: REMOVE A (0.0025) nets the report to zero,
        // then C (0.0025) and B (0.5) are added.
        let mut s = d("0.0025");
        for x in ["-0.0025", "0.0025", "0.5"] {
            s = exact_add(s, d(x)).unwrap();
        }
        assert_eq!(s, d("0.5025"));
    }

    #[test]
    fn exact_add_agrees_with_i128_arithmetic_over_scales() {
        // Every pair of values at scales 0..=18 whose exact sum fits: the
        // result equals the integer computation; none is refused.
        let mantissas = [0i64, 1, -1, 5, 25, 10, 100, 123_456_789, -999_999_999];
        for &ma in &mantissas {
            for sa in 0..=18u32 {
                for &mb in &mantissas {
                    for sb in 0..=18u32 {
                        let a = Decimal::new(ma, sa);
                        let b = Decimal::new(mb, sb);
                        let s = sa.max(sb);
                        let want = i128::from(ma) * 10i128.pow(s - sa)
                            + i128::from(mb) * 10i128.pow(s - sb);
                        let got = exact_add(a, b).unwrap_or_else(|| panic!("{a} + {b}"));
                        assert_eq!(got, Decimal::from_i128_with_scale(want, s), "{a} + {b}");
                    }
                }
            }
        }
    }
}
