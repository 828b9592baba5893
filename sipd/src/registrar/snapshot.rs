//! The bindings journal: what survives a restart.
//!
//! **File.** An 8-byte magic, then records `len:u32 LE | check:u64 LE | payload[len]` where
//! `check = xxh3_64(payload)`. A payload is the *whole* state of one AOR after a change
//! (`key_len:u16 | key | n:u16 | n × binding`; `n = 0` means the AOR has no binding any more), so
//! replaying the file in order and keeping the last record of each AOR rebuilds the table.
//! A binding: `expires_at_ms:u64 | cseq:u32 | call_id_hash:u64 | q:u16 | transport:u8 |
//! routable:u8 | family:u8 (4|6) | ip:16 | port:u16 | uri_len:u16 | uri`.
//!
//! **Torn tails.** A crash can leave the last record short or half-written: reading stops at the
//! first record whose length runs past the end of the file or whose checksum does not match, that
//! record and anything after it are ignored (never loaded half), and the file is truncated there
//! before new records are appended.
//!
//! **Off the hot path.** A REGISTER only pushes its AOR key into a bounded channel
//! ([`JournalQueue::notify`], never blocking). The writer thread ([`JournalWriter`]) collects keys,
//! reads each AOR's *current* record from the table (so bursts on one AOR coalesce and records are
//! never written out of order), appends, and flushes once per batch. If the channel was full, or
//! the file has grown to several times the live data, the writer rewrites it as a compact
//! snapshot (a temporary file renamed over the journal).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use super::bindings::{Binding, Bindings};
use crate::proxy::Transport;

const MAGIC: &[u8; 8] = b"SIPDJRN1";
const RECORD_HEAD: usize = 12;
/// Largest payload accepted when reading (a corrupt length is not trusted further).
const MAX_PAYLOAD: usize = 1 << 20;

/// Appends one AOR's record to `out`.
pub fn encode_record(aor: &[u8], bindings: &[Binding], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEAD]);
    let key = &aor[..aor.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key);
    let n = bindings.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(n as u16).to_le_bytes());
    for b in &bindings[..n] {
        out.extend_from_slice(&b.expires_at_ms.to_le_bytes());
        out.extend_from_slice(&b.cseq.to_le_bytes());
        out.extend_from_slice(&b.call_id_hash.to_le_bytes());
        out.extend_from_slice(&b.q.to_le_bytes());
        out.push(match b.transport {
            Transport::Udp => 0,
            Transport::Tcp => 1,
        });
        out.push(u8::from(b.routable));
        match b.addr.ip() {
            IpAddr::V4(a) => {
                out.push(4);
                let mut ip = [0u8; 16];
                ip[..4].copy_from_slice(&a.octets());
                out.extend_from_slice(&ip);
            }
            IpAddr::V6(a) => {
                out.push(6);
                out.extend_from_slice(&a.octets());
            }
        }
        out.extend_from_slice(&b.addr.port().to_le_bytes());
        let uri = &b.uri[..b.uri.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(uri.len() as u16).to_le_bytes());
        out.extend_from_slice(uri);
    }
    let payload_len = out.len() - start - RECORD_HEAD;
    let check = xxhash_rust::xxh3::xxh3_64(&out[start + RECORD_HEAD..]);
    out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[start + 4..start + RECORD_HEAD].copy_from_slice(&check.to_le_bytes());
}

struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
}

/// Decodes one payload (checksum already verified).
pub fn decode_payload(payload: &[u8]) -> Option<(Vec<u8>, Vec<Binding>)> {
    let mut c = Cursor { b: payload };
    let klen = usize::from(c.u16()?);
    let key = c.take(klen)?.to_vec();
    let n = usize::from(c.u16()?);
    let mut bindings = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let expires_at_ms = c.u64()?;
        let cseq = c.u32()?;
        let call_id_hash = c.u64()?;
        let q = c.u16()?;
        let transport = match c.u8()? {
            0 => Transport::Udp,
            1 => Transport::Tcp,
            _ => return None,
        };
        let routable = c.u8()? != 0;
        let family = c.u8()?;
        let ip_bytes: [u8; 16] = c.take(16)?.try_into().ok()?;
        let ip = match family {
            4 => IpAddr::V4(Ipv4Addr::new(
                ip_bytes[0],
                ip_bytes[1],
                ip_bytes[2],
                ip_bytes[3],
            )),
            6 => IpAddr::V6(Ipv6Addr::from(ip_bytes)),
            _ => return None,
        };
        let port = c.u16()?;
        let ulen = usize::from(c.u16()?);
        let uri: Arc<[u8]> = Arc::from(c.take(ulen)?);
        bindings.push(Binding {
            uri,
            addr: SocketAddr::new(ip, port),
            expires_at_ms,
            call_id_hash,
            cseq,
            q,
            transport,
            routable,
        });
    }
    if !c.b.is_empty() {
        return None;
    }
    Some((key, bindings))
}

