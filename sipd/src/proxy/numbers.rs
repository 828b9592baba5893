//! The number-routing table: longest-prefix match on the user part of a Request-URI (E.164
//! digits, an optional leading `+`, visual separators `-.()` ignored as RFC 3966 allows).
//!
//! A digit trie: a lookup walks at most one node per digit with no hashing and no allocation.
//! The table is built once per configuration load and then only read.

/// Trie alphabet: the ten digits and `+`.
const FANOUT: usize = 11;
const NONE: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Node {
    children: [u32; FANOUT],
    /// Index of the value stored at this prefix, `NONE` if none.
    value: u32,
}

impl Node {
    const EMPTY: Node = Node {
        children: [NONE; FANOUT],
        value: NONE,
    };
}

/// Longest-prefix table from digit strings to values of type `T`.
#[derive(Clone, Debug)]
pub struct PrefixTable<T> {
    nodes: Vec<Node>,
    values: Vec<T>,
}

/// Why a prefix was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("prefix {0:?} has a character other than digits, a leading '+' or visual separators")]
    BadCharacter(String),
    #[error("prefix {0:?} is configured twice")]
    Duplicate(String),
    #[error("empty prefix (use the default route instead)")]
    Empty,
}

fn symbol(c: u8, first: bool) -> Result<Option<usize>, ()> {
    match c {
        b'0'..=b'9' => Ok(Some(usize::from(c - b'0'))),
        b'+' if first => Ok(Some(10)),
        // RFC 3966 visual separators carry no meaning.
        b'-' | b'.' | b'(' | b')' => Ok(None),
        _ => Err(()),
    }
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> PrefixTable<T> {
    pub fn new() -> Self {
        PrefixTable {
            nodes: vec![Node::EMPTY],
            values: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Adds a prefix; a duplicate or a malformed prefix is an error (configurations are rejected
    /// whole, never half-applied).
    pub fn insert(&mut self, prefix: &str, value: T) -> Result<(), PrefixError> {
        let mut node = 0usize;
        let mut any = false;
        for (i, &c) in prefix.as_bytes().iter().enumerate() {
            let sym = symbol(c, i == 0).map_err(|()| PrefixError::BadCharacter(prefix.into()))?;
            let Some(sym) = sym else { continue };
            any = true;
            let child = self.nodes[node].children[sym];
            node = if child == NONE {
                self.nodes.push(Node::EMPTY);
                let new = (self.nodes.len() - 1) as u32;
                self.nodes[node].children[sym] = new;
                new as usize
            } else {
                child as usize
            };
        }
        if !any {
            return Err(PrefixError::Empty);
        }
        if self.nodes[node].value != NONE {
            return Err(PrefixError::Duplicate(prefix.into()));
        }
        self.nodes[node].value = self.values.len() as u32;
        self.values.push(value);
        Ok(())
    }

    /// The value of the longest configured prefix of `number`, with the prefix length in symbols
    /// (digits and a leading `+`; visual separators not counted).
    /// `None` if no prefix matches or `number` is not a telephone number (other characters than
    /// digits, a leading `+` and visual separators).
    pub fn longest_match(&self, number: &[u8]) -> Option<(&T, usize)> {
        let mut node = 0usize;
        let mut best = None;
        let mut digits = 0usize;
        for (i, &c) in number.iter().enumerate() {
            let sym = match symbol(c, i == 0) {
                Ok(Some(sym)) => sym,
                Ok(None) => continue,
                Err(()) => return None,
            };
            let child = self.nodes[node].children[sym];
            if child == NONE {
                // Keep validating the rest: "1234abc" is not a number at all.
                if number[i..].iter().any(|&c| symbol(c, false).is_err()) {
                    return None;
                }
                break;
            }
            node = child as usize;
            digits += 1;
            let v = self.nodes[node].value;
            if v != NONE {
                best = Some((v, digits));
            }
        }
        if number.is_empty() {
            return None;
        }
        best.map(|(v, d)| (&self.values[v as usize], d))
    }
}

/// True if `user` looks like a telephone number (what number routing applies to).
pub fn is_phone_number(user: &[u8]) -> bool {
    !user.is_empty()
        && user
            .iter()
            .enumerate()
            .all(|(i, &c)| symbol(c, i == 0).is_ok())
        && user.iter().any(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PrefixTable<&'static str> {
        let mut t = PrefixTable::new();
        t.insert("+49", "de").unwrap();
        t.insert("+4930", "berlin").unwrap();
        t.insert("+1", "nanp").unwrap();
        t.insert("0800", "freephone").unwrap();
        t
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table();
        assert_eq!(t.longest_match(b"+493012345"), Some((&"berlin", 5)));
        assert_eq!(t.longest_match(b"+4989123"), Some((&"de", 3)));
        assert_eq!(t.longest_match(b"+1-212-555-0100"), Some((&"nanp", 2)));
        assert_eq!(t.longest_match(b"08001234"), Some((&"freephone", 4)));
        assert_eq!(t.longest_match(b"+33123"), None);
        assert_eq!(t.longest_match(b"4930"), None, "a '+' prefix needs the '+'");
        assert_eq!(t.longest_match(b"+49abc"), None);
        assert_eq!(t.longest_match(b"alice"), None);
        assert_eq!(t.longest_match(b""), None);
    }

    #[test]
    fn config_errors() {
        let mut t = table();
        assert_eq!(
            t.insert("+49", "again"),
            Err(PrefixError::Duplicate("+49".into()))
        );
        assert_eq!(
            t.insert("49+", "x"),
            Err(PrefixError::BadCharacter("49+".into()))
        );
        assert_eq!(t.insert("--", "x"), Err(PrefixError::Empty));
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn phone_numbers() {
        assert!(is_phone_number(b"+1-212-555-0100"));
        assert!(is_phone_number(b"5551234"));
        assert!(!is_phone_number(b"bob"));
        assert!(!is_phone_number(b"+"));
        assert!(!is_phone_number(b"12+3"));
    }

    proptest::proptest! {
        #[test]
        fn matches_a_linear_scan(prefixes in proptest::collection::hash_set("[0-9]{1,5}", 0..20), number in "[0-9]{0,8}") {
            let mut t = PrefixTable::new();
            for p in &prefixes { t.insert(p, p.clone()).unwrap(); }
            let expect = prefixes.iter().filter(|p| number.starts_with(p.as_str())).max_by_key(|p| p.len());
            proptest::prop_assert_eq!(t.longest_match(number.as_bytes()).map(|(v, _)| v), expect);
        }
    }
}
