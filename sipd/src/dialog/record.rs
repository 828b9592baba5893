//! Call records: the table emits events into a bounded crossbeam channel with `try_send` (a full
//! queue drops the event and counts it; a worker never blocks), and one background thread joins
//! them and writes one JSON line per ended dialog (and one per call that ended unanswered).
//!
//! Events: `Started` when the INVITE creates the call (caller, callee), `Ended` when a confirmed
//! dialog or an unanswered call ends, `Closed` when the call's last dialog is gone (the writer then
//! forgets the call's parties). An `Ended` whose `Started` was dropped is still written, with
//! empty parties.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use serde::Serialize;

/// Why a dialog or call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// BYE (or its final response).
    Bye,
    /// A final non-2xx response to the INVITE (status in the record).
    Rejected,
    /// CANCEL.
    Cancelled,
    /// No traffic for the early or session timeout (sweeper).
    Timeout,
    /// Expired and reclaimed by an insert that needed room.
    Evicted,
    /// A fork whose call ended (the call was cancelled or rejected while it was being created).
    CallEnded,
}

/// At most this many bytes of caller / callee are kept (longer ones are cut at a char boundary).
pub const PARTY_MAX: usize = 95;

/// A caller or callee kept inline so the event needs no heap allocation on the worker.
#[derive(Clone, Copy)]
pub struct Party {
    len: u8,
    buf: [u8; PARTY_MAX],
}

impl Party {
    /// Copy (a prefix of) `s`.
    pub fn new(s: &str) -> Self {
        let mut n = s.len().min(PARTY_MAX);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        let mut buf = [0; PARTY_MAX];
        buf[..n].copy_from_slice(&s.as_bytes()[..n]);
        Party { len: n as u8, buf }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

impl std::fmt::Debug for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// What the table tells the record writer.
#[derive(Clone, Copy, Debug)]
pub enum RecordEvent {
    /// The INVITE created call `id`.
    Started {
        /// Record id (unique while the writer runs).
        id: u64,
        /// Caller (e.g. From URI).
        caller: Party,
        /// Callee (e.g. Request-URI or To URI).
        callee: Party,
    },
    /// A confirmed dialog, or an unanswered call, ended: one JSON line.
    Ended {
        /// Record id.
        id: u64,
        /// INVITE time, ms.
        start_ms: u64,
        /// 2xx time, ms (None: never answered).
        answer_ms: Option<u64>,
        /// End time, ms.
        end_ms: u64,
        /// Why.
        reason: EndReason,
        /// Final status for [`EndReason::Rejected`].
        status: Option<u16>,
        /// The call is over too: forget its parties after writing.
        close: bool,
    },
    /// The call is over (its last dialog ended earlier): forget its parties.
    Closed {
        /// Record id.
        id: u64,
    },
}

/// One line of the call record file.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct CallRecord<'a> {
    /// Record id.
    pub id: u64,
    /// INVITE time, ms since the Unix epoch (the caller's clock).
    pub start_ms: u64,
    /// 2xx time, ms, or null.
    pub answer_ms: Option<u64>,
    /// End time, ms.
    pub end_ms: u64,
    /// Talk time: end - answer, 0 when unanswered.
    pub duration_ms: u64,
    /// Caller.
    pub caller: &'a str,
    /// Callee.
    pub callee: &'a str,
    /// End reason.
    pub reason: EndReason,
    /// Final status of a rejected call.
    pub status: Option<u16>,
}

#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
    written: AtomicU64,
}

/// Counters of the record writer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordStats {
    /// Events dropped because the queue was full (or the writer had stopped).
    pub dropped: u64,
    /// Lines written.
    pub written: u64,
}

/// The sending side, cloned into the table. `send` never blocks.
#[derive(Clone)]
pub struct RecordSink {
    tx: Sender<Msg>,
    counters: Arc<Counters>,
}

