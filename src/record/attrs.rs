//! Typed access to DynamoDB items (`item::Item`) with errors that name
//! the attribute and the problem but never echo a value (items may hold tokens).
//!
//! Numbers stay decimal strings until parsed here: integers as `i128`, money
//! as exact `rust_decimal::Decimal`, never through `f64`.

use crate::record::item::{Attr, Item};
use rust_decimal::Decimal;

/// Attribute lookup; `NULL` counts as absent.
pub fn get<'a, 'b>(item: &'a Item<'b>, name: &str) -> Option<&'a Attr<'b>> {
    match item.get(name) {
        Some(Attr::Null) | None => None,
        Some(v) => Some(v),
    }
}

/// Nested lookup in a map attribute, e.g. `metadata.function_name`.
pub fn get_nested<'a, 'b>(item: &'a Item<'b>, map: &str, name: &str) -> Option<&'a Attr<'b>> {
    match get(item, map)? {
        Attr::M(m) => match m.get(name) {
            Some(Attr::Null) | None => None,
            Some(v) => Some(v),
        },
        _ => None,
    }
}

/// A non-empty string attribute. `Ok(None)` when absent; an error when the
/// attribute has another type or is blank.
pub fn opt_str<'a>(v: Option<&'a Attr<'_>>, name: &str) -> Result<Option<&'a str>, String> {
    match v {
        None => Ok(None),
        Some(Attr::S(s)) if !s.trim().is_empty() => Ok(Some(s.as_ref())),
        Some(Attr::S(_)) => Err(format!("attribute `{name}` is an empty string")),
        Some(other) => Err(format!(
            "attribute `{name}` has type {}, expected S",
            other.type_tag()
        )),
    }
}

/// A decimal whose magnitude stays below 10^10 (the schemas keep 28
/// fractional digits in DECIMAL(38,28)).
pub fn below_1e10(d: Decimal, name: &str) -> Result<Decimal, String> {
    if d.abs() >= Decimal::from(10_000_000_000i64) {
        Err(format!(
            "attribute `{name}` is out of range (at least 10^10)"
        ))
    } else {
        Ok(d)
    }
}

/// Most fractional digits a money or score value may carry. With values
/// below 10^10 every sum of them stays exact in `rust_decimal` (96-bit
/// mantissa) and in the reports' DECIMAL(38,18) columns.
pub const MAX_FRACTION_DIGITS: u32 = 18;

/// A non-negative exact amount (money, scores) below 10^10 with at most
/// `MAX_FRACTION_DIGITS` fractional digits, normalised.
pub fn amount(d: Decimal, name: &str) -> Result<Decimal, String> {
    let d = below_1e10(d, name)?.normalize();
    if d.is_sign_negative() && !d.is_zero() {
        return Err(format!("attribute `{name}` is negative"));
    }
    if d.scale() > MAX_FRACTION_DIGITS {
        return Err(format!(
            "attribute `{name}` has more than {MAX_FRACTION_DIGITS} fractional digits"
        ));
    }
    Ok(d)
}

/// An integer attribute (N, or S holding digits) within `i64`.
pub fn opt_int(v: Option<&Attr<'_>>, name: &str) -> Result<Option<i64>, String> {
    let Some(text) = number_text(v, name)? else {
        return Ok(None);
    };
    // Accept "350", "350.0"; reject fractions and anything past i64.
    let (int_part, frac) = text.split_once('.').unwrap_or((text, ""));
    if !frac.bytes().all(|b| b == b'0') {
        return Err(format!("attribute `{name}` is not an integer"));
    }
    let wide: i128 = int_part
        .parse()
        .map_err(|_| format!("attribute `{name}` is not an integer of at most 38 digits"))?;
    i64::try_from(wide)
        .map(Some)
        .map_err(|_| format!("attribute `{name}` is out of range for a 64-bit count"))
}

/// An exact decimal attribute (N, or S holding a decimal number).
pub fn opt_decimal(v: Option<&Attr<'_>>, name: &str) -> Result<Option<Decimal>, String> {
    let Some(text) = number_text(v, name)? else {
        return Ok(None);
    };
    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        // Trailing fractional zeros carry no value: a 38-digit
        // "0.00250000…0" is exactly 0.0025.
        let trimmed = match text.split_once('.') {
            Some((int, frac)) => {
                let frac = frac.trim_end_matches('0');
                if frac.is_empty() {
                    int.to_string()
                } else {
                    format!("{int}.{frac}")
                }
            }
            None => text.to_string(),
        };
        Decimal::from_str_exact(&trimmed)
    };
    parsed.map(Some).map_err(|_| {
        format!("attribute `{name}` is not a decimal representable exactly in 28 digits")
    })
}

