//! The table itself: probing, the claim protocol, transitions. The protocol is described in the
//! module docs (`super`); comments here point at the step they implement.

use std::ops::Range;
use std::sync::atomic::AtomicI64;

use crossbeam_utils::CachePadded;

use super::key::{CallKey, DialogKey, Tag, hash_call_id};
use super::record::{EndReason, Party, RecordEvent, RecordSink};
use super::region::{self, Slab, slab};
use super::slot::*;
use super::stats::{C, DialogStats, STRIPES, Stripes, bump, stripe};
use super::sync::{AtomicU64, AtomicUsize, Ordering, fence};

use Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

/// Sizing and timeouts, fixed when the table is built.
#[derive(Clone, Debug)]
pub struct DialogConfig {
    /// Home buckets. The table holds `capacity + probe_window - 1` slots; plan for about
    /// 0.8 x capacity live calls plus dialogs (see the module docs).
    pub capacity: usize,
    /// Slots probed from a key's home bucket (bounded linear probing), at most 256.
    pub probe_window: usize,
    /// A call with no dialog, or an early dialog, with no traffic for this long is reaped.
    pub early_timeout_ms: u64,
    /// A confirmed dialog with no traffic for this long is reaped.
    pub session_timeout_ms: u64,
    /// Trunk ids `0..max_trunks` are counted and can be limited; others are neither.
    pub max_trunks: usize,
}

impl Default for DialogConfig {
    fn default() -> Self {
        DialogConfig {
            capacity: 1 << 16,
            probe_window: 64,
            // Timer C (RFC 3261 §16.6): 3 minutes.
            early_timeout_ms: 180_000,
            // RFC 4028's recommended Session-Expires; a call with no re-INVITE, UPDATE or other
            // in-dialog traffic for this long is taken as gone.
            session_timeout_ms: 1_800_000,
            max_trunks: 1024,
        }
    }
}

/// Identifies a created call; its `record_id` is the id of its call records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallHandle {
    /// Unique among live calls, and across reuse of a slot for 2^32 generations.
    pub record_id: u64,
}

/// The INVITE was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteOutcome {
    /// A new call.
    Created(CallHandle),
    /// The call already existed (a retransmitted INVITE).
    Existing(CallHandle),
}

impl InviteOutcome {
    /// The call's handle either way.
    pub fn handle(self) -> CallHandle {
        match self {
            InviteOutcome::Created(h) | InviteOutcome::Existing(h) => h,
        }
    }
}

/// Why an INVITE was refused; the proxy answers 503.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The key's probe window holds only live calls (after evicting expired ones).
    #[error("dialog table full")]
    Full,
    /// The source trunk is at its concurrent-call limit.
    #[error("trunk at its call limit")]
    TrunkLimit,
}

/// What a response to the INVITE did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseOutcome {
    /// A 1xx without To tag: the call's timer was refreshed.
    Touched,
    /// The early dialog for this To tag exists (`created` by this response or before).
    Early {
        /// Created by this response.
        created: bool,
    },
    /// The dialog for this To tag is confirmed.
    Confirmed {
        /// Confirmed by this response (not a retransmission).
        first: bool,
    },
    /// A final non-2xx ended the call and its early dialogs (or, on an answered call, the early
    /// dialogs that were not chosen).
    Ended,
    /// No such call (never seen, or already ended).
    UnknownCall,
    /// The dialog could not be tracked: no room in the probe window, or 255 forks. Counted.
    Untracked,
    /// Nothing to do (a 2xx without To tag).
    Ignored,
}

/// Dialog state as seen by a reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogState {
    /// 1xx with To tag seen.
    Early,
    /// 2xx seen.
    Confirmed,
}

/// A consistent view of one live dialog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DialogInfo {
    /// State.
    pub state: DialogState,
    /// Its call's record id.
    pub record_id: u64,
    /// INVITE time.
    pub start_ms: u64,
    /// 2xx time.
    pub answer_ms: Option<u64>,
    /// Last traffic.
    pub last_ms: u64,
}

/// A consistent view of one live call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallInfo {
    /// Record id.
    pub record_id: u64,
    /// Source trunk.
    pub trunk: u32,
    /// INVITE time.
    pub start_ms: u64,
    /// Some dialog of the call was confirmed.
    pub answered: bool,
    /// Forked dialogs alive (besides the call's own first dialog).
    pub forks: u32,
}

/// Result of the claim protocol.
enum Claim {
    Published(usize, Word),
    /// The key exists. `bool`: we had published-ready a slot of our own but a rival killed it
    /// and adopted its flags (so a confirmation we carried is on the existing slot).
    Existing(usize, Word, bool),
    Full,
    /// The `gate` said no.
    Refused,
}

/// What a probe is looking for in `claim` and `find`.
#[derive(Clone, Copy)]
enum Want {
    /// The call slot of (cid, from).
    Call { cid: u64, from: u64 },
    /// The fork slot of (cid, from, to).
    Fork { cid: u64, from: u64, to: u64 },
}

/// Payload fields read before a transition, so nothing is read after the slot may be reused.
struct Snap {
    start: u64,
    answer: u64,
    link: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    Event,
    Expired,
    Evicted,
}

/// The lock-free dialog table. Share it by reference (`Arc<DialogTable>` or a `'static`); every
/// method takes `&self` and is lock-free.
pub struct DialogTable {
    /// Control word and payload of each slot, one cache line each.
    slots: Slab<Payload>,
    cap: usize,
    window: usize,
    early_ms: u64,
    session_ms: u64,
    /// One cache line per trunk: limit, and the count of calls started while it had a limit.
    trunks: Box<[CachePadded<Trunk>]>,
    /// Per-thread trunk counts (calls started and ended while the trunk had no limit), one row of
    /// whole cache lines per stats stripe (`stats::stripe`): a worker counts its calls with a
    /// plain load and store on lines no other thread writes.
    trunk_rows: Box<[CachePadded<[AtomicI64; ROW_CHUNK]>]>,
    /// Chunks per row of `trunk_rows`.
    row: usize,
    stats: Stripes,
    cursor: CachePadded<AtomicUsize>,
    sink: Option<RecordSink>,
}

/// A trunk's limit and the shared part of its concurrent-call count.
///
/// The count is `shared` plus the trunk's entries in every row of `trunk_rows` (signed: a call
/// may end on another thread, or under another regime, than the one it started in). A call
/// starting or ending while the trunk has no limit updates its thread's row, no locked
/// instruction and no line shared with other workers; with a limit, `shared` (`fetch_add`, so
/// the check is exact among limited INVITEs: the rows only move for operations that read the
/// limit before it was set).
struct Trunk {
    /// Wrapping; read as `i64`.
    shared: AtomicU64,
    limit: AtomicU64,
}

/// Trunk counts per cache-line chunk of a row.
const ROW_CHUNK: usize = 16;

/// Bytes of one slot: its control word and payload, one cache line.
pub const SLOT_BYTES: usize = std::mem::size_of::<Payload>();

#[inline]
fn fp_of(cid: u64) -> u16 {
    cid as u16
}

/// A set of slot states as a bit per state, for [`DialogTable::find`].
const fn states(list: &[u64]) -> u64 {
    let mut set = 0;
    let mut k = 0;
    while k < list.len() {
        set |= 1 << list[k];
        k += 1;
    }
    set
}

