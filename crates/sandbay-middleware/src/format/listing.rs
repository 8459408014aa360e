//! `ls` and `glob` texts.

use sandbay_core::{DirEntry, EntryKind, GlobOutput, VPath};

use super::count;

/// One entry per line: directories end with `/`, files show their size.
pub(crate) fn format_ls(path: &VPath, entries: &[DirEntry]) -> String {
    if entries.is_empty() {
        return format!("The directory {path} is empty.");
    }
    let lines: Vec<String> = entries
        .iter()
        .map(|e| match e.kind {
            EntryKind::Dir => format!("{}/", e.path),
            EntryKind::File => format!("{} ({})", e.path, count(e.size as usize, "byte", "bytes")),
            EntryKind::Symlink => format!("{} (symlink)", e.path),
            EntryKind::Other => format!("{} (special file, not readable)", e.path),
        })
        .collect();
    lines.join("\n")
}

/// One path per line, with a note when the limit cut the list.
pub(crate) fn format_glob(
    pattern: &str,
    base: &VPath,
    output: &GlobOutput,
    limit: usize,
) -> String {
    if output.paths.is_empty() {
        return format!("No files match {pattern:?} under {base}.");
    }
    let mut text = output
        .paths
        .iter()
        .map(VPath::as_str)
        .collect::<Vec<_>>()
        .join("\n");
    if output.truncated {
        text.push_str(&format!(
            "\n[Only the first {limit} matches are shown; narrow the pattern or the path to see the rest.]"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    #[test]
    fn ls_text() {
        let entries = vec![
            DirEntry {
                path: v("/src"),
                kind: EntryKind::Dir,
                size: 0,
            },
            DirEntry {
                path: v("/a.txt"),
                kind: EntryKind::File,
                size: 12,
            },
            DirEntry {
                path: v("/b"),
                kind: EntryKind::File,
                size: 1,
            },
            DirEntry {
                path: v("/l"),
                kind: EntryKind::Symlink,
                size: 4,
            },
            DirEntry {
                path: v("/p"),
                kind: EntryKind::Other,
                size: 0,
            },
        ];
        assert_eq!(
            format_ls(&v("/"), &entries),
            "/src/\n/a.txt (12 bytes)\n/b (1 byte)\n/l (symlink)\n/p (special file, not readable)"
        );
        assert_eq!(format_ls(&v("/e"), &[]), "The directory /e is empty.");
    }

    #[test]
    fn glob_text() {
        let out = GlobOutput {
            paths: vec![v("/a.py"), v("/b/c.py")],
            truncated: true,
        };
        assert_eq!(
            format_glob("*.py", &v("/"), &out, 2),
            "/a.py\n/b/c.py\n[Only the first 2 matches are shown; narrow the pattern or the path to see the rest.]"
        );
        assert_eq!(
            format_glob("*.rs", &v("/src"), &GlobOutput::default(), 2),
            "No files match \"*.rs\" under /src."
        );
    }
}
