//! A timer queue with lazy cancellation: arming pushes `(deadline, key, seq)`; the owner keeps
//! the current `seq` per key and ignores popped entries whose `seq` is stale. No cancel
//! operation, no per-timer allocation beyond the heap's own growth.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Default)]
pub struct TimerQueue {
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
}

impl TimerQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms a timer for `key` at `deadline_us`, tagged with the owner's current `seq`.
    pub fn arm(&mut self, deadline_us: u64, key: u64, seq: u32) {
        self.heap.push(Reverse((deadline_us, key, seq)));
    }

    /// The next entry due at or before `now_us` (possibly stale: the caller checks `seq`).
    pub fn pop_due(&mut self, now_us: u64) -> Option<(u64, u32)> {
        match self.heap.peek() {
            Some(Reverse((d, _, _))) if *d <= now_us => {
                let Reverse((_, key, seq)) = self.heap.pop()?;
                Some((key, seq))
            }
            _ => None,
        }
    }

    /// Earliest deadline (stale entries included: waking early is harmless).
    pub fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((d, _, _))| *d)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let mut q = TimerQueue::new();
        q.arm(30, 3, 0);
        q.arm(10, 1, 0);
        q.arm(20, 2, 5);
        assert_eq!(q.next_deadline(), Some(10));
        assert_eq!(q.pop_due(5), None);
        assert_eq!(q.pop_due(25), Some((1, 0)));
        assert_eq!(q.pop_due(25), Some((2, 5)));
        assert_eq!(q.pop_due(25), None);
        assert_eq!(q.len(), 1);
    }
}
