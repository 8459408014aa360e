//! [`VPath`]: the validated virtual path every backend speaks.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest accepted normalised path, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted path component, in bytes (Linux `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// A validated, normalised, absolute virtual POSIX path inside a workspace.
///
/// Paths are parsed once, at the boundary, and every backend receives the
/// same normal form: it starts with `/`, has no empty, `.` or `..`
/// component and no trailing `/` (except the root itself).
///
/// Parsing rules:
///
/// * a relative path means the same path under the root: `a/b` is `/a/b`;
/// * `.` and `..` are resolved lexically; `..` may never climb above `/`,
///   that is an error, not a clamp;
/// * `..` is a *component* rule: `/a..b.txt` is an ordinary name;
/// * refused: the empty string, NUL and other ASCII control characters,
///   backslashes (a Windows separator, ambiguous on POSIX), Windows drive
///   prefixes (`C:`), components over 255 bytes and paths over 4096 bytes.
///
/// ```
/// use sandbay_core::VPath;
///
/// assert_eq!(VPath::parse("src/./lib.rs").unwrap().as_str(), "/src/lib.rs");
/// assert_eq!(VPath::parse("/a/b/../c/").unwrap().as_str(), "/a/c");
/// assert_eq!(VPath::parse("/a..b.txt").unwrap().as_str(), "/a..b.txt");
/// assert!(VPath::parse("/").unwrap().is_root());
///
/// assert!(VPath::parse("/../etc/passwd").is_err());
/// assert!(VPath::parse("a/../../b").is_err());
/// assert!(VPath::parse("bad\0name").is_err());
/// assert!(VPath::parse("C:/Windows").is_err());
/// assert!(VPath::parse("..\\..\\x").is_err());
/// assert!(VPath::parse("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VPath {
    raw: String,
}

/// Why a string is not a valid [`VPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathErrorKind {
    /// The input was empty.
    Empty,
    /// A `..` component would climb above the root.
    EscapesRoot,
    /// The input contains a NUL byte.
    Nul,
    /// The input contains an ASCII control character other than NUL.
    ControlCharacter,
    /// The input contains a backslash.
    Backslash,
    /// The input starts with a Windows drive prefix such as `C:`.
    DrivePrefix,
    /// One component is longer than [`MAX_COMPONENT_BYTES`].
    ComponentTooLong,
    /// The normalised path is longer than [`MAX_PATH_BYTES`].
    TooLong,
}

impl PathErrorKind {
    fn describe(&self) -> &'static str {
        match self {
            PathErrorKind::Empty => "the path is empty",
            PathErrorKind::EscapesRoot => "`..` climbs above the workspace root",
            PathErrorKind::Nul => "the path contains a NUL byte",
            PathErrorKind::ControlCharacter => "the path contains a control character",
            PathErrorKind::Backslash => "the path contains a backslash; use `/` as separator",
            PathErrorKind::DrivePrefix => "Windows drive prefixes are not paths here",
            PathErrorKind::ComponentTooLong => "a path component is longer than 255 bytes",
            PathErrorKind::TooLong => "the path is longer than 4096 bytes",
        }
    }
}

/// A rejected path: what was wrong and the input (shortened for display).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    kind: PathErrorKind,
    input: String,
}

impl PathError {
    fn new(kind: PathErrorKind, input: &str) -> Self {
        // Keep error values small and printable even for hostile input.
        let mut shown: String = input
            .chars()
            .take(120)
            .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
            .collect();
        if input.chars().count() > 120 {
            shown.push('…');
        }
        PathError { kind, input: shown }
    }

    /// What was wrong with the input.
    pub fn kind(&self) -> &PathErrorKind {
        &self.kind
    }

    /// The rejected input, shortened to 120 characters and with control
    /// characters replaced, so it is safe to print.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid path {:?}: {}", self.input, self.kind.describe())
    }
}

impl std::error::Error for PathError {}

fn check_component(component: &str, input: &str) -> Result<(), PathError> {
    if component.len() > MAX_COMPONENT_BYTES {
        return Err(PathError::new(PathErrorKind::ComponentTooLong, input));
    }
    Ok(())
}

