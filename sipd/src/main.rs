//! The `sipd` command line.

use std::net::SocketAddr;
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
    /// Run the SIP processor with a configuration file.
    ///
    /// Starts the datapath the file asks for (AF_XDP, kernel sockets, or auto), the admin
    /// endpoint, and runs until SIGTERM or SIGINT (graceful: drain, flush, detach). SIGHUP
    /// reloads routes, groups, redirect rules and credentials.
    ///
    /// Example:
    ///   sipd run --config /etc/sipd/sipd.toml
    #[command(verbatim_doc_comment)]
    Run {
        /// The TOML configuration file (see sipd/sipd.example.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration file without applying it.
    ///
    /// Every error is printed with its file, line and key; exit 1 if there is any.
    ///
    /// Example:
    ///   sipd check-config /etc/sipd/sipd.toml
    #[command(verbatim_doc_comment)]
    CheckConfig {
        /// The TOML configuration file.
        file: PathBuf,
    },
    /// Print a readable summary of a running sipd's metrics.
    ///
    /// Example:
    ///   sipd stats --admin 127.0.0.1:9060
    #[command(verbatim_doc_comment)]
    Stats {
        /// The admin endpoint of the running sipd.
        #[arg(long, default_value = "127.0.0.1:9060")]
        admin: SocketAddr,
        /// Print the raw Prometheus text instead.
        #[arg(long)]
        raw: bool,
    },
    /// Ask a running sipd to reload its configuration (same as SIGHUP).
    ///
    /// Routes, groups, redirect rules and credentials are replaced atomically while traffic
    /// flows; a configuration with errors is rejected and the running one kept.
    ///
    /// Example:
    ///   sipd reload --admin 127.0.0.1:9060
    #[command(verbatim_doc_comment)]
    Reload {
        /// The admin endpoint of the running sipd.
        #[arg(long, default_value = "127.0.0.1:9060")]
        admin: SocketAddr,
    },
    /// Reflect SIP/UDP over AF_XDP without SIP work: the machine's forwarding limit.
    ///
    /// Attaches the XDP program to IFACE and sends every SIP datagram straight back to its
    /// sender (addresses and ports swapped, checksums recomputed). `cargo xtask bench` uses it
    /// as the "limit" target.
    ///
    /// Example:
    ///   sipd reflect --iface eth0 --queues 0
    #[command(verbatim_doc_comment)]
    Reflect(sipd::cli_reflect::ReflectArgs),
    /// Print a credentials line (user:realm:HA1) for the [auth] credentials file.
    ///
    /// The password is read from standard input unless --password is given; plain passwords are
    /// never stored, only H(user:realm:password).
    ///
    /// Example:
    ///   echo secret | sipd passwd bob biloxi.example.com >> /etc/sipd/credentials
    #[command(verbatim_doc_comment)]
    Passwd(sipd::registrar::cli::Args),
    /// Generate SIP load: place calls (uac), answer them (uas), or flood requests (blast).
    Load(Box<sipd::load::cli::LoadArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Parse { file } => parse(file),
        Command::Run { config } => match sipd::runtime::run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::CheckConfig { file } => check_config(&file),
        Command::Stats { admin, raw } => stats(admin, raw),
        Command::Reload { admin } => reload(admin),
        Command::Load(args) => sipd::load::cli::main(*args),
        Command::Passwd(args) => match sipd::registrar::cli::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Reflect(args) => {
            sipd::logging::init(sipd::config::LogFormat::Text, "info");
            match sipd::cli_reflect::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match sipd::config::Config::load(file) {
        Ok(c) => {
            let p = &c.routing.proxy;
            println!(
                "ok: {} ({} listen addresses, {} number routes, {} domain routes, {} groups, mode {:?})",
                file.display(),
                c.listen.len(),
                p.number_routes.len(),
                p.domain_routes.len(),
                p.groups.len(),
                c.mode,
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            ExitCode::from(1)
        }
    }
}

fn stats(admin: SocketAddr, raw: bool) -> ExitCode {
    match sipd::admin::request(admin, "GET", "/metrics") {
        Ok((200, body)) => {
            if raw {
                print!("{body}");
            } else {
                print!("{}", sipd::cli::stats::summarize(&body));
            }
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("error: admin endpoint answered {status}: {}", body.trim());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: cannot reach the admin endpoint at {admin}: {e}");
            ExitCode::from(1)
        }
    }
}

fn reload(admin: SocketAddr) -> ExitCode {
    match sipd::admin::request(admin, "POST", "/reload") {
        Ok((202, _)) => {
            println!("reload requested (see the sipd log for the outcome)");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("error: admin endpoint answered {status}: {}", body.trim());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: cannot reach the admin endpoint at {admin}: {e}");
            ExitCode::from(1)
        }
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
