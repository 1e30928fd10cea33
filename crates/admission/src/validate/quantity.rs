//! Just enough of Kubernetes' `resource.Quantity` to validate and compare requests and limits.

use serde_json::Value;

/// Parses a quantity (`500m`, `1Gi`, `2`, `1e3`, `0.5`) to its value as f64; `None` when it is not a quantity.
pub(crate) fn parse(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_str(s),
        _ => None,
    }
}

fn parse_str(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '+' || c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    let (num, suffix) = s.split_at(split);
    let digits = num.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits == "." || digits.matches('.').count() > 1 {
        return None;
    }
    let base: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        other => {
            let exp = other.strip_prefix(['e', 'E'])?;
            let e: i32 = exp.parse().ok()?;
            10f64.powi(e)
        }
    };
    Some(base * mult)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_kubernetes_quantities() {
        let cases = [
            ("500m", 0.5),
            ("1", 1.0),
            ("1Ki", 1024.0),
            ("128Mi", 134217728.0),
            ("1e3", 1000.0),
            ("1.5G", 1.5e9),
        ];
        for (s, want) in cases {
            let got = parse(&json!(s)).unwrap();
            assert!((got - want).abs() < 1e-6, "{s}: {got}");
        }
        assert_eq!(parse(&json!(2)), Some(2.0));
        for bad in ["", "abc", "1x", "1..2", "m"] {
            assert_eq!(parse(&json!(bad)), None, "{bad}");
        }
    }
}