impl VPath {
    /// The workspace root, `/`.
    pub fn root() -> VPath {
        VPath { raw: "/".into() }
    }

    /// Parses and normalises untrusted input.
    ///
    /// # Errors
    ///
    /// A [`PathError`] saying which rule the input broke (see the type docs).
    pub fn parse(input: &str) -> Result<VPath, PathError> {
        if input.is_empty() {
            return Err(PathError::new(PathErrorKind::Empty, input));
        }
        for c in input.chars() {
            match c {
                '\0' => return Err(PathError::new(PathErrorKind::Nul, input)),
                '\\' => return Err(PathError::new(PathErrorKind::Backslash, input)),
                c if c.is_ascii_control() => {
                    return Err(PathError::new(PathErrorKind::ControlCharacter, input));
                }
                _ => {}
            }
        }
        let bytes = input.as_bytes();
        if bytes.len() >= 2
            && bytes[0].is_ascii_alphabetic()
            && bytes[1] == b':'
            && (bytes.len() == 2 || bytes[2] == b'/')
        {
            return Err(PathError::new(PathErrorKind::DrivePrefix, input));
        }
        let mut parts: Vec<&str> = Vec::new();
        for component in input.split('/') {
            match component {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(PathError::new(PathErrorKind::EscapesRoot, input));
                    }
                }
                name => {
                    check_component(name, input)?;
                    parts.push(name);
                }
            }
        }
        let mut raw = String::with_capacity(input.len() + 1);
        for part in &parts {
            raw.push('/');
            raw.push_str(part);
        }
        if raw.is_empty() {
            raw.push('/');
        }
        if raw.len() > MAX_PATH_BYTES {
            return Err(PathError::new(PathErrorKind::TooLong, input));
        }
        Ok(VPath { raw })
    }

    /// The normalised path as a string, always starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether this is the root `/`.
    pub fn is_root(&self) -> bool {
        self.raw == "/"
    }

    /// The components, without separators; empty for the root.
    ///
    /// ```
    /// # use sandbay_core::VPath;
    /// let p = VPath::parse("/a/b").unwrap();
    /// assert_eq!(p.components().collect::<Vec<_>>(), ["a", "b"]);
    /// ```
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.raw.split('/').filter(|c| !c.is_empty())
    }

    /// The path relative to the root, without the leading `/` (empty for
    /// the root). Handy for joining onto a directory handle.
    pub fn relative(&self) -> &str {
        &self.raw[1..]
    }

    /// The last component, or `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.is_root() {
            None
        } else {
            self.raw.rsplit('/').next()
        }
    }

    /// The parent directory, or `None` for the root.
    ///
    /// ```
    /// # use sandbay_core::VPath;
    /// let p = VPath::parse("/a/b").unwrap();
    /// assert_eq!(p.parent().unwrap().as_str(), "/a");
    /// assert_eq!(p.parent().unwrap().parent().unwrap().as_str(), "/");
    /// assert!(VPath::root().parent().is_none());
    /// ```
    pub fn parent(&self) -> Option<VPath> {
        if self.is_root() {
            return None;
        }
        let cut = self.raw.rfind('/').unwrap_or(0);
        Some(if cut == 0 {
            VPath::root()
        } else {
            VPath {
                raw: self.raw[..cut].to_owned(),
            }
        })
    }

    /// Joins a relative (or absolute) path onto this one and normalises
    /// the result with the same rules as [`VPath::parse`]. An absolute
    /// `rest` still stays below `self`.
    ///
    /// # Errors
    ///
    /// As [`VPath::parse`]; `..` may not climb above the root.
    pub fn join(&self, rest: &str) -> Result<VPath, PathError> {
        let mut joined = String::with_capacity(self.raw.len() + rest.len() + 1);
        joined.push_str(&self.raw);
        joined.push('/');
        joined.push_str(rest);
        VPath::parse(&joined)
    }

    /// Joins one already validated file name (as found in a directory
    /// listing). Returns `None` if `name` is not a single valid component.
    pub fn child(&self, name: &str) -> Option<VPath> {
        // The rules of `parse` for one component, checked in place: called
        // for every entry of a listing or a walk, it must not re-parse.
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.len() > MAX_COMPONENT_BYTES
            || name
                .bytes()
                .any(|b| b == b'/' || b == b'\\' || b.is_ascii_control())
        {
            return None;
        }
        let sep = usize::from(!self.is_root());
        if self.raw.len() + sep + name.len() > MAX_PATH_BYTES {
            return None;
        }
        let mut raw = String::with_capacity(self.raw.len() + sep + name.len());
        raw.push_str(&self.raw);
        if sep == 1 {
            raw.push('/');
        }
        raw.push_str(name);
        Some(VPath { raw })
    }

    /// Segment-wise prefix test: `/foo/bar` starts with `/foo` but not
    /// with `/fo`.
    ///
    /// ```
    /// # use sandbay_core::VPath;
    /// let p = VPath::parse("/foo/bar").unwrap();
    /// assert!(p.starts_with(&VPath::parse("/foo").unwrap()));
    /// assert!(!p.starts_with(&VPath::parse("/fo").unwrap()));
    /// assert!(p.starts_with(&VPath::root()));
    /// ```
    pub fn starts_with(&self, base: &VPath) -> bool {
        base.is_root()
            || self.raw == base.raw
            || (self.raw.starts_with(&base.raw) && self.raw.as_bytes()[base.raw.len()] == b'/')
    }

    /// This path relative to `base` (no leading `/`), if it lies below it.
    /// The path itself relative to itself is the empty string.
    pub fn strip_prefix(&self, base: &VPath) -> Option<&str> {
        if !self.starts_with(base) {
            return None;
        }
        if base.is_root() {
            return Some(self.relative());
        }
        Some(self.raw[base.raw.len()..].trim_start_matches('/'))
    }
}

