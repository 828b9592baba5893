//! Redirect rules (RFC 3261 §8.3): requests for a configured domain or number prefix are
//! answered `302 Moved Temporarily` with the target's Contacts instead of being forwarded.
//!
//! - A **domain** rule answers with the current bindings of the Request-URI's user in the
//!   location service (every live binding, highest q first, with its q); no binding gives 480
//!   (the user is known) or 404.
//! - A **prefix** rule (longest match on the Request-URI's number: a tel URI's number or a SIP
//!   URI's user) answers with its static contacts, in which `{user}` is replaced by the
//!   Request-URI's user (or number); a prefix rule without contacts uses the location service as
//!   a domain rule does.

use std::sync::Arc;

use crate::proxy::numbers::{PrefixError, PrefixTable};
use crate::sip::uri::{Scheme, Uri};

/// One number-prefix rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedirectPrefix {
    pub prefix: String,
    /// Contact URIs for the 302 (`{user}` substituted); empty: the location service.
    pub contacts: Vec<String>,
}

/// Which requests the redirect server answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedirectConfig {
    /// Domains (any case) whose requests are redirected to their users' bindings.
    pub domains: Vec<String>,
    pub prefixes: Vec<RedirectPrefix>,
}

/// The compiled rules.
#[derive(Debug)]
pub struct RedirectTable {
    domains: Vec<String>,
    prefixes: PrefixTable<Arc<[Box<[u8]>]>>,
}

/// Where a matched request is redirected.
#[derive(Debug)]
pub enum RedirectTarget<'t> {
    /// The Request-URI user's bindings.
    Bindings,
    /// These contacts (with `{user}` to substitute).
    Static(&'t [Box<[u8]>]),
}

impl RedirectTable {
    pub fn new(config: &RedirectConfig) -> Result<RedirectTable, PrefixError> {
        let mut prefixes = PrefixTable::new();
        for p in &config.prefixes {
            let contacts: Arc<[Box<[u8]>]> = p
                .contacts
                .iter()
                .map(|c| c.as_bytes().to_vec().into_boxed_slice())
                .collect();
            prefixes.insert(&p.prefix, contacts)?;
        }
        Ok(RedirectTable {
            domains: config
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            prefixes,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.prefixes.is_empty()
    }

    /// The rule a Request-URI falls under, if any (prefix rules first: they are more specific).
    pub fn matches(&self, uri: &Uri<'_>) -> Option<RedirectTarget<'_>> {
        let number = match uri.scheme() {
            Scheme::Tel => uri.number(),
            Scheme::Sip | Scheme::Sips => uri.user(),
            Scheme::Other(_) => None,
        };
        if let Some(n) = number
            && let Some((contacts, _)) = self.prefixes.longest_match(n)
        {
            return Some(if contacts.is_empty() {
                RedirectTarget::Bindings
            } else {
                RedirectTarget::Static(contacts)
            });
        }
        let host = uri.host_raw();
        if uri.scheme().is_sip()
            && self
                .domains
                .iter()
                .any(|d| d.as_bytes().eq_ignore_ascii_case(host))
        {
            return Some(RedirectTarget::Bindings);
        }
        None
    }
}

/// Writes `template` with every `{user}` replaced by `user`.
pub fn put_template(out: &mut crate::proxy::writer::Out<'_>, template: &[u8], user: &[u8]) {
    let mut rest = template;
    while let Some(i) = memchr::memmem::find(rest, b"{user}") {
        out.put(&rest[..i]);
        out.put(user);
        rest = &rest[i + 6..];
    }
    out.put(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_before_domain() {
        let t = RedirectTable::new(&RedirectConfig {
            domains: vec!["Moved.Example.com".into()],
            prefixes: vec![RedirectPrefix {
                prefix: "+1555".into(),
                contacts: vec!["sip:{user}@gw.example.net".into()],
            }],
        })
        .unwrap();
        let u = Uri::parse(b"sip:+15551234@moved.example.com").unwrap();
        assert!(matches!(t.matches(&u), Some(RedirectTarget::Static(_))));
        let u = Uri::parse(b"sip:bob@MOVED.example.com").unwrap();
        assert!(matches!(t.matches(&u), Some(RedirectTarget::Bindings)));
        let u = Uri::parse(b"sip:bob@biloxi.com").unwrap();
        assert!(t.matches(&u).is_none());
        let mut buf = [0u8; 64];
        let mut out = crate::proxy::writer::Out::new(&mut buf);
        put_template(&mut out, b"sip:{user}@gw;x={user}", b"42");
        assert_eq!(out.written(), b"sip:42@gw;x=42");
    }
}
