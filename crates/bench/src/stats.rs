//! Percentiles of latency samples.

/// Median and 99th percentile (nearest rank) of samples in milliseconds; zeros when empty.
pub fn p50_p99(samples: &mut [f64]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let rank = |p: f64| {
        let i = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        samples[i.clamp(1, samples.len()) - 1]
    };
    (rank(50.0), rank(99.0))
}

/// Rounds to two decimals for reports.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(p50_p99(&mut s), (50.0, 99.0));
        let mut one = vec![7.0];
        assert_eq!(p50_p99(&mut one), (7.0, 7.0));
        assert_eq!(p50_p99(&mut []), (0.0, 0.0));
    }
}
