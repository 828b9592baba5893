//! Digest authentication of requests (RFC 3261 §22, RFC 8760): verifying `Authorization` /
//! `Proxy-Authorization` and writing the `WWW-Authenticate` / `Proxy-Authenticate` challenges.
//!
//! What each failure gets (401 for a registrar, 407 for the proxy):
//!
//! | request carries                                    | answer                          |
//! |----------------------------------------------------|---------------------------------|
//! | no credentials, another scheme (regaut01), another realm, an algorithm we do not offer | fresh challenge |
//! | a nonce we did not issue (forged, tampered)        | fresh challenge                 |
//! | an expired nonce, or one from before a restart     | challenge with `stale=true`     |
//! | a replayed nonce count                             | challenge with `stale=true`     |
//! | an unknown user or a wrong password                | fresh challenge (RFC 3665 §2.5) |
//! | missing digest parameters, or a digest-uri that is not the Request-URI | 400         |
//! | valid credentials for another user than the AOR / From | 403 (decided by the caller) |
//!
//! Unknown users and wrong passwords get the same answer, so a caller cannot probe for users.
//! The challenge lists one header per offered algorithm, most preferred first (RFC 8760 §2.4),
//! all with `qop="auth"` and the same nonce.

use std::path::PathBuf;
use std::time::Duration;

use super::credentials::{CredentialStore, Credentials, CredentialsError};
use super::digest::{Algorithm, ResponseInput, expected_response, parse_nc};
use super::nonce::{NcCheck, NonceCheck, NonceCounts, NonceKey};
use super::stats::AuthFailure;
use crate::proxy::writer::Out;
use crate::sip::HeaderName;
use crate::sip::auth::Auth;
use crate::sip::message::Message;

/// Authentication settings.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// The realm of our challenges (and of the credentials file lines that count).
    pub realm: String,
    /// `user:realm:HA1` lines (see [`super::credentials`]); `None`: credentials given in code.
    pub credentials_path: Option<PathBuf>,
    /// Offered algorithms, most preferred first (default SHA-256 then MD5).
    pub algorithms: Vec<Algorithm>,
    /// How long a nonce is accepted.
    pub nonce_ttl: Duration,
    /// Also challenge (407) INVITEs whose From is in one of our domains.
    pub auth_invite: bool,
    /// Keys the nonce MAC: the same on every worker; keep it secret.
    pub secret: Vec<u8>,
    /// Changes on every start (e.g. the start time in seconds): nonces of an earlier run are
    /// stale, so their counts cannot be replayed after the replay table was lost.
    pub generation: u32,
    /// Nonces tracked at once for replay protection.
    pub nc_capacity: usize,
    /// Accept RFC 2069 responses (no qop, hence no nonce count and no replay protection).
    pub allow_rfc2069: bool,
}

impl AuthConfig {
    pub fn new(realm: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        AuthConfig {
            realm: realm.into(),
            credentials_path: None,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            nonce_ttl: Duration::from_secs(300),
            auth_invite: false,
            secret: secret.into(),
            generation: 0,
            nc_capacity: 65_536,
            allow_rfc2069: false,
        }
    }
}

/// The outcome of checking a request's credentials.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Authenticated as this user (raw username parameter).
    Ok { username: &'a [u8] },
    /// Answer with a challenge (`stale` as told).
    Challenge { stale: bool, why: AuthFailure },
    /// Answer 400.
    BadRequest(AuthFailure),
}

/// Verifies digest credentials; shared by every worker.
pub struct Authenticator {
    config: AuthConfig,
    key: NonceKey,
    counts: NonceCounts,
    credentials: CredentialStore,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("realm", &self.config.realm)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Loads `config.credentials_path` (when set).
    pub fn new(config: AuthConfig) -> Result<Authenticator, CredentialsError> {
        let store = match &config.credentials_path {
            Some(p) => CredentialStore::open(p)?,
            None => CredentialStore::new(Credentials::new(), None),
        };
        Ok(Self::with_store(config, store))
    }

    /// With credentials given directly (tests, or loaded elsewhere).
    pub fn with_credentials(config: AuthConfig, credentials: Credentials) -> Authenticator {
        let store = CredentialStore::new(credentials, config.credentials_path.clone());
        Self::with_store(config, store)
    }

