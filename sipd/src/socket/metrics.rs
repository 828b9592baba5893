//! `/metrics` lines of the kernel-socket datapath: per-worker packets and batch sizes, TCP.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{BATCH_BUCKETS, ServerHandle, TcpStats, WorkerStats};
use crate::admin::{MetricsSource, family};

/// Reads the socket server's counters (atomics written by the workers).
pub struct SocketMetrics {
    workers: Vec<Arc<WorkerStats>>,
    tcp: Arc<TcpStats>,
}

impl SocketMetrics {
    pub fn new(server: &ServerHandle) -> Self {
        SocketMetrics {
            workers: server.workers().iter().map(|w| w.stats.clone()).collect(),
            tcp: server.tcp_stats().clone(),
        }
    }
}

const BUCKET_LABELS: [&str; BATCH_BUCKETS] = ["1", "2-3", "4-7", "8-15", "16-31", "32-63", "64"];

impl MetricsSource for SocketMetrics {
    fn write_metrics(&self, out: &mut String) {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        type Field = fn(&WorkerStats) -> &AtomicU64;
        let per_worker: [(&str, &str, Field); 8] = [
            (
                "sipd_socket_rx_packets_total",
                "UDP datagrams received, per worker.",
                |w| &w.rx_packets,
            ),
            (
                "sipd_socket_tx_packets_total",
                "UDP datagrams sent, per worker.",
                |w| &w.tx_packets,
            ),
            (
                "sipd_socket_rx_bytes_total",
                "UDP bytes received, per worker.",
                |w| &w.rx_bytes,
            ),
            (
                "sipd_socket_tx_bytes_total",
                "UDP bytes sent, per worker.",
                |w| &w.tx_bytes,
            ),
            (
                "sipd_socket_rx_batches_total",
                "recvmmsg calls that returned datagrams, per worker.",
                |w| &w.rx_batches,
            ),
            (
                "sipd_socket_send_errors_total",
                "Datagrams the kernel refused to send, per worker.",
                |w| &w.send_errors,
            ),
            (
                "sipd_socket_truncated_total",
                "Datagrams larger than a receive slot, per worker.",
                |w| &w.truncated,
            ),
            (
                "sipd_socket_tcp_handoff_drops_total",
                "Forwards to TCP dropped (hand-off queue full).",
                |w| &w.tcp_handoff_drops,
            ),
        ];
        for (name, help, field) in per_worker {
            family(out, name, "counter", help);
            for (i, w) in self.workers.iter().enumerate() {
                let _ = writeln!(out, "{name}{{worker=\"{i}\"}} {}", l(field(w)));
            }
        }
        family(
            out,
            "sipd_socket_batch_size_total",
            "counter",
            "recvmmsg batches by size, per worker.",
        );
        for (i, w) in self.workers.iter().enumerate() {
            for (b, label) in BUCKET_LABELS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "sipd_socket_batch_size_total{{worker=\"{i}\",size=\"{label}\"}} {}",
                    l(&w.batch_sizes[b])
                );
            }
        }
        let t = &self.tcp;
        family(
            out,
            "sipd_tcp_connections_open",
            "gauge",
            "Open SIP/TCP connections.",
        );
        let _ = writeln!(out, "sipd_tcp_connections_open {}", l(&t.open));
        family(
            out,
            "sipd_tcp_connections_total",
            "counter",
            "SIP/TCP connection events.",
        );
        for (event, c) in [
            ("accepted", &t.accepted),
            ("refused", &t.refused),
            ("connected", &t.connects),
            ("connect_error", &t.connect_errors),
            ("closed_peer", &t.closed_by_peer),
            ("closed_idle", &t.closed_idle),
            ("closed_malformed", &t.closed_malformed),
            ("closed_overflow", &t.closed_overflow),
            ("closed_error", &t.closed_error),
        ] {
            let _ = writeln!(
                out,
                "sipd_tcp_connections_total{{event=\"{event}\"}} {}",
                l(c)
            );
        }
        family(
            out,
            "sipd_tcp_messages_total",
            "counter",
            "SIP messages over TCP.",
        );
        let _ = writeln!(
            out,
            "sipd_tcp_messages_total{{direction=\"rx\"}} {}",
            l(&t.rx_messages)
        );
        let _ = writeln!(
            out,
            "sipd_tcp_messages_total{{direction=\"tx\"}} {}",
            l(&t.tx_messages)
        );
        family(
            out,
            "sipd_tcp_undeliverable_total",
            "counter",
            "Messages for TCP that no connection could carry.",
        );
        let _ = writeln!(out, "sipd_tcp_undeliverable_total {}", l(&t.undeliverable));
        family(
            out,
            "sipd_health_probes_sent_total",
            "counter",
            "OPTIONS health probes sent.",
        );
        let _ = writeln!(out, "sipd_health_probes_sent_total {}", l(&t.probes_sent));
    }
}
