//! `sipd stats`: a readable summary of the admin endpoint's `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One sample: metric name, labels as written, value.
type Sample = (String, String, f64);

/// Parses Prometheus text format (comments skipped).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            Some((name.to_owned(), labels.to_owned(), value))
        })
        .collect()
}

/// The summary printed by `sipd stats`: non-zero series grouped by metric.
pub fn summarize(text: &str) -> String {
    let mut by_metric: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for (name, labels, value) in parse_metrics(text) {
        by_metric.entry(name).or_default().push((labels, value));
    }
    let mut out = String::new();
    for (name, series) in by_metric {
        let total: f64 = series.iter().map(|(_, v)| v).sum();
        let nonzero: Vec<_> = series.iter().filter(|(_, v)| *v != 0.0).collect();
        let title = name.trim_start_matches("sipd_");
        if series.len() == 1 && series[0].0.is_empty() {
            let _ = writeln!(out, "{title:<28} {}", fmt_num(total));
            continue;
        }
        let _ = writeln!(out, "{title:<28} {}", fmt_num(total));
        for (labels, v) in nonzero {
            let _ = writeln!(out, "  {:<40} {}", labels.replace('"', ""), fmt_num(*v));
        }
    }
    out
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_keeps_nonzero_series() {
        let text = "# HELP x\nsipd_requests_total{method=\"INVITE\"} 3\nsipd_requests_total{method=\"BYE\"} 0\nsipd_up 1\n";
        let s = summarize(text);
        assert!(s.contains("requests_total"), "{s}");
        assert!(s.contains("method=INVITE"), "{s}");
        assert!(!s.contains("method=BYE"), "{s}");
        assert!(
            s.lines().any(|l| l.starts_with("up") && l.ends_with(" 1")),
            "{s}"
        );
    }
}
