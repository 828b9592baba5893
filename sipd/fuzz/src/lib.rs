//! The properties the fuzz targets check; `tests/fuzz_bounded.rs` includes `props.rs` too, so
//! the bounded run in `cargo test` and `cargo fuzz` check exactly the same things.

#[path = "props.rs"]
pub mod props;
