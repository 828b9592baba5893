//! The worker loop: receive a batch, hand it to the endpoint, fire timers, start new calls as
//! the rate allows, send the batch; sleep in the datapath until the next timer, token or packet
//! when there is nothing to do. One loop per worker thread, nothing shared but the progress
//! counters and the stop flag.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::io::{Datapath, RxBatch};
use super::stats::{Progress, Stats};
use super::{Endpoint, TxBatch};

/// How fast new calls (or requests) start.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Rate {
    PerSecond(f64),
    /// As fast as the loop goes (bounded by the concurrency limit).
    Max,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Rate, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        match s.parse::<f64>() {
            Ok(r) if r > 0.0 && r.is_finite() => Ok(Rate::PerSecond(r)),
            _ => Err(format!(
                "`{s}`: expected a positive number per second or `max`"
            )),
        }
    }
}

/// One worker's share of the run.
#[derive(Clone)]
pub struct WorkerConfig {
    pub rate: Rate,
    /// Most calls in flight at once.
    pub limit: usize,
    /// Calls (requests) to start; `None`: until the duration ends.
    pub calls: Option<u64>,
    /// Stop starting calls after this long; `None`: until `calls` or the stop flag.
    pub duration: Option<Duration>,
    /// Once no more calls start, wait at most this long for the ones in flight (`None`: until
    /// they end by themselves, which their timers guarantee).
    pub drain: Option<Duration>,
    /// Datagrams per system call.
    pub batch: usize,
    /// Set from outside to stop starting calls (then drain as usual).
    pub stop: Arc<AtomicBool>,
    pub progress: Arc<Progress>,
}

pub struct WorkerResult {
    pub stats: Stats,
    /// Calls still in flight at the end (after an incomplete drain).
    pub active: usize,
    /// From the run's start until this worker stopped starting calls.
    pub load_elapsed: Duration,
    /// From the run's start until this worker finished draining.
    pub elapsed: Duration,
}

struct TokenBucket {
    per_us: f64,
    tokens: f64,
    cap: f64,
    last_us: u64,
}

impl TokenBucket {
    fn new(per_s: f64, batch: usize) -> Self {
        let per_us = per_s / 1e6;
        TokenBucket {
            per_us,
            // A fresh bucket starts with one token: the first call goes out at once.
            tokens: 1.0,
            // At most 10 ms worth (or one batch) saved up: a stalled loop catches up, a long
            // stall does not turn into a burst.
            cap: (per_s / 100.0).max(batch as f64).max(1.0),
            last_us: 0,
        }
    }

    fn take(&mut self, now_us: u64, max: u64) -> u64 {
        self.tokens =
            (self.tokens + now_us.saturating_sub(self.last_us) as f64 * self.per_us).min(self.cap);
        self.last_us = now_us;
        let n = (self.tokens.floor() as u64).min(max);
        self.tokens -= n as f64;
        n
    }

    /// When the next whole token is there.
    fn next_us(&self, now_us: u64) -> u64 {
        if self.tokens >= 1.0 {
            now_us
        } else {
            now_us + ((1.0 - self.tokens) / self.per_us).ceil() as u64
        }
    }
}

