//! One slot: a control word and the payload, 64 bytes of atomics in one cache line. See the
//! module docs for the state machine.

use super::sync::AtomicU64;

// Control word layout (u64):
//   bits  0..3  state        EMPTY, FREE, CLAIMING, RESERVED, LIVE, DRAINING
//   bit   3     FORK         slot is an extra (forked) dialog of a call, not the call itself
//   bit   4     CONFIRMED    this slot's own dialog got a 2xx
//   bit   5     ANSWERED     (call slot) some dialog of the call got a 2xx
//   bit   6     HOLLOW       (call slot) its own dialog is over; it only anchors live forks
//   bit   7     (free)       whether a call slot has a dialog of its own is its `to` field
//                            (a tag, or a sentinel): tagging it is one CAS there, not two
//   bits  8..16 children     (call slot) live or being-created forks, at most 255
//   bits 16..32 fingerprint  16 bits of the Call-ID hash: probes skip other calls without
//                            touching the payload
//   bits 32..40 probe hint   of the home bucket this slot is: how far from it a key homed here
//                            was ever claimed (see `DialogTable::cover`); kept across claims
//   bits 40..64 generation   bumped by every claim (24 bits, wrapping), so a stale reader or
//                            CAS fails (no ABA short of 16.7 M reuses of one slot under it)

pub(crate) const EMPTY: u64 = 0;
pub(crate) const FREE: u64 = 1;
pub(crate) const CLAIMING: u64 = 2;
pub(crate) const RESERVED: u64 = 3;
pub(crate) const LIVE: u64 = 4;
pub(crate) const DRAINING: u64 = 5;
pub(crate) const STATE_MASK: u64 = 0b111;

pub(crate) const FORK: u64 = 1 << 3;
pub(crate) const CONFIRMED: u64 = 1 << 4;
pub(crate) const ANSWERED: u64 = 1 << 5;
pub(crate) const HOLLOW: u64 = 1 << 6;
const FLAG_MASK: u64 = 0xf8;

const CHILD_SHIFT: u32 = 8;
const CHILD_ONE: u64 = 1 << CHILD_SHIFT;
pub(crate) const MAX_CHILDREN: u64 = 0xff;
pub(crate) const FP_SHIFT: u32 = 16;
pub(crate) const FP_MASK: u64 = 0xffff << FP_SHIFT;
const HINT_SHIFT: u32 = 32;
const HINT_MASK: u64 = 0xff << HINT_SHIFT;
/// The largest probe hint the word holds (the probe window is at most 256 slots).
pub(crate) const MAX_HINT: usize = 0xff;
const GEN_SHIFT: u32 = 40;
const GEN_MAX: u32 = (1 << 24) - 1;

/// Helpers over a control word value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Word(pub(crate) u64);

impl Word {
    #[inline]
    pub(crate) fn state(self) -> u64 {
        self.0 & STATE_MASK
    }
    #[inline]
    pub(crate) fn has(self, flag: u64) -> bool {
        self.0 & flag != 0
    }
    #[inline]
    pub(crate) fn gen_(self) -> u32 {
        (self.0 >> GEN_SHIFT) as u32
    }
    /// The probe hint of the home bucket this slot is.
    #[inline]
    pub(crate) fn hint(self) -> usize {
        ((self.0 & HINT_MASK) >> HINT_SHIFT) as usize
    }
    /// The same word with its probe hint raised to at least `d` (at most [`MAX_HINT`]).
    #[inline]
    pub(crate) fn with_hint_at_least(self, d: usize) -> Word {
        if d <= self.hint() {
            self
        } else {
            Word((self.0 & !HINT_MASK) | ((d.min(MAX_HINT) as u64) << HINT_SHIFT))
        }
    }
    #[inline]
    pub(crate) fn fp(self) -> u16 {
        (self.0 >> FP_SHIFT) as u16
    }
    #[inline]
    pub(crate) fn children(self) -> u64 {
        (self.0 >> CHILD_SHIFT) & MAX_CHILDREN
    }
    #[inline]
    pub(crate) fn with_state(self, s: u64) -> Word {
        Word((self.0 & !STATE_MASK) | s)
    }
    #[inline]
    pub(crate) fn with(self, flags: u64) -> Word {
        Word(self.0 | flags)
    }
    #[inline]
    pub(crate) fn inc_children(self) -> Word {
        Word(self.0 + CHILD_ONE)
    }
    #[inline]
    pub(crate) fn dec_children(self) -> Word {
        Word(self.0 - CHILD_ONE)
    }
    #[cfg(test)]
    pub(crate) fn flags(self) -> u64 {
        self.0 & FLAG_MASK
    }
    /// A freshly claimed word: next generation, fingerprint, flags, no children; the probe hint
    /// (the home bucket's, not the claimed key's) stays.
    #[inline]
    pub(crate) fn claim(prev: Word, fp: u16, flags: u64) -> Word {
        let g = (prev.gen_().wrapping_add(1) & GEN_MAX) as u64;
        Word(
            (g << GEN_SHIFT)
                | (prev.0 & HINT_MASK)
                | ((fp as u64) << FP_SHIFT)
                | (flags & FLAG_MASK)
                | CLAIMING,
        )
    }
    /// A word of generation `gen_` in `state`, nothing else (to compare generations with).
    #[inline]
    pub(crate) fn of_gen(gen_: u32, state: u64) -> Word {
        Word((((gen_ & GEN_MAX) as u64) << GEN_SHIFT) | state)
    }
    /// The word a slot keeps once freed: same generation and probe hint, nothing else.
    #[inline]
    pub(crate) fn freed(self) -> Word {
        Word((self.0 & (((GEN_MAX as u64) << GEN_SHIFT) | HINT_MASK)) | FREE)
    }
    /// True for the states in which the payload's key is valid and visible to probes.
    #[inline]
    pub(crate) fn keyed(self) -> bool {
        matches!(self.state(), RESERVED | LIVE | DRAINING)
    }
}

