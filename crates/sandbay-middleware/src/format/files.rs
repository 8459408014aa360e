//! `write_file`, `edit_file` and `delete` texts.

use sandbay_core::VPath;

use super::{count, line_count};

/// `Wrote 12 bytes (2 lines) to /a.txt.`
pub(crate) fn wrote(path: &VPath, content: &str) -> String {
    if content.is_empty() {
        return format!("Wrote an empty file to {path}.");
    }
    format!(
        "Wrote {} ({}) to {path}.",
        count(content.len(), "byte", "bytes"),
        count(line_count(content), "line", "lines"),
    )
}

/// `Replaced 1 occurrence in /a.txt.`
pub(crate) fn edited(path: &VPath, replacements: usize) -> String {
    format!(
        "Replaced {} in {path}.",
        count(replacements, "occurrence", "occurrences")
    )
}

/// `Deleted /a.txt.` or, for a directory, says that its content went too.
pub(crate) fn deleted(path: &VPath, was_dir: bool) -> String {
    if was_dir {
        format!("Deleted the directory {path} and everything in it.")
    } else {
        format!("Deleted {path}.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        let p = VPath::parse("/a.txt").unwrap();
        assert_eq!(wrote(&p, ""), "Wrote an empty file to /a.txt.");
        assert_eq!(wrote(&p, "x"), "Wrote 1 byte (1 line) to /a.txt.");
        assert_eq!(
            wrote(&p, "hello\nworld\n"),
            "Wrote 12 bytes (2 lines) to /a.txt."
        );
        assert_eq!(edited(&p, 1), "Replaced 1 occurrence in /a.txt.");
        assert_eq!(edited(&p, 3), "Replaced 3 occurrences in /a.txt.");
        assert_eq!(deleted(&p, false), "Deleted /a.txt.");
        assert_eq!(
            deleted(&p, true),
            "Deleted the directory /a.txt and everything in it."
        );
    }
}