fn number_text<'a>(v: Option<&'a Attr<'_>>, name: &str) -> Result<Option<&'a str>, String> {
    match v {
        None => Ok(None),
        Some(Attr::N(s)) => Ok(Some(s.trim())),
        Some(Attr::S(s)) if looks_numeric(s.trim()) => Ok(Some(s.trim())),
        Some(Attr::S(_)) => Err(format!(
            "attribute `{name}` is a string that is not a number"
        )),
        Some(other) => Err(format!(
            "attribute `{name}` has type {}, expected N",
            other.type_tag()
        )),
    }
}

fn looks_numeric(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
}

/// Canonical, unambiguous serialisation of an item's key attributes, sorted by
/// name: the input of an item's identity hash.
pub fn canonical_keys(keys: &Item<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    if keys.is_empty() {
        return Err("record has no Keys".into());
    }
    for (name, value) in keys.sorted() {
        push_key_attribute(out, name, value)?;
    }
    Ok(())
}

/// One named key-like attribute (S, N or B), serialised as `canonical_keys`
/// serialises each of its attributes.
pub fn push_key_attribute(out: &mut Vec<u8>, name: &str, value: &Attr<'_>) -> Result<(), String> {
    push_field(out, name.as_bytes());
    match value {
        Attr::S(s) => {
            out.push(b'S');
            push_field(out, s.as_bytes());
        }
        Attr::N(n) => {
            out.push(b'N');
            push_field(out, n.trim().as_bytes());
        }
        Attr::B(b) => {
            out.push(b'B');
            push_field(out, b);
        }
        other => {
            return Err(format!(
                "key attribute `{name}` has type {}, expected S, N or B",
                other.type_tag()
            ));
        }
    }
    Ok(())
}

/// Length-prefixed field, so that no two different inputs serialise alike.
pub fn push_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item<'a>(pairs: &[(&'a str, Attr<'a>)]) -> Item<'a> {
        Item::from_pairs(pairs.to_vec())
    }

    #[test]
    fn integers() {
        let n = |s: &str| Attr::N(s.to_string().into());
        assert_eq!(opt_int(Some(&n("350")), "t"), Ok(Some(350)));
        assert_eq!(opt_int(Some(&n("350.00")), "t"), Ok(Some(350)));
        assert_eq!(opt_int(Some(&Attr::S("12".into())), "t"), Ok(Some(12)));
        assert_eq!(opt_int(None, "t"), Ok(None));
        assert!(opt_int(Some(&n("1.5")), "t").is_err());
        assert!(
            opt_int(Some(&n(&"9".repeat(38))), "t")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(opt_int(Some(&n(&"9".repeat(39))), "t").is_err());
        assert!(
            opt_int(Some(&Attr::Bool(true)), "t")
                .unwrap_err()
                .contains("BOOL")
        );
    }

    #[test]
    fn decimals_are_exact() {
        let d = opt_decimal(Some(&Attr::N("0.0025".into())), "c")
            .unwrap()
            .unwrap();
        assert_eq!(d.to_string(), "0.0025");
        let sum: Decimal = (0..1000).map(|_| d).sum();
        assert_eq!(sum.to_string(), "2.5000");
        assert!(opt_decimal(Some(&Attr::N("1".repeat(38).into())), "c").is_err());
        assert!(opt_decimal(Some(&Attr::S("NaN".into())), "c").is_err());
        assert_eq!(
            opt_decimal(Some(&Attr::N("2.5E-3".into())), "c")
                .unwrap()
                .unwrap()
                .to_string(),
            "0.0025"
        );
    }

    #[test]
    fn errors_never_echo_values() {
        let secret = Attr::N("ghp_secret_token".into());
        let e = opt_int(Some(&secret), "access_token").unwrap_err();
        assert!(!e.contains("ghp_"), "{e}");
        let e = opt_decimal(Some(&Attr::S("ghp_x".into())), "cost").unwrap_err();
        assert!(!e.contains("ghp_"), "{e}");
    }

    #[test]
    fn canonical_keys_are_order_independent_and_unambiguous() {
        let a = item(&[("a", Attr::S("x".into())), ("b", Attr::N("1".into()))]);
        let b = item(&[("b", Attr::N("1".into())), ("a", Attr::S("x".into()))]);
        let (mut ca, mut cb) = (Vec::new(), Vec::new());
        canonical_keys(&a, &mut ca).unwrap();
        canonical_keys(&b, &mut cb).unwrap();
        assert_eq!(ca, cb);
        let c = item(&[("a", Attr::S("x1".into()))]);
        let d = item(&[("a", Attr::N("x1".into()))]);
        let (mut cc, mut cd) = (Vec::new(), Vec::new());
        canonical_keys(&c, &mut cc).unwrap();
        canonical_keys(&d, &mut cd).unwrap();
        assert_ne!(cc, cd);
        assert!(canonical_keys(&item(&[]), &mut Vec::new()).is_err());
        assert!(canonical_keys(&item(&[("k", Attr::Bool(true))]), &mut Vec::new()).is_err());
    }
}