impl RecordSink {
    /// Queue an event; on a full queue drop it and count it.
    #[inline]
    pub fn send(&self, ev: RecordEvent) {
        match self.tx.try_send(Msg::Event(ev)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped so far.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// A sink whose events are kept in memory (bounded as usual) instead of written: tests and
    /// embedders that ship records elsewhere.
    pub fn in_memory(queue_len: usize) -> (RecordSink, RecordTap) {
        let (tx, rx) = bounded(queue_len.max(1));
        let sink = RecordSink {
            tx,
            counters: Arc::new(Counters::default()),
        };
        (sink, RecordTap { rx })
    }
}

/// The receiving end of [`RecordSink::in_memory`].
pub struct RecordTap {
    rx: Receiver<Msg>,
}

impl RecordTap {
    /// Events queued so far.
    pub fn drain(&self) -> Vec<RecordEvent> {
        self.rx
            .try_iter()
            .filter_map(|m| match m {
                Msg::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }
}

enum Msg {
    Event(RecordEvent),
    Flush(Sender<io::Result<()>>),
    Shutdown,
}

/// Owns the background writer thread.
pub struct RecordWriter {
    tx: Sender<Msg>,
    counters: Arc<Counters>,
    handle: Option<JoinHandle<io::Result<()>>>,
}

/// The writer forgets the parties of at most this many open calls (oldest first) so a lost
/// `Closed` cannot grow its memory without bound.
const MAX_OPEN: usize = 1 << 20;

impl RecordWriter {
    /// Append records to `path` (created if missing), with a queue of `queue_len` events.
    pub fn spawn(path: &Path, queue_len: usize) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Self::spawn_with(file, queue_len)
    }

    fn spawn_with(file: File, queue_len: usize) -> io::Result<Self> {
        let (tx, rx) = bounded(queue_len.max(1));
        let counters = Arc::new(Counters::default());
        let c2 = counters.clone();
        let handle = std::thread::Builder::new()
            .name("sipd-records".into())
            .spawn(move || run(rx, file, c2))?;
        Ok(RecordWriter {
            tx,
            counters,
            handle: Some(handle),
        })
    }

    /// A sender for the table.
    pub fn sink(&self) -> RecordSink {
        RecordSink {
            tx: self.tx.clone(),
            counters: self.counters.clone(),
        }
    }

    /// Wait until every event queued before this call is written, then fsync the file. Control
    /// plane only: it blocks while the queue is full.
    pub fn flush(&self) -> io::Result<()> {
        let (rtx, rrx) = bounded(1);
        self.tx
            .send(Msg::Flush(rtx))
            .map_err(|_| io::Error::other("record writer stopped"))?;
        rrx.recv()
            .map_err(|_| io::Error::other("record writer stopped"))?
    }

    /// Counters so far.
    pub fn stats(&self) -> RecordStats {
        RecordStats {
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            written: self.counters.written.load(Ordering::Relaxed),
        }
    }

    /// Drain what is queued, fsync, stop the thread. Events sent afterwards are counted as dropped.
    pub fn shutdown(mut self) -> io::Result<RecordStats> {
        self.stop()?;
        Ok(self.stats())
    }

    fn stop(&mut self) -> io::Result<()> {
        if let Some(h) = self.handle.take() {
            let _ = self.tx.send(Msg::Shutdown);
            return h
                .join()
                .map_err(|_| io::Error::other("record writer panicked"))?;
        }
        Ok(())
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

struct Writer {
    out: BufWriter<File>,
    open: HashMap<u64, (Party, Party)>,
    /// Calls closed before their `Started` arrived (another worker ended the call right after
    /// it was created): their late `Started` is dropped instead of kept forever.
    closed_early: HashSet<u64>,
    order: VecDeque<u64>,
    counters: Arc<Counters>,
    line: Vec<u8>,
}

impl Writer {
    fn event(&mut self, ev: RecordEvent) -> io::Result<()> {
        match ev {
            RecordEvent::Started { id, caller, callee } => {
                if self.closed_early.remove(&id) {
                    return Ok(());
                }
                if self.open.insert(id, (caller, callee)).is_none() {
                    self.order.push_back(id);
                }
                while self.open.len() > MAX_OPEN {
                    match self.order.pop_front() {
                        Some(old) => {
                            self.open.remove(&old);
                        }
                        None => break,
                    }
                }
            }
            RecordEvent::Ended {
                id,
                start_ms,
                answer_ms,
                end_ms,
                reason,
                status,
                close,
            } => {
                let empty = Party::new("");
                let (caller, callee) = self.open.get(&id).copied().unwrap_or((empty, empty));
                let rec = CallRecord {
                    id,
                    start_ms,
                    answer_ms,
                    end_ms,
                    duration_ms: answer_ms.map_or(0, |a| end_ms.saturating_sub(a)),
                    caller: caller.as_str(),
                    callee: callee.as_str(),
                    reason,
                    status,
                };
                self.line.clear();
                serde_json::to_writer(&mut self.line, &rec).map_err(io::Error::other)?;
                self.line.push(b'\n');
                self.out.write_all(&self.line)?;
                self.counters.written.fetch_add(1, Ordering::Relaxed);
                if close {
                    self.close(id);
                }
            }
            RecordEvent::Closed { id } => self.close(id),
        }
        // Keep `order` from growing past the live set by much.
        if self.order.len() > 2 * self.open.len() + 1024 {
            let open = &self.open;
            self.order.retain(|id| open.contains_key(id));
        }
        Ok(())
    }

    fn close(&mut self, id: u64) {
        if self.open.remove(&id).is_none() {
            if self.closed_early.len() >= 4096 {
                self.closed_early.clear();
            }
            self.closed_early.insert(id);
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

fn run(rx: Receiver<Msg>, file: File, counters: Arc<Counters>) -> io::Result<()> {
    let mut w = Writer {
        out: BufWriter::with_capacity(1 << 16, file),
        open: HashMap::new(),
        closed_early: HashSet::new(),
        order: VecDeque::new(),
        counters,
        line: Vec::with_capacity(256),
    };
    let mut first_err: Option<io::Error> = None;
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Event(ev) => {
                if let Err(e) = w.event(ev) {
                    first_err.get_or_insert(e);
                }
            }
            Msg::Flush(reply) => {
                let r = match first_err.take() {
                    Some(e) => Err(e),
                    None => w.sync(),
                };
                let _ = reply.send(r);
            }
            Msg::Shutdown => break,
        }
        // Flush the buffer when the queue runs dry so records reach the file promptly.
        if rx.is_empty()
            && let Err(e) = w.out.flush()
        {
            first_err.get_or_insert(e);
        }
    }
    // Drain what is left (events queued before the shutdown request).
    while let Ok(msg) = rx.try_recv() {
        match msg {
            Msg::Event(ev) => {
                if let Err(e) = w.event(ev) {
                    first_err.get_or_insert(e);
                }
            }
            Msg::Flush(reply) => {
                let _ = reply.send(Ok(()));
            }
            Msg::Shutdown => {}
        }
    }
    w.sync()?;
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_line_per_ended_dialog_and_drops_when_full() {
        let dir = std::env::temp_dir().join(format!("sipd-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("calls.jsonl");
        let _ = std::fs::remove_file(&path);
        let w = RecordWriter::spawn(&path, 64).unwrap();
        let s = w.sink();
        s.send(RecordEvent::Started {
            id: 7,
            caller: Party::new("sip:alice@atlanta.example.com"),
            callee: Party::new("sip:bob@biloxi.example.com"),
        });
        s.send(RecordEvent::Ended {
            id: 7,
            start_ms: 1000,
            answer_ms: Some(3000),
            end_ms: 63_000,
            reason: EndReason::Bye,
            status: None,
            close: true,
        });
        s.send(RecordEvent::Ended {
            id: 8,
            start_ms: 1000,
            answer_ms: None,
            end_ms: 2000,
            reason: EndReason::Rejected,
            status: Some(486),
            close: true,
        });
        w.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["caller"], "sip:alice@atlanta.example.com");
        assert_eq!(lines[0]["duration_ms"], 60_000);
        assert_eq!(lines[0]["reason"], "bye");
        assert_eq!(lines[1]["caller"], "");
        assert_eq!(lines[1]["status"], 486);
        assert_eq!(lines[1]["answer_ms"], serde_json::Value::Null);
        let st = w.shutdown().unwrap();
        assert_eq!(
            st,
            RecordStats {
                dropped: 0,
                written: 2
            }
        );
        // After shutdown the queue is gone: sends are counted as dropped, never block.
        s.send(RecordEvent::Closed { id: 1 });
        assert_eq!(s.dropped(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn party_is_cut_at_a_char_boundary() {
        let long = "é".repeat(100);
        let p = Party::new(&long);
        assert!(p.as_str().len() <= PARTY_MAX);
        assert!(p.as_str().chars().all(|c| c == 'é'));
    }
}
