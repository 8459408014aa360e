//! Honest skips: the one place that decides whether a missing capability
//! skips a test or fails it.
//!
//! A test that lacks a capability (no Docker daemon, no namespaces, no
//! root) calls [`skip`] or [`require`]: locally it prints
//! `skipped: <reason>` and returns, and `cargo xtask test` counts it as
//! skipped (it reads the line from the test's captured output), never as
//! passed. Under CI ([`in_ci`]: `CI` set to `true` or `1`) the same call
//! panics, so a required capability that is missing fails the run.

use std::fmt::Display;

/// The prefix of the line a skipped test prints; `cargo xtask test` counts
/// the tests whose output has such a line as skipped.
pub const SKIP_PREFIX: &str = "skipped: ";

/// Whether the tests run in CI (`CI` set to `true` or `1`), where nothing
/// may be skipped. Every skip helper of the workspace reads it here.
pub fn in_ci() -> bool {
    ci_value(std::env::var("CI").ok().as_deref())
}

/// Whether a value of `CI` means "under CI".
pub fn ci_value(value: Option<&str>) -> bool {
    matches!(value, Some("true" | "1"))
}

/// Skips the calling test for `reason`: prints `skipped: <reason>`
/// locally; panics under CI.
///
/// # Panics
/// Under CI, always: a required capability is missing.
pub fn skip(reason: impl Display) {
    eprintln!("{}", skip_line(reason, in_ci()));
}

/// The line a skip prints, or, under CI (`ci`), a panic.
fn skip_line(reason: impl Display, ci: bool) -> String {
    assert!(!ci, "required under CI but unavailable: {reason}");
    format!("{SKIP_PREFIX}{reason}")
}

/// `true` when `requirement` holds; otherwise [`skip`]s with its error as
/// the reason and returns `false`.
///
/// # Panics
/// Under CI, when the requirement does not hold.
pub fn require<E: Display>(requirement: Result<(), E>) -> bool {
    match requirement {
        Ok(()) => true,
        Err(reason) => {
            skip(reason);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_is_true_or_one() {
        assert!(ci_value(Some("true")));
        assert!(ci_value(Some("1")));
        assert!(!ci_value(Some("false")));
        assert!(!ci_value(Some("0")));
        assert!(!ci_value(Some("")));
        assert!(!ci_value(None));
    }

    #[test]
    fn a_missing_capability_is_a_skip_locally() {
        assert_eq!(skip_line("no mknod", false), "skipped: no mknod");
    }

    #[test]
    #[should_panic(expected = "required under CI but unavailable: no mknod")]
    fn a_missing_capability_fails_under_ci() {
        let _ = skip_line("no mknod", true);
    }
}
