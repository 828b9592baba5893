//! Parser + validate: no panic; a message that parses reparses to the same view.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sipd_fuzz::props::check_parse(data));
