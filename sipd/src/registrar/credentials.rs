//! The credentials file: one `user:realm:HA1` line per user, realm and algorithm.
//!
//! ```text
//! # comments and blank lines are ignored
//! bob:biloxi.com:6b1e6c1a8d0c4d4bd1a3dbd6e7b7c2b5                                   (MD5)
//! bob:biloxi.com:0c8b0c9b6f1b6e4c83c4c1a1b9b4d2f0a2a3b4c5d6e7f8091a2b3c4d5e6f7081  (SHA-256)
//! ```
//!
//! `HA1 = H(user ":" realm ":" password)` in lower- or upper-case hex; the algorithm is told by
//! the length (32 digits MD5, 64 digits SHA-256), so a user has up to one line per algorithm and
//! plain passwords are never stored. The user is everything before the first `:` and the HA1
//! everything after the last one, so a realm may contain `:` (e.g. `host:5060`) but a user may
//! not. Lines are produced by [`line()`] (and `sipd passwd`, see [`super::cli`]).
//!
//! The store is swapped as a whole on reload ([`CredentialStore::reload`]): readers never lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::digest::{Algorithm, HexDigest, ha1};

/// One user's HA1 per algorithm.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Ha1s {
    pub md5: Option<HexDigest>,
    pub sha256: Option<HexDigest>,
}

impl Ha1s {
    pub fn get(&self, alg: Algorithm) -> Option<&HexDigest> {
        match alg {
            Algorithm::Md5 => self.md5.as_ref(),
            Algorithm::Sha256 => self.sha256.as_ref(),
        }
    }
}

/// Parsed credentials: `user:realm` -> HA1s (a user has no `:`, so the joined key is unique).
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    entries: HashMap<Box<[u8]>, Ha1s>,
}

/// Longest `user:realm` looked up (longer names are unknown users).
const MAX_KEY: usize = 512;

fn join_key<'b>(user: &[u8], realm: &[u8], buf: &'b mut [u8; MAX_KEY]) -> Option<&'b [u8]> {
    let n = user.len() + 1 + realm.len();
    let dst = buf.get_mut(..n)?;
    dst[..user.len()].copy_from_slice(user);
    dst[user.len()] = b':';
    dst[user.len() + 1..].copy_from_slice(realm);
    Some(dst)
}

/// Why a credentials file was not loaded (the previous one stays in force).
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line}: expected user:realm:HA1")]
    Syntax { line: usize },
    #[error("line {line}: HA1 must be 32 (MD5) or 64 (SHA-256) hex digits")]
    BadHa1 { line: usize },
    #[error("line {line}: a second {algorithm} HA1 for the same user and realm")]
    Duplicate {
        line: usize,
        algorithm: &'static str,
    },
}

impl Credentials {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the file format described in the module docs.
    pub fn parse(text: &str) -> Result<Credentials, CredentialsError> {
        let mut c = Credentials::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (user, rest) = l.split_once(':').ok_or(CredentialsError::Syntax { line })?;
            let (realm, hex) = rest
                .rsplit_once(':')
                .ok_or(CredentialsError::Syntax { line })?;
            if user.is_empty() || realm.is_empty() {
                return Err(CredentialsError::Syntax { line });
            }
            let digest =
                HexDigest::parse(hex.as_bytes()).ok_or(CredentialsError::BadHa1 { line })?;
            let alg =
                Algorithm::from_hex_len(hex.len()).ok_or(CredentialsError::BadHa1 { line })?;
            let entry = c
                .entries
                .entry(format!("{user}:{realm}").into_bytes().into())
                .or_default();
            let slot = match alg {
                Algorithm::Md5 => &mut entry.md5,
                Algorithm::Sha256 => &mut entry.sha256,
            };
            if slot.is_some() {
                return Err(CredentialsError::Duplicate {
                    line,
                    algorithm: alg.name(),
                });
            }
            *slot = Some(digest);
        }
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Adds a user from a plain password (tests and tools; the password itself is not kept).
    pub fn insert_password(&mut self, user: &str, realm: &str, password: &str) {
        let e = self
            .entries
            .entry(format!("{user}:{realm}").into_bytes().into())
            .or_default();
        e.md5 = Some(ha1(Algorithm::Md5, user, realm, password));
        e.sha256 = Some(ha1(Algorithm::Sha256, user, realm, password));
    }