/// What reading a journal found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Complete records read.
    pub records: usize,
    /// AORs installed (with at least one live binding).
    pub aors: usize,
    /// Bindings installed.
    pub bindings: usize,
    /// Bindings not installed because they had expired.
    pub expired: usize,
    /// Bindings not installed because the table was full.
    pub over_capacity: usize,
    /// Offset of a torn or corrupt record that was skipped (with everything after it).
    pub torn_at: Option<u64>,
    /// Length of the valid prefix (where appending continues).
    pub valid_len: u64,
}

/// One journal record: an AOR key and its bindings.
pub type Record = (Vec<u8>, Vec<Binding>);

/// Parses journal bytes: the records of the valid prefix in order, the length of that prefix,
/// and the offset of a torn or corrupt record if one ended it.
pub fn parse_journal(bytes: &[u8]) -> (Vec<Record>, u64, Option<u64>) {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        // Empty or not ours: start over (an unreadable header is a torn first write).
        let torn = (!bytes.is_empty()).then_some(0);
        return (Vec::new(), 0, torn);
    }
    let mut pos = MAGIC.len();
    let mut out = Vec::new();
    loop {
        let rest = &bytes[pos..];
        if rest.is_empty() {
            return (out, pos as u64, None);
        }
        let torn = Some(pos as u64);
        if rest.len() < RECORD_HEAD {
            return (out, pos as u64, torn);
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let check = u64::from_le_bytes(rest[4..12].try_into().unwrap_or_default());
        if len > MAX_PAYLOAD || rest.len() < RECORD_HEAD + len {
            return (out, pos as u64, torn);
        }
        let payload = &rest[RECORD_HEAD..RECORD_HEAD + len];
        if xxhash_rust::xxh3::xxh3_64(payload) != check {
            return (out, pos as u64, torn);
        }
        let Some(record) = decode_payload(payload) else {
            return (out, pos as u64, torn);
        };
        out.push(record);
        pos += RECORD_HEAD + len;
    }
}

/// Reads the journal at `path` into `table` (bindings expired at `now_ms` skipped), truncates a
/// torn tail, and returns the file open for appending with what was found.
pub fn load(path: &Path, table: &Bindings, now_ms: u64) -> io::Result<(File, LoadReport)> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let (records, valid_len, torn_at) = parse_journal(&bytes);
    let mut report = LoadReport {
        records: records.len(),
        torn_at,
        valid_len,
        ..LoadReport::default()
    };
    // Last record per AOR wins.
    let mut latest: std::collections::HashMap<Vec<u8>, Vec<Binding>> =
        std::collections::HashMap::new();
    for (key, bindings) in records {
        latest.insert(key, bindings);
    }
    for (key, bindings) in latest {
        let total = bindings.len();
        let live = bindings.iter().filter(|b| b.is_live(now_ms)).count();
        report.expired += total - live;
        if live == 0 {
            continue;
        }
        if table.restore(&key, bindings, now_ms) {
            report.aors += 1;
            report.bindings += live;
        } else {
            report.over_capacity += live;
        }
    }
    if valid_len == 0 {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(MAGIC)?;
        file.sync_data()?;
        report.valid_len = MAGIC.len() as u64;
    } else if torn_at.is_some() {
        file.set_len(valid_len)?;
        file.sync_data()?;
    }
    file.seek(SeekFrom::End(0))?;
    Ok((file, report))
}

