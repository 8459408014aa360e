//! [`Lines`]: the lines of a read window in one allocation.

use std::fmt;
use std::ops::Index;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An immutable list of lines stored in one string buffer.
///
/// A read window is the hottest path of an agent's file tools; keeping its
/// lines in one buffer (plus one vector of end offsets) instead of one
/// `String` per line makes reading a 100-line file several times faster.
/// It behaves like a `Vec<String>` for reading: `len`, `iter`, indexing
/// (yielding `str`), comparison with arrays and vectors of strings, and it
/// serialises as a JSON array of strings.
///
/// ```
/// use sandbay_core::Lines;
/// let lines: Lines = ["a", "bc"].into_iter().collect();
/// assert_eq!(lines.len(), 2);
/// assert_eq!(&lines[1], "bc");
/// assert_eq!(lines, ["a", "bc"]);
/// assert_eq!(lines.iter().collect::<Vec<_>>().join("\n"), "a\nbc");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Lines {
    text: String,
    ends: Vec<usize>,
}

impl Lines {
    /// An empty list.
    pub fn new() -> Self {
        Lines::default()
    }

    /// Reserves room for `lines` more lines of `bytes` bytes in total.
    pub fn reserve(&mut self, bytes: usize, lines: usize) {
        self.text.reserve(bytes);
        self.ends.reserve(lines);
    }

    /// Appends one line (which should not contain `\n`).
    pub fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.ends.push(self.text.len());
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no lines.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Total bytes of all lines, without separators.
    pub fn byte_len(&self) -> usize {
        self.text.len()
    }

    /// The line at `index`, if any.
    pub fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)?;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        Some(&self.text[start..end])
    }

    /// The lines in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + DoubleEndedIterator + '_ {
        (0..self.ends.len()).map(move |i| self.get(i).unwrap_or(""))
    }

    /// The lines joined with `sep`.
    pub fn join(&self, sep: &str) -> String {
        let mut out = String::with_capacity(self.text.len() + sep.len() * self.len());
        for (i, line) in self.iter().enumerate() {
            if i > 0 {
                out.push_str(sep);
            }
            out.push_str(line);
        }
        out
    }

    /// The lines as owned strings.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }
}

impl Index<usize> for Lines {
    type Output = str;

    fn index(&self, index: usize) -> &str {
        match self.get(index) {
            Some(line) => line,
            None => panic!("line index {index} out of range for {} lines", self.len()),
        }
    }
}

impl fmt::Debug for Lines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Lines {
    type Item = &'a str;
    type IntoIter = Box<dyn Iterator<Item = &'a str> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<S: AsRef<str>> FromIterator<S> for Lines {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut lines = Lines::new();
        for s in iter {
            lines.push(s.as_ref());
        }
        lines
    }
}

impl<S: AsRef<str>> PartialEq<[S]> for Lines {
    fn eq(&self, other: &[S]) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for Lines {
    fn eq(&self, other: &[S; N]) -> bool {
        *self == other[..]
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for Lines {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == other[..]
    }
}

impl Serialize for Lines {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Lines {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v: Vec<String> = Vec::deserialize(deserializer)?;
        Ok(v.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_vec_of_strings() {
        let mut l = Lines::new();
        assert!(l.is_empty());
        l.push("");
        l.push("x y");
        l.push("");
        assert_eq!(l.len(), 3);
        assert_eq!(l, ["", "x y", ""]);
        assert_eq!(l, vec![String::new(), "x y".into(), String::new()]);
        assert_ne!(l, ["", "x y"]);
        assert_eq!(&l[1], "x y");
        assert_eq!(l.get(3), None);
        assert_eq!(l.join("|"), "|x y|");
        assert_eq!(format!("{l:?}"), r#"["", "x y", ""]"#);
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(json, r#"["","x y",""]"#);
        assert_eq!(serde_json::from_str::<Lines>(&json).unwrap(), l);
    }
}
