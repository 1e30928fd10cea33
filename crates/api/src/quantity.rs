//! Kubernetes resource quantities (`k8s.io/apimachinery/pkg/api/resource`), parsed
//! exactly: the scheduler compares integers (millicores, bytes), never floats, so a
//! request of "0.1" cpu and "100m" are the same number.

use thiserror::Error;

/// Why a quantity string was refused; the message names the offending text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantityError {
    /// The string does not follow `<sign><digits>[.<digits>]<suffix>`.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}"
    )]
    Syntax(String),
}

/// Most significant digits kept exactly; further digits only make the value a little
/// larger, which `ceil` accounts for (quantities that long overflow `i64` anyway).
const MAX_DIGITS: usize = 36;

/// A parsed quantity: `±mantissa × 10^exp10 × 2^exp2`, plus whether nonzero digits
/// were dropped beyond [`MAX_DIGITS`] (the true magnitude is then slightly larger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    mantissa: u128,
    exp10: i32,
    exp2: u32,
    inexact: bool,
}

impl Quantity {
    /// Parses a quantity such as `100m`, `1.5`, `128Mi`, `1G` or `2e3`, with the
    /// grammar of Kubernetes' `resource.ParseQuantity`.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let err = || QuantityError::Syntax(s.to_string());
        let bytes = s.as_bytes();
        let mut i = 0;
        let mut negative = false;
        if let Some(&c) = bytes.first()
            && (c == b'+' || c == b'-')
        {
            negative = c == b'-';
            i = 1;
        }
        let mut mantissa: u128 = 0;
        let mut digits = 0usize;
        let mut exp10: i32 = 0;
        let mut inexact = false;
        let mut seen_digit = false;
        let mut seen_dot = false;
        while i < bytes.len() {
            let c = bytes[i];
            if c == b'.' {
                if seen_dot {
                    return Err(err());
                }
                seen_dot = true;
            } else if c.is_ascii_digit() {
                seen_digit = true;
                let d = u128::from(c - b'0');
                if digits < MAX_DIGITS {
                    if mantissa != 0 || d != 0 {
                        digits += 1;
                    }
                    mantissa = mantissa * 10 + d;
                    if seen_dot {
                        exp10 -= 1;
                    }
                } else {
                    inexact |= d != 0;
                    if !seen_dot {
                        exp10 += 1;
                    }
                }
            } else {
                break;
            }
            i += 1;
        }
        if !seen_digit {
            return Err(err());
        }
        let suffix = &s[i..];
        let (sfx10, exp2): (i32, u32) = match suffix {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            other => {
                let rest = other
                    .strip_prefix('e')
                    .or_else(|| other.strip_prefix('E'))
                    .ok_or_else(err)?;
                let digits_part = rest
                    .strip_prefix('+')
                    .or_else(|| rest.strip_prefix('-'))
                    .unwrap_or(rest);
                if digits_part.is_empty() || !digits_part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err());
                }
                let e: i32 = rest.parse().map_err(|_| err())?;
                (e, 0)
            }
        };
        Ok(Quantity {
            negative,
            mantissa,
            exp10: exp10.saturating_add(sfx10),
            exp2,
            inexact,
        })
    }

    /// `ceil(q × 10^scale)` saturated to `i64`, the rounding of Kubernetes'
    /// `ScaledValue`/`MilliValue` (a request of `0.0001` cpu is 1 millicore).
    fn scaled_ceil(&self, scale: i32) -> i64 {
        if self.mantissa == 0 && !self.inexact {
            return 0;
        }
        let sat = if self.negative { i64::MIN } else { i64::MAX };
        let Some(n) = 1u128
            .checked_shl(self.exp2)
            .and_then(|m| self.mantissa.checked_mul(m))
        else {
            return sat;
        };
        let e = self.exp10.saturating_add(scale);
        let magnitude: u128;
        let mut round_away = false;
        if e >= 0 {
            let Some(v) = 10u128
                .checked_pow(e.unsigned_abs())
                .and_then(|p| n.checked_mul(p))
            else {
                return sat;
            };
            // Dropped digits here are never below the ones digit of a value this large.
            magnitude = v;
        } else {
            match 10u128.checked_pow(e.unsigned_abs()) {
                Some(p) => {
                    magnitude = n / p;
                    round_away = n % p != 0 || self.inexact;
                }
                None => {
                    magnitude = 0;
                    round_away = n != 0 || self.inexact;
                }
            }
        }
        if self.negative {
            // ceil of a negative value truncates toward zero.
            i64::try_from(magnitude).map_or(i64::MIN, |m| -m)
        } else {
            let m = magnitude + u128::from(round_away);
            i64::try_from(m).unwrap_or(i64::MAX)
        }
    }

    /// The value in thousandths, rounded up: millicores for cpu.
    pub fn milli_value(&self) -> i64 {
        self.scaled_ceil(3)
    }

    /// The value in units, rounded up: bytes for memory and storage, a count otherwise.
    pub fn value(&self) -> i64 {
        self.scaled_ceil(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_kubernetes() {
        // (input, Value(), MilliValue()) as resource.MustParse gives them.
        let cases: &[(&str, i64, i64)] = &[
            ("100m", 1, 100),
            ("1.5", 2, 1500),
            ("0.1", 1, 100),
            ("128Mi", 128 * 1024 * 1024, 128 * 1024 * 1024 * 1000),
            ("1G", 1_000_000_000, 1_000_000_000_000),
            ("2e3", 2000, 2_000_000),
            ("2E3", 2000, 2_000_000),
            ("1e-3", 1, 1),
            ("1Ki", 1024, 1_024_000),
            ("1.5Gi", 1_610_612_736, 1_610_612_736_000),
            ("500u", 1, 1),
            ("5n", 1, 1),
            ("0", 0, 0),
            ("0.0", 0, 0),
            ("+3", 3, 3000),
            ("-1", -1, -1000),
            (".5", 1, 500),
            ("5.", 5, 5000),
            ("1k", 1000, 1_000_000),
            ("1E", 1_000_000_000_000_000_000, i64::MAX),
            ("8Ei", i64::MAX, i64::MAX),
            ("0.0001", 1, 1),
            ("1.0001m", 1, 2),
            ("110", 110, 110_000),
        ];
        for (s, v, m) in cases {
            let q = Quantity::parse(s).unwrap();
            assert_eq!(q.value(), *v, "value of {s}");
            assert_eq!(q.milli_value(), *m, "milli of {s}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "", "m", "1.2.3", "1Q", "1ki", "1 Mi", "e3", "1e", "1e+", "1.5mm", "--1", "1e3.5",
        ] {
            assert!(Quantity::parse(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn long_fractions_round_up() {
        // 40 fractional digits: more than kept exactly, but still rounds up to 1m.
        let q = Quantity::parse("0.0000000000000000000000000000000000000001").unwrap();
        assert_eq!(q.milli_value(), 1);
        let q = Quantity::parse("1.000000000000000000000000000000000000000000001").unwrap();
        assert_eq!(q.value(), 2);
        assert_eq!(q.milli_value(), 1001);
    }
}
