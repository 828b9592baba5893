//! The `sipd` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sipd", version, about = "Kernel-bypass SIP packet processor")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse one raw SIP message and print it as JSON.
    ///
    /// Reads FILE (or standard input with `-` or no argument), checks the whole message (start
    /// line, every known header's grammar, body framing) and prints one JSON object. An invalid
    /// message prints `error: <kind> at byte <offset>: <explanation>` on stderr and exits 1.
    ///
    /// Examples:
    ///   sipd parse tests/fixtures/rfc4475/wsinv.dat
    ///   printf 'OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n' | sipd parse -
    #[command(verbatim_doc_comment)]
    Parse {
        /// The message file; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
    /// Generate SIP load: place calls (uac), answer them (uas), or flood requests (blast).
    Load(Box<sipd::load::cli::LoadArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Parse { file } => parse(file),
        Command::Load(args) => sipd::load::cli::main(*args),
    }
}

fn parse(file: Option<PathBuf>) -> ExitCode {
    let bytes = match sipd::cli::parse::read_input(file.as_deref()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read input: {e}");
            return ExitCode::from(2);
        }
    };
    match sipd::cli::parse::describe(&bytes) {
        Ok(json) => {
            println!("{json:#}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", sipd::cli::parse::error_line(&e));
            ExitCode::from(1)
        }
    }
}
