//! Glob matching with `globset`, shared by `glob` and grep's file filter.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::path::VPath;
use crate::types::GlobOutput;

/// A compiled glob pattern.
///
/// Syntax is `globset`'s with `literal_separator` on: `*` and `?` never
/// match `/`, `**` matches any number of directories, `{a,b}` are
/// alternatives, `[ab]` and `[!ab]` are classes, `\` escapes.
///
/// What a pattern is matched against:
///
/// * a pattern without `/` matches the **file name** at any depth
///   (`*.py` finds `/a/b/c.py`);
/// * a pattern with `/` matches the path **relative to the search
///   directory** (`src/*.rs` finds `<dir>/src/lib.rs`, not deeper);
/// * a pattern starting with `/` matches the **absolute** virtual path.
///
/// ```
/// use sandbay_core::{VPath, text::GlobMatcher};
/// let base = VPath::root();
/// let m = GlobMatcher::new("*.py").unwrap();
/// assert!(m.is_match(&base, &VPath::parse("/a/b/c.py").unwrap()));
/// let m = GlobMatcher::new("src/*.rs").unwrap();
/// assert!(m.is_match(&base, &VPath::parse("/src/lib.rs").unwrap()));
/// assert!(!m.is_match(&base, &VPath::parse("/src/x/lib.rs").unwrap()));
/// let m = GlobMatcher::new("**/*.{rs,toml}").unwrap();
/// assert!(m.is_match(&base, &VPath::parse("/Cargo.toml").unwrap()));
/// ```
#[derive(Debug, Clone)]
pub struct GlobMatcher {
    /// A set of one glob: `globset` then matches common shapes (`*.ext`,
    /// `**/*.ext`, literals, suffixes) without running a regex.
    inner: GlobSet,
    target: Target,
    /// For `*<suffix>`, `**/*<suffix>` and `/**/*<suffix>` (a suffix
    /// without special characters): the file name ends with it, which is
    /// the whole test (`*` matches any name, a leading dot included).
    name_suffix: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Target {
    FileName,
    Relative,
    Absolute,
}

impl GlobMatcher {
    /// Compiles a pattern.
    ///
    /// # Errors
    ///
    /// `invalid_argument` for an empty or malformed pattern.
    pub fn new(pattern: &str) -> Result<Self> {
        if pattern.is_empty() {
            return Err(Error::invalid_argument("the glob pattern is empty"));
        }
        if pattern.contains('\0') {
            return Err(Error::invalid_argument("the glob pattern contains NUL"));
        }
        let (target, body) = if let Some(rest) = pattern.strip_prefix('/') {
            (Target::Absolute, rest)
        } else if pattern.contains('/') {
            (Target::Relative, pattern)
        } else {
            (Target::FileName, pattern)
        };
        let body = body.trim_start_matches("./");
        let invalid = |e: globset::Error| {
            Error::invalid_argument(format!("invalid glob pattern {pattern:?}: {}", e.kind()))
        };
        let glob = GlobBuilder::new(body)
            // A file name holds no `/`, so for it the separator rule
            // changes nothing, and without it `*.ext` is an extension test.
            .literal_separator(!matches!(target, Target::FileName))
            .backslash_escape(true)
            .build()
            .map_err(invalid)?;
        let inner = GlobSetBuilder::new().add(glob).build().map_err(invalid)?;
        let name_suffix = match target {
            Target::FileName => body.strip_prefix('*'),
            Target::Relative | Target::Absolute => body.strip_prefix("**/*"),
        }
        .filter(|rest| !rest.contains(['*', '?', '[', ']', '{', '}', '\\', '/']))
        .map(str::to_owned);
        Ok(GlobMatcher {
            inner,
            target,
            name_suffix,
        })
    }