/// Record id (and a fork's link to its call): generation and index of the call's slot.
#[inline]
pub(crate) fn record_id(gen_: u32, idx: usize) -> u64 {
    ((gen_ as u64) << 32) | idx as u64
}
#[inline]
pub(crate) fn split_record_id(id: u64) -> (u32, usize) {
    ((id >> 32) as u32, (id & 0xffff_ffff) as usize)
}

/// `to` field of a call slot with no dialog yet: bit 63 set plus the generation, so a stale
/// thread's CAS expecting another generation's sentinel fails. The CAS from it to a tag (bit 63
/// clear) is what gives a call slot its own dialog (there is no flag for it in the word).
#[inline]
pub(crate) fn no_tag(gen_: u32) -> u64 {
    (1 << 63) | gen_ as u64
}

/// `to` field of a call slot that can no longer get a dialog of its own (its call is ending, or
/// its forks' anchor): set by CAS from `no_tag(gen)`, so exactly one of that CAS and a 1xx's
/// tagging CAS wins, and whoever ends the call knows whether it had a dialog to end.
#[inline]
pub(crate) fn closed(gen_: u32) -> u64 {
    (3 << 62) | gen_ as u64
}

/// True when a `to` value is a tag, not a sentinel.
#[inline]
pub(crate) fn is_tag(to: u64) -> bool {
    to >> 63 == 0
}

/// `answer` field: generation in the high half, answer delay after start + 1 in the low half
/// (0 = not answered). Written by CAS from `unanswered(gen)`, so only this generation can set it.
#[inline]
pub(crate) fn unanswered(gen_: u32) -> u64 {
    (gen_ as u64) << 32
}
#[inline]
pub(crate) fn answered(gen_: u32, start_ms: u64, now_ms: u64) -> u64 {
    let delay = now_ms.saturating_sub(start_ms).min(u32::MAX as u64 - 1);
    ((gen_ as u64) << 32) | (delay + 1)
}
#[inline]
pub(crate) fn answer_ms(field: u64, gen_: u32, start_ms: u64) -> Option<u64> {
    let low = field & 0xffff_ffff;
    if (field >> 32) as u32 != gen_ || low == 0 {
        None
    } else {
        Some(start_ms + low - 1)
    }
}

/// `last` field: the low 24 bits of the generation in the top 24 bits, the time after `start` in
/// ms in the low 40 (34 years). Written with a plain store (no locked RMW per message): see
/// `DialogTable::bump_last`. A value whose tag is not the slot's generation (a thread that slept
/// across a reuse stored its old slot's time) reads as unknown, never as an old time, so it can
/// postpone the new dialog's expiry by one timeout (the sweep re-stamps it) but never end it early.
#[inline]
pub(crate) fn stamp(gen_: u32, start_ms: u64, now_ms: u64) -> u64 {
    ((gen_ as u64 & LAST_TAG) << LAST_SHIFT) | now_ms.saturating_sub(start_ms).min(LAST_MAX)
}
/// The time in a `last` field of generation `gen_`, None if the tag is another generation's.
#[inline]
pub(crate) fn last_ms(field: u64, gen_: u32, start_ms: u64) -> Option<u64> {
    (field >> LAST_SHIFT == gen_ as u64 & LAST_TAG).then(|| start_ms + (field & LAST_MAX))
}
/// True when `a` and `b` are `last` values of the same generation.
#[inline]
pub(crate) fn same_tag(a: u64, b: u64) -> bool {
    a >> LAST_SHIFT == b >> LAST_SHIFT
}
const LAST_SHIFT: u32 = 40;
const LAST_TAG: u64 = (1 << 24) - 1;
const LAST_MAX: u64 = (1 << LAST_SHIFT) - 1;

