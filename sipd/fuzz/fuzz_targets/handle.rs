//! Arbitrary bytes from arbitrary sources into `Proxy::handle`: no panic, every forwarded or
//! generated message reparses (and validates when the input did), never to broadcast/multicast.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sipd_fuzz::props::check_handle(data));