    /// Whether `path`, found while searching below `base`, matches.
    pub fn is_match(&self, base: &VPath, path: &VPath) -> bool {
        if let Some(suffix) = &self.name_suffix {
            // The suffix holds no `/`: the last component ends with it
            // exactly when the whole path does.
            let (raw, suffix) = (path.as_str(), suffix.as_str());
            return match self.target {
                Target::FileName | Target::Absolute => raw.ends_with(suffix),
                Target::Relative if path == base => suffix.is_empty(),
                Target::Relative => path.starts_with(base) && raw.ends_with(suffix),
            };
        }
        let candidate = match self.target {
            Target::FileName => path.file_name().unwrap_or(""),
            Target::Relative => match path.strip_prefix(base) {
                Some(rel) => rel,
                None => return false,
            },
            Target::Absolute => path.relative(),
        };
        self.inner.is_match(candidate)
    }
}

/// Sorts matches by path and applies the limit.
pub fn finish_glob(mut paths: Vec<VPath>, limit: usize) -> GlobOutput {
    paths.sort_unstable();
    paths.dedup();
    let truncated = paths.len() > limit;
    paths.truncate(limit);
    GlobOutput { paths, truncated }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, base: &str, path: &str) -> bool {
        GlobMatcher::new(pattern)
            .unwrap()
            .is_match(&VPath::parse(base).unwrap(), &VPath::parse(path).unwrap())
    }

    #[test]
    fn targets() {
        assert!(m("*.py", "/", "/x.py"));
        assert!(m("*.py", "/", "/a/b/x.py"));
        assert!(!m("*.py", "/", "/a/b/x.pyc"));
        assert!(m("**/*.py", "/", "/x.py"));
        assert!(m("**/*.py", "/a", "/a/b/x.py"));
        assert!(m("b/*.py", "/a", "/a/b/x.py"));
        assert!(!m("b/*.py", "/", "/a/b/x.py"));
        assert!(m("/a/**/x.py", "/a", "/a/b/x.py"));
        assert!(m("./b/*.py", "/a", "/a/b/x.py"));
        assert!(m("*", "/", "/.hidden"));
        assert!(m("{a,b}.txt", "/", "/q/b.txt"));
        assert!(m("[!a].txt", "/", "/b.txt"));
    }

    #[test]
    fn suffix_shortcut_agrees_with_globset() {
        let paths = [
            "/x.py",
            "/a/b/x.py",
            "/a/.py",
            "/a/b/x.pyc",
            "/py",
            "/a/xpy",
            "/a",
        ];
        for pattern in ["*.py", "**/*.py", "/**/*.py", "*", "**/*", "*py"] {
            let fast = GlobMatcher::new(pattern).unwrap();
            assert!(fast.name_suffix.is_some(), "{pattern}");
            let mut slow = fast.clone();
            slow.name_suffix = None;
            for base in ["/", "/a", "/a/b"] {
                let base = VPath::parse(base).unwrap();
                for path in paths {
                    let path = VPath::parse(path).unwrap();
                    assert_eq!(
                        fast.is_match(&base, &path),
                        slow.is_match(&base, &path),
                        "{pattern} {base} {path}"
                    );
                }
            }
        }
        assert!(GlobMatcher::new("*.{py,rs}").unwrap().name_suffix.is_none());
        assert!(GlobMatcher::new("src/*.py").unwrap().name_suffix.is_none());
    }

    #[test]
    fn errors() {
        assert_eq!(
            GlobMatcher::new("").unwrap_err().code().as_str(),
            "invalid_argument"
        );
        assert_eq!(
            GlobMatcher::new("a[").unwrap_err().code().as_str(),
            "invalid_argument"
        );
        assert_eq!(
            GlobMatcher::new("{a").unwrap_err().code().as_str(),
            "invalid_argument"
        );
    }

    #[test]
    fn finish_sorts_and_limits() {
        let ps = ["/b", "/a-c", "/a/b"]
            .map(|s| VPath::parse(s).unwrap())
            .to_vec();
        let out = finish_glob(ps, 2);
        assert_eq!(
            out.paths.iter().map(VPath::as_str).collect::<Vec<_>>(),
            ["/a-c", "/a/b"]
        );
        assert!(out.truncated);
    }
}