impl fmt::Display for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.raw, f)
    }
}

impl AsRef<str> for VPath {
    fn as_ref(&self) -> &str {
        &self.raw
    }
}

impl std::str::FromStr for VPath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VPath::parse(s)
    }
}

impl TryFrom<&str> for VPath {
    type Error = PathError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        VPath::parse(s)
    }
}

impl Serialize for VPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for VPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        VPath::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normal_forms() {
        let cases = [
            ("/", "/"),
            (".", "/"),
            ("./", "/"),
            ("//a//b//", "/a/b"),
            ("a", "/a"),
            ("/a/./b/.", "/a/b"),
            ("/a/b/..", "/a"),
            ("/a/b/../..", "/"),
            ("/...", "/..."),
            ("/a..b.txt", "/a..b.txt"),
            ("/..a", "/..a"),
            ("/ü/日本.txt", "/ü/日本.txt"),
            ("/C:", "/C:"),
        ];
        for (input, want) in cases {
            assert_eq!(
                VPath::parse(input).unwrap().as_str(),
                want,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn rejections() {
        let long_component = "x".repeat(256);
        let long_path = "/abc".repeat(1100);
        let cases: [(&str, PathErrorKind); 11] = [
            ("", PathErrorKind::Empty),
            ("..", PathErrorKind::EscapesRoot),
            ("/..", PathErrorKind::EscapesRoot),
            ("/a/../..", PathErrorKind::EscapesRoot),
            ("a\0b", PathErrorKind::Nul),
            ("a\nb", PathErrorKind::ControlCharacter),
            ("a\\b", PathErrorKind::Backslash),
            ("C:", PathErrorKind::DrivePrefix),
            ("c:/x", PathErrorKind::DrivePrefix),
            (&long_component, PathErrorKind::ComponentTooLong),
            (&long_path, PathErrorKind::TooLong),
        ];
        for (input, kind) in cases {
            let err = VPath::parse(input).unwrap_err();
            assert_eq!(err.kind(), &kind, "input {input:?}");
            assert!(!err.to_string().contains('\0'));
        }
        assert!(VPath::parse(&"x".repeat(255)).is_ok());
    }

    #[test]
    fn helpers() {
        let p = VPath::parse("/a/b/c.txt").unwrap();
        assert_eq!(p.file_name(), Some("c.txt"));
        assert_eq!(p.relative(), "a/b/c.txt");
        assert_eq!(
            p.strip_prefix(&VPath::parse("/a").unwrap()),
            Some("b/c.txt")
        );
        assert_eq!(p.strip_prefix(&p), Some(""));
        assert_eq!(p.strip_prefix(&VPath::parse("/x").unwrap()), None);
        let a = VPath::parse("/a").unwrap();
        assert_eq!(a.child("b").unwrap().as_str(), "/a/b");
        assert!(a.child("..").is_none());
        assert!(a.child("b/c").is_none());
        assert!(a.join("../../x").is_err());
        assert_eq!(a.join("/x").unwrap().as_str(), "/a/x");
    }

    #[test]
    fn child_agrees_with_join() {
        let long = "x".repeat(MAX_COMPONENT_BYTES);
        let too_long = "x".repeat(MAX_COMPONENT_BYTES + 1);
        let deep = VPath::parse(&format!("/{}", ["y"; 2047].join("/"))).unwrap();
        let names = [
            "b", ".", "..", "", "a/b", "a\\b", "a\0b", "a\nb", "a\u{7f}b", "C:", "c:x", "...",
            ".hidden", "é", " ", &long, &too_long,
        ];
        for base in [VPath::root(), VPath::parse("/a").unwrap(), deep] {
            for name in names {
                let slow = base
                    .join(name)
                    .ok()
                    .filter(|j| j.parent().as_ref() == Some(&base));
                assert_eq!(base.child(name), slow, "{base:?} + {name:?}");
            }
            let fill = "z".repeat(MAX_PATH_BYTES.saturating_sub(base.as_str().len() + 1));
            assert_eq!(
                base.child(&fill).is_some(),
                base.join(&fill).is_ok() && fill.len() <= MAX_COMPONENT_BYTES
            );
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let p = VPath::parse("/a/b").unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"/a/b\"");
        assert_eq!(serde_json::from_str::<VPath>(&json).unwrap(), p);
        assert!(serde_json::from_str::<VPath>("\"/../x\"").is_err());
    }

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(".".to_string()),
            Just("..".to_string()),
            Just("".to_string()),
            Just("a".to_string()),
            Just("b..c".to_string()),
            "[a-z.]{1,4}",
        ]
    }