/// Sends everything queued, waiting for room when the socket is full.
fn flush<D: Datapath>(dp: &mut D, tx: &mut TxBatch, stats: &mut Stats) -> io::Result<()> {
    let mut stalls = 0u32;
    while !tx.is_empty() {
        match dp.send(tx) {
            Ok(0) => {
                stalls += 1;
                if stalls > 1000 {
                    // A second of a full socket: drop the batch rather than wedge the loop.
                    stats.send_errors += tx.len() as u64;
                    tx.clear();
                    break;
                }
                dp.wait(Duration::from_millis(1), true)?;
            }
            Ok(n) => {
                stalls = 0;
                tx.consume(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                // This datagram cannot be sent (e.g. no route): count it, go on with the rest.
                stats.send_errors += 1;
                tx.consume(1);
            }
        }
    }
    Ok(())
}

/// Runs one worker to the end of its share. `epoch` is the run's common start.
pub fn run_worker<E: Endpoint, D: Datapath>(
    ep: &mut E,
    dp: &mut D,
    cfg: &WorkerConfig,
    epoch: Instant,
) -> io::Result<WorkerResult> {
    let batch = cfg.batch.max(1);
    let mut tx = TxBatch::with_capacity(batch * 2);
    let mut rx = RxBatch::new(batch);
    let mut bucket = match cfg.rate {
        Rate::PerSecond(r) => Some(TokenBucket::new(r, batch)),
        Rate::Max => None,
    };
    let now_us = || epoch.elapsed().as_micros() as u64;
    let duration_us = cfg.duration.map(|d| d.as_micros() as u64);
    let drain_us = cfg.drain.map(|d| d.as_micros() as u64);
    let mut started: u64 = 0;
    let mut stopping_since: Option<u64> = None;
    let mut iterations: u32 = 0;
    loop {
        let mut now = now_us();
        let received = dp.recv(&mut rx)?;
        for i in 0..received {
            let (from, bytes) = rx.get(i);
            ep.on_datagram(now, from, bytes, &mut tx);
            if tx.len() >= batch {
                flush(dp, &mut tx, ep.stats_mut())?;
            }
        }
        if received > 0 {
            now = now_us();
        }
        ep.on_timers(now, &mut tx);

        if stopping_since.is_none() {
            let count_done = cfg.calls.is_some_and(|c| started >= c);
            let time_done = duration_us.is_some_and(|d| now >= d);
            if count_done || time_done || cfg.stop.load(Ordering::Relaxed) {
                stopping_since = Some(now);
            } else {
                let room = cfg.limit.saturating_sub(ep.active()) as u64;
                let left = cfg.calls.map_or(u64::MAX, |c| c - started);
                let want = room.min(left).min(batch as u64);
                let n = match &mut bucket {
                    Some(b) if want > 0 => b.take(now, want),
                    Some(_) => 0,
                    None => want,
                };
                if n > 0 {
                    started += ep.start(now, n, &mut tx);
                }
            }
        }
        flush(dp, &mut tx, ep.stats_mut())?;

        iterations = iterations.wrapping_add(1);
        if iterations.is_multiple_of(64) {
            cfg.progress.publish(ep.stats(), ep.active());
        }

        if let Some(since) = stopping_since
            && (ep.active() == 0 || drain_us.is_some_and(|d| now.saturating_sub(since) >= d))
        {
            break;
        }

        if received == 0 {
            // Idle: sleep until the next timer, token, end of the run or 50 ms (to notice the
            // stop flag), whichever comes first.
            let mut wake = now + 50_000;
            if let Some(d) = ep.next_deadline() {
                wake = wake.min(d);
            }
            if stopping_since.is_none() {
                if let Some(d) = duration_us {
                    wake = wake.min(d);
                }
                let room = ep.active() < cfg.limit;
                match &bucket {
                    Some(b) if room => wake = wake.min(b.next_us(now)),
                    None if room => wake = now,
                    _ => {}
                }
            } else if let (Some(since), Some(d)) = (stopping_since, drain_us) {
                wake = wake.min(since + d);
            }
            if wake > now {
                cfg.progress.publish(ep.stats(), ep.active());
                dp.wait(Duration::from_micros(wake - now), false)?;
            }
        }
    }
    cfg.progress.publish(ep.stats(), ep.active());
    let elapsed = epoch.elapsed();
    Ok(WorkerResult {
        stats: ep.stats().clone(),
        active: ep.active(),
        load_elapsed: stopping_since.map_or(elapsed, Duration::from_micros),
        elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_paces() {
        let mut b = TokenBucket::new(1000.0, 8);
        assert_eq!(b.take(0, 100), 1);
        assert_eq!(b.take(500, 100), 0);
        assert_eq!(b.next_us(500), 1000);
        assert_eq!(b.take(1000, 100), 1);
        // 50 ms idle: capped at max(10 ms worth, batch) = 10 tokens.
        assert_eq!(b.take(51_000, 100), 10);
        assert_eq!(b.take(51_000, 100), 0);
    }

    #[test]
    fn rate_parses() {
        assert_eq!("max".parse::<Rate>(), Ok(Rate::Max));
        assert_eq!("250".parse::<Rate>(), Ok(Rate::PerSecond(250.0)));
        assert!("0".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
    }
}
