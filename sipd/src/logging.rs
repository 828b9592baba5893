//! Logging with `tracing`: human-readable by default, JSON lines with `format = "json"`. Nothing
//! per packet is logged above `debug`; floods of bad input are reported by [`RateLimited`]
//! warnings (one line a second with the count of what was suppressed).

use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber (first call wins; later calls are ignored, as in tests).
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_env("SIPD_LOG")
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// At most one warning per interval for a recurring event; counts what it suppressed.
#[derive(Debug, Default)]
pub struct RateLimited {
    next_at_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimited {
    pub const fn new() -> Self {
        RateLimited {
            next_at_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(events since the last report)` when a warning may be logged now.
    pub fn check(&self, now_ms: u64, interval_ms: u64) -> Option<u64> {
        let next = self.next_at_ms.load(Ordering::Relaxed);
        if now_ms >= next
            && self
                .next_at_ms
                .compare_exchange(
                    next,
                    now_ms + interval_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed) + 1);
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_per_interval_with_the_count() {
        let r = RateLimited::new();
        assert_eq!(r.check(0, 1000), Some(1));
        for t in 1..10 {
            assert_eq!(r.check(t * 100, 1000), None);
        }
        assert_eq!(r.check(1000, 1000), Some(10));
        assert_eq!(r.check(1001, 1000), None);
    }
}