    proptest! {
        /// Parsing is idempotent, the result is normal, and it never
        /// contains a `.` or `..` component.
        #[test]
        fn parse_is_normal_and_idempotent(tokens in proptest::collection::vec(token(), 0..12), absolute in any::<bool>()) {
            let mut input = tokens.join("/");
            if absolute { input.insert(0, '/'); }
            if let Ok(p) = VPath::parse(&input) {
                prop_assert!(p.as_str().starts_with('/'));
                prop_assert!(p.is_root() || !p.as_str().ends_with('/'));
                prop_assert!(!p.as_str().contains("//"));
                prop_assert!(p.components().all(|c| c != "." && c != ".." && !c.is_empty()));
                prop_assert_eq!(VPath::parse(p.as_str()).unwrap(), p.clone());
                // the lexical depth never goes negative
                let mut depth: i64 = 0;
                for c in input.split('/') {
                    match c { "" | "." => {}, ".." => depth -= 1, _ => depth += 1 }
                    prop_assert!(depth >= 0);
                }
            } else {
                // failure only from climbing above the root for these tokens
                let mut depth: i64 = 0;
                let mut escaped = false;
                for c in input.split('/') {
                    match c { "" | "." => {}, ".." => { depth -= 1; if depth < 0 { escaped = true; break; } }, _ => depth += 1 }
                }
                prop_assert!(escaped || input.is_empty());
            }
        }

        /// No input, however hostile, panics the parser.
        #[test]
        fn parse_never_panics(input in ".{0,64}") {
            let _ = VPath::parse(&input);
        }
    }
}