impl DialogTable {
    /// A table without call records.
    pub fn new(cfg: DialogConfig) -> Self {
        Self::build(cfg, None)
    }

    /// A table that sends call-record events to `sink` (see [`super::RecordWriter`]).
    pub fn with_records(cfg: DialogConfig, sink: RecordSink) -> Self {
        Self::build(cfg, Some(sink))
    }

    fn build(cfg: DialogConfig, sink: Option<RecordSink>) -> Self {
        let window = cfg.probe_window.clamp(1, 256);
        let cap = cfg.capacity.max(1);
        let total = cap + window - 1;
        assert!(
            total <= u32::MAX as usize,
            "record ids hold a 32-bit slot index"
        );
        DialogTable {
            // All zeros: EMPTY words, zero payloads and hints.
            slots: slab(total, Payload::new),
            cap,
            window,
            early_ms: cfg.early_timeout_ms,
            session_ms: cfg.session_timeout_ms,
            trunks: (0..cfg.max_trunks)
                .map(|_| {
                    CachePadded::new(Trunk {
                        shared: AtomicU64::new(0),
                        limit: AtomicU64::new(u64::MAX),
                    })
                })
                .collect(),
            trunk_rows: (0..STRIPES * cfg.max_trunks.div_ceil(ROW_CHUNK))
                .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicI64::new(0))))
                .collect(),
            row: cfg.max_trunks.div_ceil(ROW_CHUNK),
            stats: Stripes::new(),
            cursor: CachePadded::new(AtomicUsize::new(0)),
            sink,
        }
    }

    /// Slots in the table (each holds a call or a forked dialog).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Memory of the slot array (probe hints included, in the control words), bytes (fixed at
    /// build).
    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * SLOT_BYTES
    }

    /// Limit trunk `trunk` to `limit` concurrent calls (`None`: no limit). Takes effect for the
    /// next INVITE; calls already up are kept.
    pub fn set_trunk_limit(&self, trunk: u32, limit: Option<u32>) {
        if let Some(t) = self.trunks.get(trunk as usize) {
            t.limit.store(limit.map_or(u64::MAX, u64::from), Relaxed);
        }
    }

    /// Calls of `trunk` not yet ended.
    pub fn trunk_active(&self, trunk: u32) -> u64 {
        self.trunks.get(trunk as usize).map_or(0, |t| {
            (t.shared.load(Relaxed) as i64 + self.trunk_striped(trunk as usize)).max(0) as u64
        })
    }

    /// Sum of trunk `trunk`'s entries in every thread's row.
    fn trunk_striped(&self, trunk: usize) -> i64 {
        (0..STRIPES)
            .map(|s| self.trunk_cell(s, trunk).load(Relaxed))
            .sum()
    }

    #[inline]
    fn trunk_cell(&self, stripe: usize, trunk: usize) -> &AtomicI64 {
        &self.trunk_rows[stripe * self.row + trunk / ROW_CHUNK][trunk % ROW_CHUNK]
    }

    /// Count a call of trunk `trunk` (`t`) started (+1) or ended (-1) while it has no limit:
    /// this thread's row.
    #[inline]
    fn trunk_local(&self, trunk: usize, v: i64) {
        let (s, owned) = stripe();
        bump(self.trunk_cell(s, trunk), owned, v);
    }

    /// A call of trunk `trunk` ended: its count goes down where the trunk's regime says (see
    /// [`Trunk`]; the total is the same either way).
    #[inline]
    fn trunk_release(&self, trunk: usize) {
        if let Some(t) = self.trunks.get(trunk) {
            if t.limit.load(Relaxed) == u64::MAX {
                self.trunk_local(trunk, -1);
            } else {
                t.shared.fetch_sub(1, AcqRel);
            }
        }
    }

    /// Gauges and counters (sums of per-thread stripes; never blocks a writer).
    pub fn stats(&self) -> DialogStats {
        self.stats.snapshot()
    }

    /// Starts loading the cache line every event of the call with this Call-ID reads first
    /// (its home slot: the control word with the probe hint and, for most calls, the call
    /// itself), so the event that follows does not stall on memory.
    ///
    /// Why: events land on random slots of a table far larger than the caches, and an event's
    /// own work is shorter than the miss it starts with (the miss was about half of a call's
    /// time in the table). A worker that holds a batch of received messages calls this for
    /// every one of them before handling the first (see `Proxy::look_ahead`), so the misses of
    /// the batch overlap each other and the handling of the messages before. Only a hint to
    /// the CPU: it changes nothing in the table, and a wrong or unused one costs a few cycles.
    #[inline]
    pub fn prefetch_call_id(&self, call_id: &[u8]) {
        self.prefetch_home(hash_call_id(call_id));
    }

    /// [`DialogTable::prefetch_call_id`] for a call whose key is already hashed.
    #[inline]
    pub fn prefetch(&self, call: CallKey) {
        self.prefetch_home(call.cid);
    }

    #[inline]
    fn prefetch_home(&self, cid: u64) {
        region::prefetch(&self.slots[self.home(cid)]);
    }

    // ---------------------------------------------------------------- probing

    #[inline]
    fn home(&self, cid: u64) -> usize {
        ((cid as u128 * self.cap as u128) >> 64) as usize
    }

    /// The whole probe window of `cid`.
    #[inline]
    fn win(&self, cid: u64) -> Range<usize> {
        let h = self.home(cid);
        h..h + self.window
    }

    /// The part of `cid`'s window a probe for a key must scan: up to the home bucket's hint.
    /// `order`: Acquire for readers; SeqCst where a Dekker step reads it after its announce.
    #[inline]
    fn span(&self, cid: u64, order: Ordering) -> Range<usize> {
        let h = self.home(cid);
        // The hint is in the home slot's word: the line the probe reads first anyway.
        h..h + 1 + Word(self.slots[h].word.load(order)).hint()
    }

    /// Slot `i` of `cid`'s window is being claimed: raise the home bucket's hint to cover it.
    /// Called before the slot is announced (RESERVED) and so before it can be published: a
    /// reader that can see the key sees the hint (coherence), and of two claimers of one key, the
    /// one whose announce comes second reads a hint covering the other (see `claim`).
    #[inline]
    fn cover(&self, cid: u64, i: usize) {
        let h = self.home(cid);
        let d = i - h;
        // The home slot is always scanned: no hint needed (most claims land there).
        if d > 0 {
            // An RMW even when the hint is already high enough: the Dekker argument in `claim`
            // needs a write of ours to the hint before our announce, not only a read of
            // another's. It changes only the hint bits, so the word's owner loses nothing: its
            // CASes fail and retry on the new word, and its announce is an RMW too.
            let _ = self.slots[h]
                .word
                .fetch_update(SeqCst, SeqCst, |w| Some(Word(w).with_hint_at_least(d).0));
        }
    }

    /// Traffic on slot `i` (generation `g`) at `now`: raise its last-activity time with a plain
    /// load and store, no locked RMW: nothing is written when the stored time is already `now`
    /// or later, or is another generation's (the slot was reused since we found it).
    ///
    /// What the plain store gives up, and why that is safe (see [`stamp`]): two workers
    /// stamping one dialog at once can leave the earlier of their two times (a lag of their
    /// clocks, milliseconds against timeouts of minutes); and a thread that slept between its
    /// load and its store across a reuse of the slot stores a value tagged with the old
    /// generation, which the new one reads as unknown: `reap` re-stamps it instead of ending
    /// the dialog, so the worst case is one timeout of delay, never an early end.
    #[inline]
    fn bump_last(&self, i: usize, g: u32, now: u64) {
        let p = &self.slots[i];
        let new = stamp(g, p.start.load(Relaxed), now);
        let cur = p.last.load(Relaxed);
        if same_tag(cur, new) && cur < new {
            p.last.store(new, Relaxed);
        }
    }

    #[inline]
    fn emit(&self, ev: RecordEvent) {
        if let Some(s) = &self.sink {
            s.send(ev);
        }
    }

    /// Re-read slot `i`'s control word after reading its payload: the payload belongs to the
    /// generation of `w` only if the word still has that generation and a keyed state.
    #[inline]
    fn still(&self, i: usize, w: Word) -> bool {
        // Orders the payload loads before this load (pairs with the Release fence a claimer
        // issues before writing a new generation's payload).
        fence(Acquire);
        let now = Word(self.slots[i].word.load(Relaxed));
        now.gen_() == w.gen_() && now.keyed()
    }

    /// Does keyed slot `i` (word `w`, fingerprint already matched) hold `want`?
    #[inline]
    fn holds(&self, i: usize, w: Word, want: Want) -> bool {
        let p = &self.slots[i];
        let hit = match want {
            Want::Call { cid, from } => {
                !w.has(FORK) && p.cid.load(Relaxed) == cid && p.from.load(Relaxed) == from
            }
            Want::Fork { cid, from, to } => {
                w.has(FORK)
                    && p.cid.load(Relaxed) == cid
                    && p.from.load(Relaxed) == from
                    && p.to.load(Relaxed) == to
            }
        };
        hit && self.still(i, w)
    }

    /// The slots a probe for `cid` must scan (up to the home bucket's hint, read with Acquire)
    /// and the index of the first. Hashed once per probe; a slice, so the loop over it has no
    /// bounds checks (the hint is below the window, so the span lies in the table).
    #[inline]
    fn span_slots(&self, cid: u64) -> (usize, &[Payload]) {
        let r = self.span(cid, Acquire);
        (r.start, &self.slots[r])
    }

    /// First slot in the window holding `want` in one of `states` (a bit per state, see
    /// [`states`]). One masked compare per slot skips other calls (fingerprint) and slots of the
    /// other kind (FORK bit); only a mismatch is checked for EMPTY, the end of the probe.
    #[inline(always)]
    fn find(&self, want: Want, states: u64) -> Option<(usize, Word)> {
        let (cid, kind) = match want {
            Want::Call { cid, .. } => (cid, 0),
            Want::Fork { cid, .. } => (cid, FORK),
        };
        let mask = FP_MASK | FORK;
        let key = ((fp_of(cid) as u64) << FP_SHIFT) | kind;
        let (h, span) = self.span_slots(cid);
        for (k, c) in span.iter().enumerate() {
            let w = c.word.load(Acquire);
            if w & mask == key {
                // (An EMPTY word can match fingerprint 0; its state is in no `states`.)
                let w = Word(w);
                if states & (1 << w.state()) != 0 && self.holds(h + k, w, want) {
                    return Some((h + k, w));
                }
            } else if w & STATE_MASK == EMPTY {
                return None;
            }
        }
        None
    }

    /// The live slot (call slot with its own dialog, or fork) of dialog `key`: LIVE, not
    /// HOLLOW, fingerprint matched, all in one masked compare per slot.
    #[inline(always)]
    fn find_dialog(&self, key: DialogKey) -> Option<(usize, Word)> {
        // (A call slot without a dialog has a sentinel in `to`, bit 63 set: no key matches it.)
        let mask = FP_MASK | STATE_MASK | HOLLOW;
        let want = ((fp_of(key.cid) as u64) << FP_SHIFT) | LIVE;
        let (h, span) = self.span_slots(key.cid);
        for (k, p) in span.iter().enumerate() {
            let w = p.word.load(Acquire);
            if w & mask == want {
                let i = h + k;
                let (c, f, t) = (
                    p.cid.load(Relaxed),
                    p.from.load(Relaxed),
                    p.to.load(Relaxed),
                );
                if key.matches(c, f, t) && self.still(i, Word(w)) {
                    return Some((i, Word(w)));
                }
            } else if w & STATE_MASK == EMPTY {
                return None;
            }
        }
        None
    }

    // ---------------------------------------------------------------- claim protocol

    /// Insert `want` unless it exists: steps 1-5 of the claim protocol (module docs).
    /// `gate` runs once, after the scan found no existing key and before the first claim CAS
    /// (the trunk limit check); false refuses.
    fn claim(
        &self,
        want: Want,
        flags: u64,
        start: u64,
        link: u64,
        now: u64,
        mut gate: impl FnMut() -> bool,
    ) -> Claim {
        let (cid, from, to) = match want {
            Want::Call { cid, from } => (cid, from, None),
            Want::Fork { cid, from, to } => (cid, from, Some(to)),
        };
        let fp = fp_of(cid);
        let win = self.win(cid);
        let mut killed = false;
        let mut gated = false;
        'restart: loop {
            // 1. One pass: look for the key up to the hint, and remember the first reusable slot
            //    (past the hint if there is none before it). A key published before the hint was
            //    read lies within it; one being claimed meanwhile is resolved in step 4.
            let last = self.span(cid, Acquire).end - 1;
            let mut cand = None;
            for i in win.clone() {
                let w = Word(self.slots[i].word.load(SeqCst));
                match w.state() {
                    EMPTY => {
                        cand = cand.or(Some((i, w)));
                        break;
                    }
                    FREE => cand = cand.or(Some((i, w))),
                    RESERVED | LIVE | DRAINING if w.fp() == fp && self.holds(i, w, want) => {
                        return Claim::Existing(i, w, killed);
                    }
                    _ => {}
                }
                if i >= last && cand.is_some() {
                    break;
                }
            }
            let (i, w) = match cand {
                Some(c) => c,
                // 1b. No room: reap what has expired in the window, then give up.
                None if self.evict(win.clone(), now) => continue 'restart,
                None => return Claim::Full,
            };
            if !gated {
                gated = true;
                if !gate() {
                    return Claim::Refused;
                }
            }
            // 2. Claim it: only the claimer writes a CLAIMING slot.
            let mine = Word::claim(w, fp, flags);
            if self.slots[i]
                .word
                .compare_exchange(w.0, mine.0, SeqCst, Relaxed)
                .is_err()
            {
                continue 'restart;
            }
            // Before the announce (step 3), so before our key can be seen: lookups and rivals
            // scanning up to the hint reach slot `i`.
            self.cover(cid, i);
            // Orders the CLAIMING word before the payload stores (seqlock writer side), so a
            // reader that sees a new payload value also sees the generation change.
            fence(Release);
            let g = mine.gen_();
            let p = &self.slots[i];
            p.cid.store(cid, Relaxed);
            p.from.store(from, Relaxed);
            p.to.store(to.unwrap_or(no_tag(g)), Relaxed);
            p.start.store(start, Relaxed);
            p.answer.store(
                if flags & CONFIRMED != 0 {
                    answered(g, start, now)
                } else {
                    unanswered(g)
                },
                Relaxed,
            );
            // (A fork's start is its call's; a worker's clock may lag the one that made the call:
            // `stamp` saturates at the start.)
            p.last.store(stamp(g, start, now), Relaxed);
            p.link.store(link, Relaxed);
            // 3. Announce: the key becomes visible to other claimers (not to lookups); its
            //    release publishes the payload stores (seqlock writer side). An RMW, CLAIMING + 1
            //    = RESERVED: only we change the state of a CLAIMING slot, but another claimer may
            //    raise the hint bits meanwhile (a plain store would erase them).
            const { assert!(RESERVED == CLAIMING + 1) };
            self.slots[i].word.fetch_add(RESERVED - CLAIMING, SeqCst);
            // Dekker: raise the hint and announce (SeqCst RMWs), then read the hint and the
            // rivals' words (SeqCst loads). Of two claimers of one key, the one whose announce is
            // later in the SeqCst order reads the other's hint write (or a later, larger one: the
            // hint only grows) and sees its announcement. (The announce's locked instruction is
            // the full barrier; before the hint moved into the word it was a plain store and a
            // fence.)
            // 4. Resolve rivals with the same key announced at the same time.
            for j in self.span(cid, SeqCst) {
                if j == i {
                    continue;
                }
                let wj = Word(self.slots[j].word.load(SeqCst));
                if wj.state() == EMPTY {
                    break;
                }
                if wj.fp() != fp || !wj.keyed() || !self.holds(j, wj, want) {
                    continue;
                }
                if wj.state() != RESERVED || j < i {
                    // Published already, or announced at a lower index: it wins.
                    killed |= !self.abort(i, g);
                    return Claim::Existing(j, wj, killed);
                }
                // A rival above us: kill it, taking over what others set on it meanwhile.
                if let Some(lost) = self.kill(j, wj.gen_()) {
                    self.adopt(i, g, start, lost, now);
                } else {
                    // It changed under us: published (it wins) or gone (ignore it).
                    let now_j = Word(self.slots[j].word.load(SeqCst));
                    if now_j.gen_() == wj.gen_() && now_j.state() == LIVE {
                        killed |= !self.abort(i, g);
                        return Claim::Existing(j, now_j, killed);
                    }
                }
            }
            // 5. Publish, keeping flags others set while we were RESERVED.
            loop {
                let cur = Word(self.slots[i].word.load(SeqCst));
                if cur.state() != RESERVED || cur.gen_() != g {
                    // A rival at a lower index killed us: start over; it will be found.
                    killed = true;
                    continue 'restart;
                }
                let live = cur.with_state(LIVE);
                if self.slots[i]
                    .word
                    .compare_exchange(cur.0, live.0, SeqCst, Relaxed)
                    .is_ok()
                {
                    return Claim::Published(i, live);
                }
            }
        }
    }

    /// Give back a RESERVED slot of ours. False if a rival had already killed it (and adopted
    /// what it carried).
    fn abort(&self, i: usize, g: u32) -> bool {
        loop {
            let cur = Word(self.slots[i].word.load(SeqCst));
            if cur.state() != RESERVED || cur.gen_() != g {
                return false;
            }
            if self.slots[i]
                .word
                .compare_exchange(cur.0, cur.freed().0, SeqCst, Relaxed)
                .is_ok()
            {
                return true;
            }
        }
    }

    /// Kill RESERVED rival `j` of generation `g`. None if it is no longer that RESERVED slot;
    /// else whether others had confirmed it meanwhile, and when (read before the kill, and the
    /// kill CAS on the exact word proves the read was of this generation).
    fn kill(&self, j: usize, g: u32) -> Option<(bool, Option<u64>)> {
        loop {
            let cur = Word(self.slots[j].word.load(SeqCst));
            if cur.state() != RESERVED || cur.gen_() != g {
                return None;
            }
            let at = if cur.has(CONFIRMED) {
                let p = &self.slots[j];
                answer_ms(p.answer.load(Relaxed), g, p.start.load(Relaxed))
            } else {
                None
            };
            if self.slots[j]
                .word
                .compare_exchange(cur.0, cur.freed().0, SeqCst, Relaxed)
                .is_ok()
            {
                return Some((cur.has(CONFIRMED), at));
            }
        }
    }

    /// Take over a killed rival's confirmation.
    fn adopt(&self, i: usize, g: u32, start: u64, lost: (bool, Option<u64>), now: u64) {
        let (confirmed, at) = lost;
        if !confirmed {
            return;
        }
        let at = at.unwrap_or(now);
        let _ = self.slots[i].answer.compare_exchange(
            unanswered(g),
            answered(g, start, at),
            AcqRel,
            Relaxed,
        );
        loop {
            let cur = Word(self.slots[i].word.load(SeqCst));
            if cur.state() != RESERVED || cur.gen_() != g || cur.has(CONFIRMED) {
                return;
            }
            if self.slots[i]
                .word
                .compare_exchange(cur.0, cur.with(CONFIRMED).0, SeqCst, Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Window full: end expired slots in it (counted as evicted). True if any was ended.
    fn evict(&self, win: Range<usize>, now: u64) -> bool {
        let mut any = false;
        for i in win {
            let w = Word(self.slots[i].word.load(SeqCst));
            if w.state() == LIVE && self.reap(i, w, now, Why::Evicted) {
                any = true;
            }
        }
        any
    }

    // ---------------------------------------------------------------- transitions

    #[inline]
    fn snap(&self, i: usize) -> Snap {
        let p = &self.slots[i];
        Snap {
            start: p.start.load(Relaxed),
            answer: p.answer.load(Relaxed),
            link: p.link.load(Relaxed),
        }
    }

    fn count_end(&self, why: Why) {
        match why {
            Why::Event => {}
            Why::Expired => self.stats.inc(C::DialogsExpired),
            Why::Evicted => self.stats.inc(C::DialogsEvicted),
        }
    }

    fn reason(why: Why, reason: EndReason) -> EndReason {
        if why == Why::Evicted {
            EndReason::Evicted
        } else {
            reason
        }
    }

    /// The dialog of live slot `i` (its own dialog) left the early or confirmed gauge.
    #[inline]
    fn dialog_gone(&self, w: Word, why: Why) {
        self.stats.inc(if w.has(CONFIRMED) {
            C::ConfirmedEnded
        } else {
            C::EarlyEnded
        });
        self.count_end(why);
    }

    /// Call slot `i` of generation `old.gen_()` was freed by the CAS that saw `old`.
    #[inline]
    fn finalize(&self, i: usize, old: Word, s: &Snap, reason: EndReason, now: u64, record: bool) {
        self.trunk_release(s.link as usize);
        self.stats.inc(C::CallsEnded);
        if record && self.sink.is_some() {
            self.close_record(i, old, s, reason, now);
        }
    }

    /// The call record part of `finalize` (only with a sink).
    #[inline(never)]
    fn close_record(&self, i: usize, old: Word, s: &Snap, reason: EndReason, now: u64) {
        let id = record_id(old.gen_(), i);
        if old.state() == DRAINING || old.has(ANSWERED) {
            self.emit(RecordEvent::Closed { id });
        } else {
            self.emit(RecordEvent::Ended {
                id,
                start_ms: s.start,
                answer_ms: None,
                end_ms: now,
                reason,
                status: None,
                close: true,
            });
        }
    }

    /// A call slot with nothing left to anchor is freed instead.
    #[inline]
    fn settle(w: Word) -> Word {
        if w.children() == 0 && (w.state() == DRAINING || (w.state() == LIVE && w.has(HOLLOW))) {
            w.freed()
        } else {
            w
        }
    }

    /// A fork of the call `link` ended (or was never published): drop it from the call's count,
    /// freeing the call when it was only waiting for its forks.
    fn release_child(&self, link: u64, reason: EndReason, now: u64) {
        let (g, i) = split_record_id(link);
        loop {
            let w = Word(self.slots[i].word.load(SeqCst));
            if w.gen_() != g || !matches!(w.state(), LIVE | DRAINING) || w.children() == 0 {
                debug_assert!(false, "fork outlived its call slot");
                return;
            }
            let s = self.snap(i);
            let new = Self::settle(w.dec_children());
            if self.slots[i]
                .word
                .compare_exchange(w.0, new.0, SeqCst, Relaxed)
                .is_ok()
            {
                if new.state() == FREE {
                    self.finalize(i, w, &s, reason, now, true);
                }
                return;
            }
        }
    }

    /// End live fork `j` of generation `g`. True if this call ended it.
    fn end_fork(
        &self,
        j: usize,
        g: u32,
        reason: EndReason,
        status: Option<u16>,
        now: u64,
        why: Why,
    ) -> bool {
        loop {
            let w = Word(self.slots[j].word.load(SeqCst));
            if w.gen_() != g || w.state() != LIVE || !w.has(FORK) {
                return false;
            }
            let s = self.snap(j);
            if self.slots[j]
                .word
                .compare_exchange(w.0, w.freed().0, SeqCst, Relaxed)
                .is_err()
            {
                continue;
            }
            self.dialog_gone(w, why);
            let reason = Self::reason(why, reason);
            if w.has(CONFIRMED) {
                self.emit(RecordEvent::Ended {
                    id: s.link,
                    start_ms: s.start,
                    answer_ms: answer_ms(s.answer, g, s.start),
                    end_ms: now,
                    reason,
                    status,
                    close: false,
                });
            }
            self.release_child(s.link, reason, now);
            return true;
        }
    }

    /// End the own dialog of call slot `i` (BYE, or its timeout). The call ends with it unless
    /// forks are alive; then the slot stays as their HOLLOW anchor. The caller saw the slot
    /// tagged in generation `g` (a tag stays for the generation).
    fn end_own(&self, i: usize, g: u32, reason: EndReason, now: u64, why: Why) -> bool {
        loop {
            let w = Word(self.slots[i].word.load(SeqCst));
            if w.gen_() != g || w.state() != LIVE || w.has(FORK) || w.has(HOLLOW) {
                return false;
            }
            let s = self.snap(i);
            let mut new = Self::settle(w.with(HOLLOW));
            let freed = new.state() == FREE;
            if !freed {
                // Guard: count ourselves as a child until our record is queued, so the last
                // fork cannot free the call (and queue its close) before our record.
                new = new.inc_children();
            }
            if self.slots[i]
                .word
                .compare_exchange(w.0, new.0, SeqCst, Relaxed)
                .is_err()
            {
                continue;
            }
            self.dialog_gone(w, why);
            let reason = Self::reason(why, reason);
            let id = record_id(g, i);
            if w.has(CONFIRMED) {
                self.emit(RecordEvent::Ended {
                    id,
                    start_ms: s.start,
                    answer_ms: answer_ms(s.answer, g, s.start),
                    end_ms: now,
                    reason,
                    status: None,
                    close: freed,
                });
                if freed {
                    self.finalize(i, w, &s, reason, now, false);
                }
            } else if freed {
                self.finalize(i, w, &s, reason, now, true);
            }
            if !freed {
                self.release_child(id, reason, now);
            }
            return true;
        }
    }

    /// End unanswered call `i` (final non-2xx, CANCEL, timeout) and all its early dialogs.
    #[allow(clippy::too_many_arguments)]
    fn end_call(
        &self,
        i: usize,
        g: u32,
        reason: EndReason,
        status: Option<u16>,
        now: u64,
        why: Why,
    ) -> bool {
        loop {
            let w = Word(self.slots[i].word.load(SeqCst));
            if w.gen_() != g || w.state() != LIVE || w.has(FORK) || w.has(ANSWERED) {
                return false;
            }
            // Close the slot to a tag before ending it (while the slot is still this
            // generation's): after this no 1xx gives the call a dialog of its own, and if one
            // already did, its dialog ends with the call. (HOLLOW: its own dialog already ended.)
            // Should the CAS below then fail for good (a 2xx answered the call meanwhile), the
            // call keeps going without a dialog of its own: later To tags become forks.
            let own = !w.has(HOLLOW) && self.close_own(i, g);
            let s = self.snap(i);
            let mut new = Self::settle(w.with_state(DRAINING));
            let freed = new.state() == FREE;
            if !freed {
                // Guard child (see `end_own`): also keeps the slot DRAINING, so this generation,
                // while we end its forks.
                new = new.inc_children();
            }
            if self.slots[i]
                .word
                .compare_exchange(w.0, new.0, SeqCst, Relaxed)
                .is_err()
            {
                continue;
            }
            // Dekker with a fork's publish (see `ensure_dialog`): DRAINING, fence, scan forks.
            fence(SeqCst);
            let reason = Self::reason(why, reason);
            if own {
                self.dialog_gone(w, Why::Event);
            }
            self.count_end(why);
            self.emit(RecordEvent::Ended {
                id: record_id(g, i),
                start_ms: s.start,
                answer_ms: None,
                end_ms: now,
                reason,
                status,
                close: freed,
            });
            if freed {
                self.finalize(i, w, &s, reason, now, false);
            } else {
                // DRAINING: end the forks; the last one to go frees the call slot. A fork
                // published after this scan sees DRAINING in its post-publish check and ends
                // itself.
                self.end_forks(i, g, false, EndReason::CallEnded, status, now);
                self.release_child(record_id(g, i), reason, now);
            }
            return true;
        }
    }

    /// End the forks of call slot `i`/`g` (only the early ones if `early_only`). Returns how many.
    fn end_forks(
        &self,
        i: usize,
        g: u32,
        early_only: bool,
        reason: EndReason,
        status: Option<u16>,
        now: u64,
    ) -> usize {
        let link = record_id(g, i);
        let cid = self.slots[i].cid.load(Relaxed);
        if !self.still(i, Word::of_gen(g, LIVE)) {
            return 0;
        }
        let fp = fp_of(cid);
        let mut n = 0;
        // Read after `end_call`'s fence: covers a fork whose publish the Dekker step must see.
        for j in self.span(cid, SeqCst) {
            let w = Word(self.slots[j].word.load(SeqCst));
            if w.state() == EMPTY {
                break;
            }
            if w.fp() != fp || w.state() != LIVE || !w.has(FORK) {
                continue;
            }
            if early_only && w.has(CONFIRMED) {
                continue;
            }
            if self.slots[j].link.load(Relaxed) == link
                && self.still(j, w)
                && self.end_fork(j, w.gen_(), reason, status, now, Why::Event)
            {
                n += 1;
            }
        }
        n
    }

    /// Mark call slot `i`/`g` answered (a fork was confirmed). A call slot without a dialog of
    /// its own becomes the forks' HOLLOW anchor.
    fn set_answered(&self, i: usize, g: u32, now: u64) {
        loop {
            let w = Word(self.slots[i].word.load(SeqCst));
            if w.gen_() != g || !matches!(w.state(), LIVE | DRAINING) || w.has(ANSWERED) {
                return;
            }
            let mut new = w.with(ANSWERED);
            if w.state() == LIVE && !w.has(HOLLOW) && !self.close_own(i, g) {
                // No dialog of its own (and now none can come): the forks' anchor.
                new = new.with(HOLLOW);
            }
            let s = self.snap(i);
            let new = Self::settle(new);
            if self.slots[i]
                .word
                .compare_exchange(w.0, new.0, SeqCst, Relaxed)
                .is_ok()
            {
                if new.state() == FREE {
                    // The confirmed fork already ended: the call is over.
                    self.finalize(i, new.with(ANSWERED), &s, EndReason::Bye, now, true);
                }
                return;
            }
        }
    }

    /// Confirm the dialog in slot `j`/`g` (RESERVED or LIVE; a fork or a call slot's own).
    /// Returns None if the slot is gone, else whether this call confirmed it.
    fn confirm(&self, j: usize, g: u32, now: u64) -> Option<bool> {
        let p = &self.slots[j];
        let start = p.start.load(Relaxed);
        // Generation-tagged: fails harmlessly if the slot was reused since we found it.
        let _ = p
            .answer
            .compare_exchange(unanswered(g), answered(g, start, now), AcqRel, Relaxed);
        loop {
            let w = Word(self.slots[j].word.load(SeqCst));
            if w.gen_() != g || !matches!(w.state(), RESERVED | LIVE) || w.has(HOLLOW) {
                return None;
            }
            if w.has(CONFIRMED) {
                return Some(false);
            }
            let mut new = w.with(CONFIRMED);
            if !w.has(FORK) {
                new = new.with(ANSWERED);
            }
            if self.slots[j]
                .word
                .compare_exchange(w.0, new.0, SeqCst, Relaxed)
                .is_ok()
            {
                if w.state() == LIVE {
                    self.stats.inc(C::DialogsConfirmed);
                }
                return Some(true);
            }
        }
    }

    /// Put `tag` on call slot `i`/`g` as its own dialog if it has none. Some(created) when the
    /// slot's own dialog is `tag`; None when it is another tag (or HOLLOW): use a fork.
    /// Err(()) when the call is gone.
    ///
    /// Tagging is one CAS on the slot's `to` field, from `no_tag(g)` (generation-tagged, so a
    /// thread that slept across a reuse fails), not a second CAS of the control word. Whoever
    /// ends the call first closes that field (`close_own`): exactly one of the two CASes wins,
    /// so a dialog created here is counted ended by exactly one thread.
    fn attach(&self, i: usize, g: u32, tag: u64) -> Result<Option<bool>, ()> {
        let p = &self.slots[i];
        let w = Word(self.slots[i].word.load(SeqCst));
        if w.gen_() != g || w.state() != LIVE {
            return Err(());
        }
        if w.has(HOLLOW) {
            return Ok(None);
        }
        let to = p.to.load(Acquire);
        if to == no_tag(g) {
            match p.to.compare_exchange(no_tag(g), tag, SeqCst, Acquire) {
                Ok(_) => {
                    self.stats.inc(C::DialogsCreated);
                    // Ended meanwhile? Then its ender's `close_own` failed on our tag and it
                    // counts the dialog ended; report the call gone.
                    let now = Word(self.slots[i].word.load(SeqCst));
                    return if now.gen_() == g && now.state() == LIVE {
                        Ok(Some(true))
                    } else {
                        Err(())
                    };
                }
                Err(cur) => return Ok((cur == tag).then_some(false)),
            }
        }
        // Some(false): the dialog exists; None: another tag or `closed`, use a fork. Not
        // re-validated: if the slot was reused since `w`, `to` may be the next call's, but every
        // step the caller takes next (stamp, confirm, fork reservation) checks generation `g`
        // and finds the call gone.
        Ok((to == tag).then_some(false))
    }

    /// Call slot `i` of generation `g` can no longer get a dialog of its own: CAS its `to` from
    /// `no_tag(g)` to `closed(g)`. True if it already has one (a tag is there). Called while the
    /// slot is known to be this generation's (before the CAS that ends or reuses it), so the
    /// value a failed CAS returns is this generation's.
    fn close_own(&self, i: usize, g: u32) -> bool {
        match self.slots[i]
            .to
            .compare_exchange(no_tag(g), closed(g), SeqCst, Acquire)
        {
            Ok(_) => false,
            Err(cur) => is_tag(cur),
        }
    }

    /// Does call slot `i` (word `w`, validated by the caller's `still` after this) hold a dialog of
    /// its own?
    #[inline]
    fn tagged(&self, i: usize) -> bool {
        is_tag(self.slots[i].to.load(Acquire))
    }

    /// Reserve a fork on call slot `i`/`g`.
    fn reserve_child(&self, i: usize, g: u32) -> Result<(), ResponseOutcome> {
        loop {
            let w = Word(self.slots[i].word.load(SeqCst));
            if w.gen_() != g || w.state() != LIVE {
                return Err(ResponseOutcome::UnknownCall);
            }
            // Two counts stay spare for the guards of `end_own` and `end_call`.
            if w.children() >= MAX_CHILDREN - 2 {
                self.stats.inc(C::Untracked);
                return Err(ResponseOutcome::Untracked);
            }
            if self.slots[i]
                .word
                .compare_exchange(w.0, w.inc_children().0, SeqCst, Relaxed)
                .is_ok()
            {
                return Ok(());
            }
        }
    }

    /// Slot `i` (LIVE, word `w`) is past its deadline at `now`: end it. True if this call did.
    fn reap(&self, i: usize, w: Word, now: u64, why: Why) -> bool {
        let g = w.gen_();
        let p = &self.slots[i];
        let start = p.start.load(Relaxed);
        let field = p.last.load(Relaxed);
        let own = !w.has(FORK) && self.tagged(i);
        let Some(last) = last_ms(field, g, start) else {
            // Another generation's stamp (a stale `bump_last`, see there): unknown, so count
            // the dialog as active now. A CAS from what we read: if the slot changed meanwhile
            // this fails, or writes a tag its new generation again reads as unknown.
            if self.still(i, w) {
                let _ = p
                    .last
                    .compare_exchange(field, stamp(g, start, now), Relaxed, Relaxed);
            }
            return false;
        };
        let limit = if w.has(CONFIRMED) {
            self.session_ms
        } else {
            self.early_ms
        };
        if now < last.saturating_add(limit) || !self.still(i, w) {
            return false;
        }
        if w.has(FORK) {
            self.end_fork(i, g, EndReason::Timeout, None, now, why)
        } else if w.has(HOLLOW) {
            // Anchors go when their last fork goes.
            false
        } else if own {
            self.end_own(i, g, EndReason::Timeout, now, why)
        } else if w.has(ANSWERED) {
            false
        } else {
            self.end_call(i, g, EndReason::Timeout, None, now, why)
        }
    }

    // ---------------------------------------------------------------- events (public API)

    /// An INVITE (no To tag) for `call` from `trunk`. Creates the call, or finds it when this is
    /// a retransmission. Refused (answer 503) over the trunk's limit or when the probe window is
    /// full of live calls after evicting expired ones. `caller`/`callee` go to the call record.
    pub fn on_invite(
        &self,
        call: CallKey,
        trunk: u32,
        caller: &str,
        callee: &str,
        now_ms: u64,
    ) -> Result<InviteOutcome, Refused> {
        let want = Want::Call {
            cid: call.cid,
            from: call.from,
        };
        let counter = self.trunks.get(trunk as usize);
        let mut counted = false;
        // The trunk is checked once the scan found no such call (so a retransmission is never
        // refused) and before a slot is claimed.
        // No limit: this thread's row (see [`Trunk`]). A limit: one `fetch_add` on the shared
        // count decides among limited INVITEs; the rows only hold calls counted before the limit.
        let gate = || match counter {
            None => true,
            Some(t) => {
                let limit = t.limit.load(Relaxed);
                if limit == u64::MAX {
                    self.trunk_local(trunk as usize, 1);
                } else {
                    let before = t.shared.fetch_add(1, AcqRel) as i64;
                    if before + self.trunk_striped(trunk as usize) >= limit as i64 {
                        t.shared.fetch_sub(1, AcqRel);
                        return false;
                    }
                }
                counted = true;
                true
            }
        };
        let claim = self.claim(want, 0, now_ms, trunk as u64, now_ms, gate);
        let uncount = |counted: bool| {
            if counted {
                self.trunk_release(trunk as usize);
            }
        };
        match claim {
            Claim::Published(i, w) => {
                self.stats.inc(C::CallsCreated);
                let h = CallHandle {
                    record_id: record_id(w.gen_(), i),
                };
                if self.sink.is_some() {
                    self.emit(RecordEvent::Started {
                        id: h.record_id,
                        caller: Party::new(caller),
                        callee: Party::new(callee),
                    });
                }
                Ok(InviteOutcome::Created(h))
            }
            Claim::Existing(i, w, _) => {
                uncount(counted);
                self.stats.inc(C::Retransmissions);
                self.bump_last(i, w.gen_(), now_ms);
                Ok(InviteOutcome::Existing(CallHandle {
                    record_id: record_id(w.gen_(), i),
                }))
            }
            Claim::Full => {
                uncount(counted);
                self.stats.inc(C::RefusedFull);
                Err(Refused::Full)
            }
            Claim::Refused => {
                self.stats.inc(C::RefusedTrunk);
                Err(Refused::TrunkLimit)
            }
        }
    }

    /// A response to the INVITE of `call`: `to_tag` is the To tag if the response has one.
    /// 1xx with tag: early dialog (a new one per tag when downstream forks); 2xx: confirmed;
    /// >= 300: the call's early dialogs end, and the call if no dialog was confirmed.
    pub fn on_response(
        &self,
        call: CallKey,
        to_tag: Option<Tag>,
        status: u16,
        now_ms: u64,
    ) -> ResponseOutcome {
        let want = Want::Call {
            cid: call.cid,
            from: call.from,
        };
        let Some((i, w)) = self.find(want, states(&[LIVE])) else {
            return ResponseOutcome::UnknownCall;
        };
        let g = w.gen_();
        if status >= 300 {
            if w.has(ANSWERED) {
                let own = {
                    let cur = Word(self.slots[i].word.load(SeqCst));
                    cur.gen_() == g && !cur.has(CONFIRMED) && self.tagged(i) && self.still(i, cur)
                };
                if own {
                    self.end_own(i, g, EndReason::Rejected, now_ms, Why::Event);
                }
                self.end_forks(i, g, true, EndReason::Rejected, Some(status), now_ms);
                return ResponseOutcome::Ended;
            }
            return if self.end_call(i, g, EndReason::Rejected, Some(status), now_ms, Why::Event) {
                ResponseOutcome::Ended
            } else {
                // Lost a race with a 2xx (now answered) or another ending: retry once.
                self.on_response(call, to_tag, status, now_ms)
            };
        }
        let confirm = status >= 200;
        let Some(tag) = to_tag else {
            if confirm {
                return ResponseOutcome::Ignored;
            }
            self.bump_last(i, g, now_ms);
            return ResponseOutcome::Touched;
        };
        self.ensure_dialog(i, g, call, tag.get(), confirm, now_ms)
    }

    fn ensure_dialog(
        &self,
        i: usize,
        g: u32,
        call: CallKey,
        tag: u64,
        confirm: bool,
        now: u64,
    ) -> ResponseOutcome {
        let done = |created: bool, first: Option<bool>| match first {
            Some(first) => ResponseOutcome::Confirmed { first },
            None => ResponseOutcome::Early { created },
        };
        let fork = Want::Fork {
            cid: call.cid,
            from: call.from,
            to: tag,
        };
        let link = record_id(g, i);
        let mut adopted = false;
        loop {
            // The call's own dialog?
            match self.attach(i, g, tag) {
                Err(()) => return ResponseOutcome::UnknownCall,
                Ok(Some(created)) => {
                    self.bump_last(i, g, now);
                    if !confirm {
                        let cur = Word(self.slots[i].word.load(Acquire));
                        if cur.gen_() != g {
                            return ResponseOutcome::UnknownCall;
                        }
                        return done(created, cur.has(CONFIRMED).then_some(false));
                    }
                    match self.confirm(i, g, now) {
                        Some(first) => return done(created, Some(first)),
                        // Ended meanwhile (BYE raced the 2xx): nothing left to confirm.
                        None => return ResponseOutcome::UnknownCall,
                    }
                }
                Ok(None) => {}
            }
            // An existing fork?
            if let Some((j, wj)) = self.find(fork, states(&[RESERVED, LIVE])) {
                self.bump_last(j, wj.gen_(), now);
                if !confirm {
                    return done(false, wj.has(CONFIRMED).then_some(false));
                }
                match self.confirm(j, wj.gen_(), now) {
                    Some(first) => {
                        self.set_answered(i, g, now);
                        return done(false, Some(first || adopted));
                    }
                    None => continue,
                }
            }
            // A new fork.
            if let Err(o) = self.reserve_child(i, g) {
                return o;
            }
            let start = self.slots[i].start.load(Relaxed);
            if !self.still(i, Word::of_gen(g, LIVE)) {
                self.release_child(link, EndReason::CallEnded, now);
                return ResponseOutcome::UnknownCall;
            }
            let flags = FORK | if confirm { CONFIRMED } else { 0 };
            match self.claim(fork, flags, start, link, now, || true) {
                Claim::Full | Claim::Refused => {
                    self.release_child(link, EndReason::CallEnded, now);
                    self.stats.inc(C::Untracked);
                    return ResponseOutcome::Untracked;
                }
                Claim::Existing(_, _, killed) => {
                    // Someone created it first: apply our response to theirs.
                    adopted |= killed && confirm;
                    self.release_child(link, EndReason::CallEnded, now);
                    continue;
                }
                Claim::Published(j, wj) => {
                    if wj.has(CONFIRMED) {
                        self.stats
                            .add_all([(C::DialogsCreated, 1), (C::DialogsConfirmed, 1)]);
                        self.set_answered(i, g, now);
                    } else {
                        self.stats.inc(C::DialogsCreated);
                    }
                    // The call may have ended (DRAINING) after our reservation and before the
                    // publish, with its fork scan missing us: then we end the fork ourselves.
                    // Dekker with `end_call`: publish, fence, read the call's word.
                    fence(SeqCst);
                    let pw = Word(self.slots[i].word.load(SeqCst));
                    if pw.gen_() != g || pw.state() != LIVE {
                        self.end_fork(j, wj.gen_(), EndReason::CallEnded, None, now, Why::Event);
                        return ResponseOutcome::UnknownCall;
                    }
                    return done(true, confirm.then_some(true));
                }
            }
        }
    }

    /// A CANCEL for `call`: ends it (and its early dialogs) unless a dialog was confirmed.
    /// True if this ended the call.
    pub fn on_cancel(&self, call: CallKey, now_ms: u64) -> bool {
        let want = Want::Call {
            cid: call.cid,
            from: call.from,
        };
        match self.find(want, states(&[LIVE])) {
            Some((i, w)) => {
                self.end_call(i, w.gen_(), EndReason::Cancelled, None, now_ms, Why::Event)
            }
            None => false,
        }
    }

    /// A BYE in `dialog`: ends it. True if this ended it (false: unknown or already ended, e.g.
    /// by the BYE's response handled first on another worker).
    pub fn on_bye(&self, dialog: DialogKey, now_ms: u64) -> bool {
        match self.find_dialog(dialog) {
            Some((i, w)) if w.has(FORK) => {
                self.end_fork(i, w.gen_(), EndReason::Bye, None, now_ms, Why::Event)
            }
            Some((i, w)) => self.end_own(i, w.gen_(), EndReason::Bye, now_ms, Why::Event),
            None => false,
        }
    }

    /// A response to a BYE in `dialog`: a final one ends the dialog if the BYE did not already
    /// (requests and responses reach different workers, in either order).
    pub fn on_bye_response(&self, dialog: DialogKey, status: u16, now_ms: u64) -> bool {
        if status < 200 {
            self.touch(dialog, now_ms);
            return false;
        }
        self.on_bye(dialog, now_ms)
    }

    /// In-dialog traffic (re-INVITE, UPDATE, ACK, INFO, ...): refresh the dialog's timer.
    pub fn touch(&self, dialog: DialogKey, now_ms: u64) -> bool {
        match self.find_dialog(dialog) {
            Some((i, w)) => {
                self.bump_last(i, w.gen_(), now_ms);
                true
            }
            None => false,
        }
    }

    /// Sweep up to `budget` slots (continuing where the last sweep, by any thread, stopped) and
    /// end what has timed out at `now_ms`. Returns how many dialogs/calls it ended. Any worker
    /// can call it between batches; it uses the same CAS protocol as every other update.
    pub fn expire(&self, now_ms: u64, budget: usize) -> usize {
        let n = self.slots.len();
        let budget = budget.min(n);
        let start = self.cursor.fetch_add(budget, Relaxed) % n;
        let mut ended = 0;
        for k in 0..budget {
            let i = (start + k) % n;
            let w = Word(self.slots[i].word.load(Acquire));
            if w.state() == LIVE && self.reap(i, w, now_ms, Why::Expired) {
                ended += 1;
            }
        }
        ended
    }

    /// The live dialog `dialog`, if any.
    pub fn lookup(&self, dialog: DialogKey) -> Option<DialogInfo> {
        let (i, w) = self.find_dialog(dialog)?;
        let p = &self.slots[i];
        let start = p.start.load(Relaxed);
        let answer = p.answer.load(Relaxed);
        let last = p.last.load(Relaxed);
        let link = p.link.load(Relaxed);
        if !self.still(i, w) {
            return None;
        }
        // (A stale stamp, see `bump_last`: unknown, reported as the start.)
        let last = last_ms(last, w.gen_(), start).unwrap_or(start);
        Some(DialogInfo {
            state: if w.has(CONFIRMED) {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
            record_id: if w.has(FORK) {
                link
            } else {
                record_id(w.gen_(), i)
            },
            start_ms: start,
            answer_ms: answer_ms(answer, w.gen_(), start),
            last_ms: last,
        })
    }

    /// The live call `call`, if any (not yet ended).
    pub fn lookup_call(&self, call: CallKey) -> Option<CallInfo> {
        let want = Want::Call {
            cid: call.cid,
            from: call.from,
        };
        let (i, w) = self.find(want, states(&[LIVE]))?;
        let p = &self.slots[i];
        let start = p.start.load(Relaxed);
        let trunk = p.link.load(Relaxed) as u32;
        if !self.still(i, w) {
            return None;
        }
        Some(CallInfo {
            record_id: record_id(w.gen_(), i),
            trunk,
            start_ms: start,
            answered: w.has(ANSWERED),
            forks: w.children() as u32,
        })
    }

    /// Walk every slot and count states (tests and debugging; not a consistent snapshot while
    /// the table is being updated).
    #[doc(hidden)]
    pub fn census(&self) -> Census {
        let mut c = Census::default();
        for i in 0..self.slots.len() {
            let w = Word(self.slots[i].word.load(Acquire));
            match w.state() {
                LIVE | DRAINING if !w.has(FORK) => {
                    c.calls += 1;
                    c.children += w.children();
                    if self.tagged(i) && !w.has(HOLLOW) && w.state() == LIVE {
                        if w.has(CONFIRMED) {
                            c.confirmed += 1
                        } else {
                            c.early += 1
                        }
                    }
                }
                LIVE => {
                    c.forks += 1;
                    if w.has(CONFIRMED) {
                        c.confirmed += 1
                    } else {
                        c.early += 1
                    }
                }
                CLAIMING | RESERVED => c.transient += 1,
                _ => {}
            }
        }
        c
    }
}

/// Slot counts from [`DialogTable::census`].
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    pub calls: u64,
    pub forks: u64,
    pub children: u64,
    pub early: u64,
    pub confirmed: u64,
    pub transient: u64,
}

#[cfg(all(test, not(loom)))]
mod stale_stamp_tests {
    use super::*;

    /// A thread that found a slot in an earlier generation stores its activity stamp after the
    /// slot was reused (the plain store of `bump_last`): the new dialog's activity reads as
    /// unknown, the sweep re-stamps it instead of ending it, and it ends one timeout later.
    #[test]
    fn a_stale_activity_stamp_postpones_expiry_and_never_ends_early() {
        let t = DialogTable::new(DialogConfig {
            capacity: 16,
            probe_window: 4,
            early_timeout_ms: 100,
            session_timeout_ms: 1000,
            max_trunks: 2,
        });
        let call = CallKey::from_hashes(42, Tag::from_hash(7));
        let tag = Tag::from_hash(9);
        let dialog = call.dialog(tag);
        t.on_invite(call, 1, "", "", 0).unwrap();
        t.on_response(call, Some(tag), 200, 10);
        assert_eq!(t.lookup(dialog).unwrap().last_ms, 10);
        let (i, w) = t.find_dialog(dialog).unwrap();
        t.slots[i]
            .last
            .store(stamp(w.gen_().wrapping_sub(1), 0, 5), Relaxed);
        // Unknown: reported as the start, and not taken for an old time by the sweep.
        assert_eq!(t.lookup(dialog).unwrap().last_ms, 0);
        assert_eq!(t.expire(2000, 64), 0);
        // Re-stamped at the sweep; later traffic moves it again.
        assert_eq!(t.lookup(dialog).unwrap().last_ms, 2000);
        assert!(t.touch(dialog, 2100));
        assert_eq!(t.expire(3099, 64), 0);
        assert_eq!(t.expire(3100, 64), 1);
        assert!(t.lookup(dialog).is_none());
    }
}
