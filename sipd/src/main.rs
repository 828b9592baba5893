//! The `sipd` command line.

fn main() {
    println!("sipd {}", env!("CARGO_PKG_VERSION"));
}
