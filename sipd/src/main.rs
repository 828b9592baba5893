//! The `sipd` command line.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sipd", version, about = "Kernel-bypass SIP packet processor")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// AF_XDP reflector: send every datagram to a SIP port straight back (datapath limit).
    Reflect(sipd::cli_reflect::ReflectArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Some(Command::Reflect(args)) => sipd::cli_reflect::run(args),
        None => {
            println!("sipd {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}
