//! Formatting helpers shared by the commands.

use std::time::Duration;

/// `d` for people: `850µs`, `12.3ms`, `4.2s`, `3m 5s`.
pub(crate) fn duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 1_000_000 {
        format!("{:.1}ms", d.as_secs_f64() * 1e3)
    } else if d.as_secs() < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let secs = d.as_secs();
        format!("{}m {}s", secs / 60, secs % 60)
    }
}

/// `d` in fractional milliseconds, for JSON.
pub(crate) fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The percentile `per_mille`/1000 (`500` for the median, `990` for p99) of sorted
/// `values`, by nearest rank.
pub(crate) fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    let rank = (per_mille.min(1000) * sorted.len()).div_ceil(1000).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// Prints `value` as pretty JSON.
pub(crate) fn print_json(value: &serde_json::Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("limiter: error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 500), Duration::from_millis(50));
        assert_eq!(percentile(&values, 990), Duration::from_millis(99));
        assert_eq!(percentile(&values, 1000), Duration::from_millis(100));
        assert_eq!(percentile(&[], 500), Duration::ZERO);
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(duration(Duration::from_micros(850)), "850µs");
        assert_eq!(duration(Duration::from_micros(12_345)), "12.3ms");
        assert_eq!(duration(Duration::from_secs(185)), "3m 5s");
    }
}