    fn with_store(mut config: AuthConfig, credentials: CredentialStore) -> Authenticator {
        if config.algorithms.is_empty() {
            config.algorithms = vec![Algorithm::Sha256, Algorithm::Md5];
        }
        let ttl_ms = config.nonce_ttl.as_millis() as u64;
        Authenticator {
            key: NonceKey::new(&config.secret, &config.realm, config.generation, ttl_ms),
            counts: NonceCounts::new(config.nc_capacity),
            credentials,
            config,
        }
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    pub fn realm(&self) -> &str {
        &self.config.realm
    }

    pub fn credentials(&self) -> &CredentialStore {
        &self.credentials
    }

    /// Re-reads the credentials file (the old credentials stay on error).
    pub fn reload(&self) -> Result<usize, CredentialsError> {
        self.credentials.reload()
    }

    /// The nonce key (tests and tools build valid answers with it).
    pub fn nonce_key(&self) -> &NonceKey {
        &self.key
    }

    /// Whether the credentials know `user` in our realm.
    pub fn knows_user(&self, user: &[u8]) -> bool {
        self.credentials
            .load()
            .has_user(user, self.config.realm.as_bytes())
    }

    /// Checks the `header` credentials (Authorization or Proxy-Authorization) of `msg`.
    pub fn verify<'a>(
        &self,
        msg: &Message<'a, '_>,
        header: HeaderName,
        method: &[u8],
        now_ms: u64,
    ) -> Verdict<'a> {
        let realm = self.config.realm.as_bytes();
        let mut other_scheme = false;
        let mut other_realm = false;
        let mut chosen = None;
        for h in msg.headers_named(header) {
            match Auth::parse(h.value) {
                Ok(a) if a.is_digest() && a.realm() == Some(realm) => {
                    chosen = Some(a);
                    break;
                }
                Ok(a) if a.is_digest() => other_realm = true,
                // Another scheme, or a form the grammar does not allow (token68): no answer we
                // can check, so challenge.
                _ => other_scheme = true,
            }
        }
        let Some(a) = chosen else {
            let why = if other_realm {
                AuthFailure::WrongRealm
            } else if other_scheme {
                AuthFailure::UnknownScheme
            } else {
                AuthFailure::Missing
            };
            return Verdict::Challenge { stale: false, why };
        };
        let Some(alg) =
            Algorithm::from_param(a.algorithm()).filter(|x| self.config.algorithms.contains(x))
        else {
            return Verdict::Challenge {
                stale: false,
                why: AuthFailure::BadAlgorithm,
            };
        };
        let (Some(username), Some(nonce), Some(uri), Some(response)) =
            (a.username(), a.nonce(), a.uri(), a.response())
        else {
            return Verdict::BadRequest(AuthFailure::Malformed);
        };
        if !msg
            .request_uri()
            .is_some_and(|r| r.eq_ignore_ascii_case(uri))
        {
            return Verdict::BadRequest(AuthFailure::UriMismatch);
        }
        let issued_ms = match self.key.check(nonce, now_ms) {
            NonceCheck::Valid { issued_ms } => issued_ms,
            NonceCheck::Stale => {
                return Verdict::Challenge {
                    stale: true,
                    why: AuthFailure::StaleNonce,
                };
            }
            NonceCheck::Invalid => {
                return Verdict::Challenge {
                    stale: false,
                    why: AuthFailure::TamperedNonce,
                };
            }
        };
        let qop = match a.qop() {
            Some(q) if q.eq_ignore_ascii_case(b"auth") => {
                let (Some(nc_raw), Some(cnonce)) = (a.nc(), a.cnonce()) else {
                    return Verdict::BadRequest(AuthFailure::Malformed);
                };
                let Some(nc) = parse_nc(nc_raw) else {
                    return Verdict::BadRequest(AuthFailure::Malformed);
                };
                Some((nc, nc_raw, cnonce, q))
            }
            // auth-int is not offered.
            Some(_) => return Verdict::BadRequest(AuthFailure::Malformed),
            None if self.config.allow_rfc2069 => None,
            None => {
                return Verdict::Challenge {
                    stale: false,
                    why: AuthFailure::QopRequired,
                };
            }
        };
        let creds = self.credentials.load();
        let Some(ha1) = creds.get(username, realm).and_then(|h| h.get(alg)) else {
            return Verdict::Challenge {
                stale: false,
                why: AuthFailure::UnknownUser,
            };
        };
        let expected = expected_response(
            alg,
            ha1,
            &ResponseInput {
                method,
                digest_uri: uri,
                nonce,
                qop: qop.map(|(_, nc_raw, cnonce, q)| (nc_raw, cnonce, q)),
            },
        );
        if !expected.ct_eq_hex(response) {
            return Verdict::Challenge {
                stale: false,
                why: AuthFailure::WrongPassword,
            };
        }
        if let Some((nc, ..)) = qop {
            match self
                .counts
                .record(nonce, issued_ms, nc, now_ms, self.key.ttl_ms())
            {
                NcCheck::Fresh => {}
                NcCheck::Replay => {
                    return Verdict::Challenge {
                        stale: true,
                        why: AuthFailure::Replay,
                    };
                }
                NcCheck::Evicted => {
                    return Verdict::Challenge {
                        stale: true,
                        why: AuthFailure::StaleNonce,
                    };
                }
            }
        }
        Verdict::Ok { username }
    }

    /// Writes the challenge header lines (`proxy`: Proxy-Authenticate, else WWW-Authenticate).
    pub fn put_challenge(&self, out: &mut Out<'_>, proxy: bool, stale: bool, now_ms: u64) {
        let nonce = self.key.issue(now_ms);
        for alg in &self.config.algorithms {
            out.put(if proxy {
                b"Proxy-Authenticate: Digest realm=\""
            } else {
                b"WWW-Authenticate: Digest realm=\""
            });
            out.put_str(&self.config.realm);
            out.put(b"\", nonce=\"");
            out.put(&nonce);
            out.put(b"\", algorithm=");
            out.put_str(alg.name());
            out.put(b", qop=\"auth\"");
            if stale {
                out.put(b", stale=true");
            }
            out.put(b"\r\n");
        }
    }
}
