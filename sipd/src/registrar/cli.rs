//! `sipd passwd`: prints credentials-file lines (`user:realm:HA1`) for a user, so plain passwords
//! never reach the file. The password is read from the first line of standard input unless
//! `--password` is given (which leaves it in the shell history: prefer stdin).
//!
//! ```text
//! $ echo 'zanzibar' | sipd passwd bob biloxi.com >> /etc/sipd/users
//! ```

use std::io::{BufRead, Write};

use super::credentials::line;
use super::digest::Algorithm;

/// Which HA1 lines to print.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AlgorithmArg {
    Md5,
    #[value(name = "sha-256", alias = "sha256")]
    Sha256,
    /// One line of each (clients choose among the offered algorithms).
    Both,
}

/// Arguments of `sipd passwd`.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The digest username (no ':').
    pub user: String,
    /// The realm the registrar challenges with.
    pub realm: String,
    /// HA1 algorithm(s).
    #[arg(long, value_enum, default_value = "both")]
    pub algorithm: AlgorithmArg,
    /// The password (default: the first line of standard input).
    #[arg(long)]
    pub password: Option<String>,
}

/// Why `sipd passwd` failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("the user name must not be empty or contain ':'")]
    BadUser,
    #[error("the realm must not be empty")]
    BadRealm,
    #[error("no password given (use --password or standard input)")]
    NoPassword,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The lines for `args` with `password`.
pub fn lines(args: &Args, password: &str) -> Result<Vec<String>, PasswdError> {
    if args.user.is_empty() || args.user.contains(':') {
        return Err(PasswdError::BadUser);
    }
    if args.realm.is_empty() {
        return Err(PasswdError::BadRealm);
    }
    let algs: &[Algorithm] = match args.algorithm {
        AlgorithmArg::Md5 => &[Algorithm::Md5],
        AlgorithmArg::Sha256 => &[Algorithm::Sha256],
        AlgorithmArg::Both => &[Algorithm::Md5, Algorithm::Sha256],
    };
    Ok(algs
        .iter()
        .map(|&a| line(&args.user, &args.realm, password, a))
        .collect())
}

/// Runs `sipd passwd`: reads the password (unless given) from `input`, writes the lines to `out`.
pub fn run_with(
    args: &Args,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), PasswdError> {
    let password = match &args.password {
        Some(p) => p.clone(),
        None => {
            let mut l = String::new();
            input.read_line(&mut l)?;
            let p = l.trim_end_matches(['\r', '\n']).to_owned();
            if p.is_empty() {
                return Err(PasswdError::NoPassword);
            }
            p
        }
    };
    for l in lines(args, &password)? {
        writeln!(out, "{l}")?;
    }
    Ok(())
}

/// Runs `sipd passwd` on standard input and output.
pub fn run(args: &Args) -> Result<(), PasswdError> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_with(args, &mut input, &mut out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registrar::credentials::Credentials;

    #[test]
    fn lines_load_back() {
        let args = Args {
            user: "bob".into(),
            realm: "biloxi.com".into(),
            algorithm: AlgorithmArg::Both,
            password: None,
        };
        let mut out = Vec::new();
        run_with(&args, &mut &b"zanzibar\n"[..], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("zanzibar"));
        assert_eq!(text.lines().count(), 2);
        let c = Credentials::parse(&text).unwrap();
        let h = c.get(b"bob", b"biloxi.com").unwrap();
        assert!(h.md5.is_some() && h.sha256.is_some());
        let bad = Args {
            user: "a:b".into(),
            ..args.clone()
        };
        assert!(matches!(
            run_with(&bad, &mut &b"x\n"[..], &mut Vec::new()),
            Err(PasswdError::BadUser)
        ));
        assert!(matches!(
            run_with(&args, &mut &b"\n"[..], &mut Vec::new()),
            Err(PasswdError::NoPassword)
        ));
    }
}
