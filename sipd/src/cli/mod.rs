//! Subcommand implementations behind the `sipd` binary (kept in the library so tests can call
//! them directly).

pub mod parse;
pub mod stats;