/// The payload. Every field is an atomic, so a reader racing a reuse reads stale or new values,
/// never undefined ones; it then re-checks the control word's generation and discards what it read
/// if the slot changed. Immutable while the generation lives: `cid`, `from`, `start`, `link`
/// (written only in CLAIMING); `to` (call slot: once, by CAS from the sentinel), `answer` (once,
/// by CAS) and `last` (see [`stamp`]) are generation-tagged.
#[repr(C, align(64))]
pub(crate) struct Payload {
    /// The control word ([`Word`]): in the payload's cache line, so an event on a slot (a new
    /// call's claim CAS and payload stores, a lookup's fingerprint and key compare) misses one
    /// line, not two.
    pub(crate) word: AtomicU64,
    /// Call-ID hash.
    pub(crate) cid: AtomicU64,
    /// Caller's tag hash (From tag of the INVITE).
    pub(crate) from: AtomicU64,
    /// Callee's tag hash, or `no_tag(gen)` on a call slot without a dialog.
    pub(crate) to: AtomicU64,
    /// INVITE time, ms.
    pub(crate) start: AtomicU64,
    /// See [`answered`].
    pub(crate) answer: AtomicU64,
    /// Last traffic: see [`stamp`].
    pub(crate) last: AtomicU64,
    /// Call slot: trunk id. Fork: the call's record id (its slot's generation and index).
    pub(crate) link: AtomicU64,
}

impl Payload {
    pub(crate) fn new() -> Self {
        Payload {
            word: AtomicU64::new(EMPTY),
            cid: AtomicU64::new(0),
            from: AtomicU64::new(0),
            to: AtomicU64::new(0),
            start: AtomicU64::new(0),
            answer: AtomicU64::new(0),
            last: AtomicU64::new(0),
            link: AtomicU64::new(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_round_trips() {
        let w = Word::claim(Word(EMPTY), 0xbeef, FORK | HOLLOW);
        assert_eq!(w.state(), CLAIMING);
        assert_eq!(w.gen_(), 1);
        assert_eq!(w.fp(), 0xbeef);
        assert!(w.has(FORK) && w.has(HOLLOW) && !w.has(CONFIRMED));
        let w = w.with_state(LIVE).inc_children().inc_children();
        assert_eq!(w.children(), 2);
        assert_eq!(w.dec_children().children(), 1);
        assert_eq!(w.state(), LIVE);
        let f = w.freed();
        assert_eq!(
            (f.state(), f.gen_(), f.flags(), f.children()),
            (FREE, 1, 0, 0)
        );
        let w2 = Word::claim(f, 1, 0);
        assert_eq!(w2.gen_(), 2);
        let wrap = Word::claim(Word(((GEN_MAX as u64) << GEN_SHIFT) | FREE), 1, 0);
        assert_eq!(wrap.gen_(), 0);
    }

    #[test]
    fn the_probe_hint_only_grows_and_survives_claims_and_frees() {
        let w = Word(EMPTY).with_hint_at_least(3);
        assert_eq!((w.hint(), w.state()), (3, EMPTY));
        assert_eq!(w.with_hint_at_least(2).hint(), 3);
        assert_eq!(w.with_hint_at_least(300).hint(), MAX_HINT);
        let c = Word::claim(w, 0xbeef, CONFIRMED);
        assert_eq!((c.hint(), c.gen_(), c.fp()), (3, 1, 0xbeef));
        let live = c.with_state(LIVE).with_hint_at_least(5).inc_children();
        assert_eq!((live.hint(), live.children(), live.fp()), (5, 1, 0xbeef));
        let f = live.freed();
        assert_eq!(
            (f.hint(), f.state(), f.gen_(), f.children()),
            (5, FREE, 1, 0)
        );
        assert_eq!(Word::claim(f, 1, 0).hint(), 5);
    }

    #[test]
    fn answer_field_is_generation_tagged() {
        let f = answered(7, 1000, 1500);
        assert_eq!(answer_ms(f, 7, 1000), Some(1500));
        assert_eq!(answer_ms(f, 8, 1000), None);
        assert_eq!(answer_ms(unanswered(7), 7, 1000), None);
        assert_eq!(answer_ms(answered(7, 1000, 1000), 7, 1000), Some(1000));
    }

    #[test]
    fn last_field_is_generation_tagged() {
        let f = stamp(7, 1000, 1500);
        assert_eq!(last_ms(f, 7, 1000), Some(1500));
        assert_eq!(last_ms(f, 8, 1000), None);
        // A lagging clock reads as the start; only the low 24 bits of the generation are kept.
        assert_eq!(last_ms(stamp(7, 1000, 900), 7, 1000), Some(1000));
        assert_eq!(last_ms(stamp(7 + (1 << 24), 0, 5), 7, 0), Some(5));
        assert!(same_tag(stamp(7, 0, 1), stamp(7, 0, 1 << 39)));
        assert!(!same_tag(stamp(7, 0, 1), stamp(8, 0, 1)));
        assert!(stamp(7, 0, 1) < stamp(7, 0, 2));
    }
}
