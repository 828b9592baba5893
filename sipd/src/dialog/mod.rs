//! Lock-free dialog table shared by every worker.
//!
//! (Full protocol documentation below is filled in with the measured figures.)

// The protocol needs no `unsafe`: every shared field is an atomic.
#![allow(unexpected_cfgs)]

mod key;
mod record;
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