/// Writes the whole table as a fresh journal to `path` (via a temporary file and a rename).
pub fn write_snapshot(path: &Path, table: &Bindings, now_ms: u64) -> io::Result<u64> {
    let tmp = tmp_path(path);
    let mut w = BufWriter::new(File::create(&tmp)?);
    w.write_all(MAGIC)?;
    let mut buf = Vec::with_capacity(4096);
    let mut len = MAGIC.len() as u64;
    let mut res = Ok(());
    table.for_each(|key, bindings| {
        if res.is_err() {
            return;
        }
        let live: Vec<Binding> = bindings
            .iter()
            .filter(|b| b.is_live(now_ms))
            .cloned()
            .collect();
        if live.is_empty() {
            return;
        }
        buf.clear();
        encode_record(key, &live, &mut buf);
        len += buf.len() as u64;
        res = w.write_all(&buf);
    });
    res?;
    let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    Ok(len)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// The registrar's side of the journal: a bounded, non-blocking queue of changed AORs.
#[derive(Clone, Debug)]
pub struct JournalQueue {
    tx: SyncSender<Box<[u8]>>,
    overflow: Arc<AtomicBool>,
    pub(crate) dropped: Arc<AtomicU64>,
}

impl JournalQueue {
    /// Says that `aor` changed. Never blocks: when the queue is full the writer is told to
    /// rewrite the whole snapshot instead, so no change is lost.
    pub fn notify(&self, aor: &[u8]) {
        match self.tx.try_send(Box::from(aor)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.overflow.store(true, Ordering::Release);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Settings of the writer thread.
#[derive(Clone, Debug)]
pub struct JournalConfig {
    pub path: PathBuf,
    /// Changed AORs queued before the writer falls back to a full snapshot.
    pub queue: usize,
    /// Longest time a change waits before it is written.
    pub flush_interval: Duration,
    /// Rewrite the file when it is larger than this many times the last snapshot (and 1 MiB).
    pub compact_factor: u64,
    /// `fdatasync` after every batch (else the OS decides; a crash of the host can lose the last
    /// batch, a crash of sipd cannot).
    pub sync: bool,
}

impl JournalConfig {
    pub fn new(path: PathBuf) -> Self {
        JournalConfig {
            path,
            queue: 65_536,
            flush_interval: Duration::from_millis(200),
            compact_factor: 4,
            sync: false,
        }
    }
}

/// The writer thread: owns the file; stops (after a last flush) when [`JournalWriter::stop`] is
/// called or every [`JournalQueue`] is dropped.
pub struct JournalWriter {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<io::Result<()>>>,
}

/// Wall-clock milliseconds (the writer is a driver, not the sans-IO core).
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl JournalWriter {
    /// Loads the journal into `table` and starts the writer. Returns the queue to give the
    /// registrar, the writer handle and what was loaded.
    pub fn start(
        config: JournalConfig,
        table: Arc<Bindings>,
        now_ms: u64,
    ) -> io::Result<(JournalQueue, JournalWriter, LoadReport)> {
        let (file, report) = load(&config.path, &table, now_ms)?;
        let (tx, rx) = sync_channel(config.queue.max(1));
        let overflow = Arc::new(AtomicBool::new(false));
        let queue = JournalQueue {
            tx,
            overflow: overflow.clone(),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let start_len = report.valid_len;
        let handle = std::thread::Builder::new()
            .name("sipd-journal".into())
            .spawn(move || writer_loop(config, table, rx, overflow, stop2, file, start_len))?;
        Ok((
            queue,
            JournalWriter {
                stop,
                handle: Some(handle),
            },
            report,
        ))
    }

    /// Flushes what is queued and stops the thread.
    pub fn stop(mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Release);
        match self.handle.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("journal writer panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn writer_loop(
    config: JournalConfig,
    table: Arc<Bindings>,
    rx: Receiver<Box<[u8]>>,
    overflow: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    file: File,
    start_len: u64,
) -> io::Result<()> {
    let mut w = BufWriter::new(file);
    let mut len = start_len;
    let mut snapshot_len = start_len.max(MAGIC.len() as u64);
    let mut pending: HashSet<Box<[u8]>> = HashSet::new();
    let mut buf = Vec::with_capacity(4096);
    loop {
        let disconnected = match rx.recv_timeout(config.flush_interval) {
            Ok(key) => {
                pending.insert(key);
                while let Ok(k) = rx.try_recv() {
                    pending.insert(k);
                    if pending.len() >= 4096 {
                        break;
                    }
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let stopping = disconnected || stop.load(Ordering::Acquire);
        if stopping {
            while let Ok(k) = rx.try_recv() {
                pending.insert(k);
            }
        }
        let compact = overflow.swap(false, Ordering::AcqRel)
            || len
                > snapshot_len
                    .saturating_mul(config.compact_factor)
                    .max(1 << 20);
        if compact {
            w.flush()?;
            pending.clear();
            snapshot_len = write_snapshot(&config.path, &table, wall_ms())?;
            len = snapshot_len;
            let f = OpenOptions::new().append(true).open(&config.path)?;
            w = BufWriter::new(f);
        } else if !pending.is_empty() {
            for key in pending.drain() {
                buf.clear();
                table.with(&key, |bindings| encode_record(&key, bindings, &mut buf));
                w.write_all(&buf)?;
                len += buf.len() as u64;
            }
            w.flush()?;
            if config.sync {
                w.get_ref().sync_data()?;
            }
        }
        if stopping {
            w.flush()?;
            return w.get_ref().sync_data();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(uri: &str, expires_at_ms: u64, addr: &str) -> Binding {
        Binding {
            uri: Arc::from(uri.as_bytes()),
            addr: addr.parse().unwrap(),
            expires_at_ms,
            call_id_hash: 42,
            cseq: 7,
            q: 500,
            transport: Transport::Tcp,
            routable: true,
        }
    }

    #[test]
    fn round_trip_and_torn_tail() {
        let mut bytes = MAGIC.to_vec();
        let a = vec![
            binding("sip:bob@192.0.2.4", 10_000, "192.0.2.4:5060"),
            binding("sip:bob@[2001:db8::1]", 20_000, "[2001:db8::1]:5070"),
        ];
        encode_record(b"bob@biloxi.com", &a, &mut bytes);
        let whole = bytes.len();
        encode_record(b"alice@atlanta.com", &a[..1], &mut bytes);
        let (records, valid, torn) = parse_journal(&bytes);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0], (b"bob@biloxi.com".to_vec(), a.clone()));
        assert_eq!(valid as usize, bytes.len());
        assert_eq!(torn, None);
        // Every truncation inside the second record loses exactly that record.
        for cut in whole..bytes.len() {
            let (records, valid, torn) = parse_journal(&bytes[..cut]);
            assert_eq!(records.len(), 1, "cut at {cut}");
            assert_eq!(valid as usize, whole);
            assert_eq!(torn, (cut > whole).then_some(whole as u64));
        }
        // A flipped byte in the last record is detected the same way.
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        let (records, _, torn) = parse_journal(&bad);
        assert_eq!(records.len(), 1);
        assert_eq!(torn, Some(whole as u64));
    }

    #[test]
    fn load_truncates_torn_tail_and_skips_expired() {
        let dir = std::env::temp_dir().join(format!("sipd-jrn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bindings.journal");
        let mut bytes = MAGIC.to_vec();
        encode_record(
            b"bob@biloxi.com",
            &[binding("sip:bob@192.0.2.4", 10_000, "192.0.2.4:5060")],
            &mut bytes,
        );
        encode_record(
            b"old@biloxi.com",
            &[binding("sip:old@192.0.2.9", 500, "192.0.2.9:5060")],
            &mut bytes,
        );
        let valid = bytes.len();
        encode_record(
            b"carol@biloxi.com",
            &[binding("sip:carol@192.0.2.5", 10_000, "192.0.2.5:5060")],
            &mut bytes,
        );
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, &bytes).unwrap();
        let table = Bindings::new(100, 0);
        let (_, report) = load(&path, &table, 1000).unwrap();
        assert_eq!(report.records, 2);
        assert_eq!(report.bindings, 1);
        assert_eq!(report.expired, 1);
        assert_eq!(report.torn_at, Some(valid as u64));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), valid as u64);
        assert_eq!(table.len(), 1);
        table.with(b"carol@biloxi.com", |b| assert!(b.is_empty()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
