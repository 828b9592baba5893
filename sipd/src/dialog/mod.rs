//! Lock-free dialog table shared by every worker.
//!
//! A call's requests and responses reach sipd on different NIC queues, so different workers see
//! the halves of one dialog. Every worker updates this one table with atomics only: no lock, no
//! waiting on another thread, no clock read (every call takes `now_ms`). The proxy hands it
//! hashed keys ([`CallKey`], [`DialogKey`], [`Tag`]) and events; it does not depend on the parser.
//!
//! # Events
//! [`DialogTable::on_invite`] creates a call (keyed by Call-ID and From tag) or finds it
//! (retransmission), or refuses it (503) over the trunk's limit or when the probe window is full
//! of live calls after evicting expired ones. [`DialogTable::on_response`]: a 1xx with To tag
//! makes an early dialog (another one per To tag when downstream forks), a 2xx confirms it, a
//! final non-2xx ends the call's early dialogs (and the call if nothing was confirmed).
//! [`DialogTable::on_cancel`], [`DialogTable::on_bye`] / [`DialogTable::on_bye_response`]
//! (whichever a worker sees first ends the dialog; the other finds nothing), [`DialogTable::touch`]
//! for in-dialog traffic, [`DialogTable::expire`] for an incremental sweep any worker may run,
//! and the readers [`DialogTable::lookup`], [`DialogTable::lookup_call`], [`DialogTable::stats`].
//!
//! # Slots
//! Fixed capacity, chosen at start: `capacity + probe_window - 1` slots. A key's home is
//! `(call_id_hash * capacity) >> 64` and it lives in the `probe_window` slots from there (bounded
//! linear probing, tombstones). Only the Call-ID hash picks the window, so a call and all its
//! forked dialogs share one window and ending a call finds its early dialogs by scanning it.
//!
//! **Probe length hint.** Slots never return to EMPTY, so on a long-running table (every call a
//! new Call-ID) the EMPTY slots that end probes are used up and a probe for an absent key (every
//! INVITE) would scan the whole window, and a claimer's rival scan again. Each home bucket keeps
//! one byte, in its slot's control word (the line every probe from there reads first): the
//! farthest distance from it at which a key homed there was ever claimed. It only grows (an RMW
//! of the word that changes only those bits, kept across claims and frees), raised before the
//! claimed slot is announced; probes for a key stop there
//! (or at an EMPTY slot). Tombstones are reused: a claimer takes the first FREE or EMPTY slot of
//! the window, and finds both that slot and any existing copy of its key in one pass (the key
//! lies within the hint; the pass goes past the hint only while it has not found a slot).
//!
//! One slot holds a **call and its first dialog** (the one the first To tag creates); each further
//! fork takes a slot of its own that links to its call. A call with one dialog, the common case,
//! is one slot. A slot is one 64-byte, 64-aligned cache line of atomics: the control word
//! (`u64`: state, flags, fork count, a 16-bit fingerprint a probe compares together with the
//! state and kind bits it wants in one masked compare per slot, the probe hint of the bucket
//! it is home to, and the generation) and the
//! payload (Call-ID hash, caller tag, callee tag, start, answer, last activity, trunk or link to
//! the call). Word and payload share the line because events land on random slots of a table
//! far larger than the caches: a new call's claim CAS and payload stores, and a lookup's word
//! and key compare, then miss one line, not two (the control words used to be a dense array of
//! their own, 8 per line, which only pays for long probes: the mean hint was 0.8 slots in the bench's steady state).
//!
//! # Memory
//! [`SLOT_BYTES`] = **64 bytes per slot** (asserted in the tests), nothing else per slot. With
//! the default 64-slot window no INVITE was refused below 74 % load in the test that fills a
//! table (at 80 % about 0.1 % are), so size `capacity = peak dialogs / 0.7`: **92 bytes per
//! dialog** (64 / 0.7), and **10 million dialogs take 14.3 M slots = 0.91 GB** (914,289,792
//! bytes). A 100 % full table would be 64 bytes per dialog. Trunk limits take one 128-byte line each (128 KiB for the
//! default 1024 trunks) and the per-thread trunk counts 32 rows of 8 bytes per trunk (256 KiB),
//! independent of the capacity.
//!
//! **Pages.** Every event lands on a random slot, in arrays far larger than the TLB covers with
//! 4 KiB pages, so arrays of 2 MiB and more are mapped on their own with `madvise(MADV_HUGEPAGE)`
//! and faulted in when the table is built (`region`): no page walk per event where transparent
//! huge pages are available, and no page-zeroing fault on a worker's hot path.
//!
//! # Counters and trunk counts: no locked instruction on the way
//! Every counter is striped per thread (`stats`): a worker adds to its own cache line with a
//! plain load and store. Only events are counted (calls created and ended, dialogs created,
//! confirmed, ended early, ended confirmed); the gauges are differences taken when read, so a
//! transition updates one counter. A trunk's call count is likewise a per-thread row entry while
//! the trunk has no limit; a limited trunk counts in one shared atomic (`fetch_add`, exact
//! among INVITEs: what the rows hold only moves for calls counted before the limit was set), and
//! `trunk_active` is the shared part plus every row's entry.
//!
//! # Slot state machine
//! ```text
//!   EMPTY ──claim CAS──► CLAIMING ──store──► RESERVED ──publish CAS──► LIVE ──end CAS──► FREE
//!   FREE  ──claim CAS──┘  (owner writes      │  (key visible to claimers,     │ call slot with
//!                          the payload)      │   not to lookups)              │ forks alive:
//!                                            └─rival kill / abort──► FREE     ├─► LIVE+HOLLOW
//!                                                                             └─► DRAINING
//! ```
//! - **EMPTY** (never used) ends every probe: a key is never placed past a slot that was EMPTY
//!   when it was placed (the claimer takes the first reusable slot), and no slot returns to EMPTY.
//! - **CLAIMING**: won by CAS from EMPTY/FREE with the generation bumped; only the winner touches
//!   the slot, so it writes the payload with plain (Relaxed) atomic stores.
//! - **RESERVED**: the key is announced to other *claimers* of the same key. Each claimer then
//!   scans the window: a same-key LIVE slot, or a RESERVED one at a lower index, wins (we give
//!   our slot back); a RESERVED one at a higher index is killed (CAS to FREE; its owner's publish
//!   fails and it starts over, finding ours). Flags others set on a slot while it is RESERVED (a
//!   2xx confirming a dialog still being created) survive the publish, and a killer adopts the
//!   flags of the slot it killed, so no response is lost. Nobody ever waits for another thread.
//! - **LIVE**: visible to lookups. Flags: CONFIRMED, ANSWERED (call: some dialog confirmed),
//!   HOLLOW (call slot whose own dialog ended while forks live, or that anchors forks without a
//!   dialog of its own), children (live forks). Every transition is one CAS on the exact word, so
//!   exactly one thread ends a dialog, frees a slot, releases a trunk count, and writes the close
//!   of a record. The one transition that is not a CAS of the word is the one a 1xx makes most:
//!   a call slot gets its own dialog by one CAS of its `to` field from the generation's `no_tag`
//!   sentinel to the tag (no flag in the word). A thread that ends an unanswered call, or makes
//!   it the forks' anchor, first CASes that field from `no_tag` to `closed` (before its word
//!   CAS, while the slot is still the generation's): of the two CASes exactly one wins, so the
//!   ender knows whether there is a dialog to count ended, and the 1xx, on winning, re-reads
//!   the word and reports the call gone if it ended meanwhile.
//! - **DRAINING**: an unanswered call ended (CANCEL, final non-2xx, timeout) while forks lived;
//!   the last fork to end frees it. HOLLOW and DRAINING transitions hold one extra child count
//!   until their own record is queued, so a call's close is always queued after its records.
//!
//! # Memory ordering
//! - Claim and publish: payload stores happen after the CLAIMING CAS and a Release fence, and
//!   before the announce (an RMW to RESERVED, release); a reader's Acquire load of a keyed word (or of any
//!   later RMW of it: release sequence) makes the payload visible.
//! - Readers validate like a seqlock: load the word (Acquire), read payload fields (Relaxed),
//!   Acquire fence, re-load the word; the generation (24 bits, bumped by every claim) must be
//!   unchanged. Every field is an atomic, so a racing reuse yields stale values that the check
//!   discards, never undefined behaviour: **the protocol has no `unsafe`.** (The only `unsafe`
//!   code is where the arrays live, `region`.)
//! - Fields changed while LIVE are generation-tagged: `to` is set once by CAS from a sentinel
//!   holding the generation, `answer` once by CAS from a value holding the generation. A thread
//!   that slept across a reuse fails its CAS. `last` (activity time, written on every message)
//!   is a plain load and store, no locked instruction: its value carries 24 bits of the
//!   generation, so the store of a thread that slept across a reuse reads as "unknown" to the new
//!   generation (the sweep re-stamps it: at worst one timeout of delay, never an early end), and
//!   two workers stamping one dialog at once may leave the earlier of their two times.
//! - Two Dekker-style steps: two claimers of one key (hint RMW and announce RMW, SeqCst, then
//!   SeqCst loads of the hint and the rivals' words: at least one sees the other; the announce's
//!   locked instruction is the full barrier, so no fence is needed), and a fork being published
//!   versus its call being ended (publish, fence, read the call's word / DRAINING CAS, fence, scan
//!   the forks: the fork is ended by one of the two). `loom` checks both.
//! - The probe length hint is raised by an RMW of its word before the slot is announced, and
//!   the scans after the announce re-read it: the side whose announce is later in the SeqCst order
//!   reads the other's hint write (or a later one: it only grows), so its scan reaches the other's
//!   slot. A reader that sees a key (or happens after its publish) sees its hint by coherence. A
//!   claim landing on its home slot needs no hint (every probe scans the home slot).
//!
//! # Expiry and eviction
//! A call without dialog and an early dialog expire `early_timeout_ms` after their last traffic,
//! a confirmed dialog `session_timeout_ms` after it. [`DialogTable::expire`] sweeps a budget of
//! slots from a shared cursor with the same CAS protocol (workers never stop). An INVITE or fork
//! that finds its window full first evicts expired slots in it (counted `evicted`), then is
//! refused (`refused_full`, 503).
//!
//! # Call records
//! A [`RecordWriter`] thread writes one JSON line per ended confirmed dialog and per call that
//! ended unanswered (start, answer, end, duration, caller, callee, reason, status). The table
//! queues events with `try_send` on a bounded channel: a full queue drops and counts.
//! [`RecordWriter::flush`] drains and fsyncs; [`RecordWriter::shutdown`] too, then stops.
//!
//! # Tests
//! - `dialog::tests`: unit tests and the reference model (proptest: random operation sequences
//!   on the table and on a `HashMap` model give the same answers, gauges and trunk counts).
//! - `tests/dialog_stress.rs`: threads hammering overlapping calls, then every invariant.
//! - `dialog::loom_tests` (loom, 2-3 threads on a 3-slot table), run with
//!   `RUSTFLAGS="--cfg loom" cargo test -p sipd --release --lib --target-dir target/loom dialog::loom`
//!   (seconds after the build; `LOOM_MAX_PREEMPTIONS=8` searched deeper: the 10 models of
//!   the earlier protocol in about 85 s, all 12 of this one in 12 min on a loaded machine, and
//!   again in 11 min once the probe hint moved into the control word).
//!   Checked against mutations: an ender of an unanswered call that only reads `to` instead of
//!   closing it by CAS fails `provisional_racing_cancel_counts_the_dialog_once` and
//!   `three_threads_invite_answer_and_cancel`;
//!   without the hint update all three displaced-call models fail;
//!   without the announce fence, or with the rival scan using the hint read before it,
//!   `racing_invites_of_a_displaced_call_create_one` and `racing_invites_create_one_call` fail
//!   (mutations of the protocol before the hint moved into the word; since then, an announce
//!   that is a SeqCst store instead of the RMW fails `racing_invites_create_one_call`). loom
//!   treats SeqCst loads and stores as AcqRel (weaker than they are), so a model passing it
//!   holds under the real orderings.

// The protocol needs no `unsafe`: every shared field is an atomic. `region` (the arrays' memory)
// carries the module's only `unsafe` blocks, each with its SAFETY comment.

mod key;
mod record;
mod region;
mod slot;
mod stats;
mod sync;
mod table;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use key::{CallKey, DialogKey, Tag};
pub use record::{
    CallRecord, EndReason, PARTY_MAX, Party, RecordEvent, RecordSink, RecordStats, RecordTap,
    RecordWriter,
};
pub use stats::DialogStats;
pub use table::{
    CallHandle, CallInfo, Census, DialogConfig, DialogInfo, DialogState, DialogTable,
    InviteOutcome, Refused, ResponseOutcome, SLOT_BYTES,
};