    pub fn get(&self, user: &[u8], realm: &[u8]) -> Option<&Ha1s> {
        if user.contains(&b':') {
            return None;
        }
        let mut buf = [0u8; MAX_KEY];
        self.entries.get(join_key(user, realm, &mut buf)?)
    }

    /// Whether this user has credentials in this realm.
    pub fn has_user(&self, user: &[u8], realm: &[u8]) -> bool {
        self.get(user, realm).is_some()
    }

    /// Number of (user, realm) entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One credentials-file line for `user` in `realm` with `algorithm`.
pub fn line(user: &str, realm: &str, password: &str, algorithm: Algorithm) -> String {
    format!(
        "{user}:{realm}:{}",
        ha1(algorithm, user, realm, password).as_str()
    )
}

/// The credentials in force, swapped atomically on reload.
pub struct CredentialStore {
    current: ArcSwap<Credentials>,
    path: Option<PathBuf>,
}

impl CredentialStore {
    pub fn new(credentials: Credentials, path: Option<PathBuf>) -> Self {
        CredentialStore {
            current: ArcSwap::from_pointee(credentials),
            path,
        }
    }

    /// Loads `path` now (and on every [`reload`](Self::reload)).
    pub fn open(path: &Path) -> Result<Self, CredentialsError> {
        Ok(Self::new(Credentials::load(path)?, Some(path.to_owned())))
    }

    /// The credentials in force (a cheap, lock-free load).
    pub fn load(&self) -> arc_swap::Guard<Arc<Credentials>> {
        self.current.load()
    }

    /// Re-reads the file; on error the previous credentials stay in force. Returns the number of
    /// entries now loaded.
    pub fn reload(&self) -> Result<usize, CredentialsError> {
        let Some(path) = &self.path else {
            return Ok(self.current.load().len());
        };
        let c = Credentials::load(path)?;
        let n = c.len();
        self.current.store(Arc::new(c));
        Ok(n)
    }

    /// Replaces the credentials (tests, or a caller that reads them elsewhere).
    pub fn replace(&self, credentials: Credentials) {
        self.current.store(Arc::new(credentials));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lines_by_length() {
        let md5 = line("bob", "biloxi.com", "zanzibar", Algorithm::Md5);
        let sha = line("bob", "biloxi.com", "zanzibar", Algorithm::Sha256);
        let text = format!("# users\n\n{md5}\n{sha}\nalice:host:5060:{}\n", &md5[15..]);
        let c = Credentials::parse(&text).unwrap();
        let h = c.get(b"bob", b"biloxi.com").unwrap();
        assert_eq!(
            h.md5.unwrap(),
            ha1(Algorithm::Md5, "bob", "biloxi.com", "zanzibar")
        );
        assert_eq!(
            h.sha256.unwrap(),
            ha1(Algorithm::Sha256, "bob", "biloxi.com", "zanzibar")
        );
        assert!(c.get(b"alice", b"host:5060").unwrap().md5.is_some());
        assert!(c.get(b"bob", b"atlanta.com").is_none());
        assert!(!text.contains("zanzibar"));
    }

    #[test]
    fn errors_name_the_line() {
        assert!(matches!(
            Credentials::parse("bob\n"),
            Err(CredentialsError::Syntax { line: 1 })
        ));
        assert!(matches!(
            Credentials::parse("# x\nbob:r:abc\n"),
            Err(CredentialsError::BadHa1 { line: 2 })
        ));
        let l = line("bob", "r", "p", Algorithm::Md5);
        assert!(matches!(
            Credentials::parse(&format!("{l}\n{l}\n")),
            Err(CredentialsError::Duplicate { line: 2, .. })
        ));
    }

    #[test]
    fn reload_keeps_old_on_error() {
        let dir = std::env::temp_dir().join(format!("sipd-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users");
        std::fs::write(&path, line("bob", "r", "p", Algorithm::Md5)).unwrap();
        let store = CredentialStore::open(&path).unwrap();
        assert!(store.load().has_user(b"bob", b"r"));
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(store.reload().is_err());
        assert!(store.load().has_user(b"bob", b"r"));
        std::fs::write(&path, line("carol", "r", "p", Algorithm::Sha256)).unwrap();
        assert_eq!(store.reload().unwrap(), 1);
        assert!(!store.load().has_user(b"bob", b"r"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
