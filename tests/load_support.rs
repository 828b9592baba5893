//! Shared by the `load_*` tests: run a role in a thread of this process.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread::JoinHandle;

use sipd::load::cli::{Control, Outcome, execute, parse_args};

/// A UAS (or any answering role) running in a thread until stopped.
pub struct Running {
    pub addr: SocketAddr,
    control: Control,
    handle: JoinHandle<anyhow::Result<Outcome>>,
}

impl Running {
    pub fn start(args: &[&str]) -> Running {
        let args = parse_args(args).expect("valid arguments");
        let (tx, rx) = mpsc::channel();
        let control = Control {
            ready: Some(tx),
            ..Control::default()
        };
        let c = control.clone();
        let handle = std::thread::spawn(move || execute(&args, &c));
        let addr = rx.recv().expect("bound")[0];
        Running {
            addr,
            control,
            handle,
        }
    }

    pub fn stop(self) -> Outcome {
        self.control.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap().unwrap()
    }
}

pub fn run(args: &[&str]) -> Outcome {
    execute(
        &parse_args(args).expect("valid arguments"),
        &Control::default(),
    )
    .unwrap()
}
