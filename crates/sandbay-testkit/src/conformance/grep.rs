//! `grep`: modes, options, limits, ordering, errors.

use sandbay_core::{ErrorCode, GrepLine, GrepMode, GrepOutput, GrepRequest, VPath};

use crate::Fixture;

async fn tree(fx: &Fixture) {
    fx.put("/src/main.py", "import os\nprint('hello')\n").await;
    fx.put("/src/util.py", "def hello():\n    return 'Hello'\n")
        .await;
    fx.put("/docs/readme.md", "Say hello\nand goodbye\n").await;
    fx.put("/notes.txt", "nothing here\n").await;
}

async fn grep(fx: &Fixture, request: &GrepRequest) -> GrepOutput {
    fx.backend
        .grep(request)
        .await
        .unwrap_or_else(|e| panic!("grep {:?} failed: {e}", request.pattern))
}

fn paths(out: &GrepOutput) -> Vec<&str> {
    out.files.iter().map(|f| f.path.as_str()).collect()
}

fn line(line_number: u64, text: &str, is_match: bool) -> GrepLine {
    GrepLine {
        line_number,
        text: text.into(),
        is_match,
    }
}

/// The default mode lists the files with a match, sorted by path, without lines.
pub async fn grep_files_mode_lists_sorted_paths(fx: &Fixture) {
    tree(fx).await;
    let out = grep(fx, &GrepRequest::new("hello")).await;
    assert_eq!(
        paths(&out),
        ["/docs/readme.md", "/src/main.py", "/src/util.py"]
    );
    assert!(
        out.files
            .iter()
            .all(|f| f.lines.is_empty() && f.matches == 1),
        "{out:?}"
    );
    assert!(!out.truncated);
}

/// Content mode gives matching lines with 1-based numbers.
pub async fn grep_content_mode_reports_lines(fx: &Fixture) {
    tree(fx).await;
    let mut req = GrepRequest::new("^print|def ");
    req.mode = GrepMode::Content;
    let out = grep(fx, &req).await;
    assert_eq!(paths(&out), ["/src/main.py", "/src/util.py"]);
    assert_eq!(out.files[0].lines, [line(2, "print('hello')", true)]);
    assert_eq!(out.files[1].lines, [line(1, "def hello():", true)]);
}

/// Count mode counts matching lines (not occurrences) per file.
pub async fn grep_count_mode_counts_lines(fx: &Fixture) {
    fx.put("/c.txt", "x x x\nx\ny\n").await;
    let mut req = GrepRequest::new("x");
    req.mode = GrepMode::Count;
    let out = grep(fx, &req).await;
    assert_eq!(out.files.len(), 1);
    assert_eq!(out.files[0].matches, 2);
    assert!(out.files[0].lines.is_empty());
}

/// Context lines before and after a match are included and marked as context.
pub async fn grep_context_lines_are_marked(fx: &Fixture) {
    fx.put("/ctx.txt", "a\nb\nc\nd\ne\nb\n").await;
    let mut req = GrepRequest::new("b");
    req.mode = GrepMode::Content;
    req.before = 1;
    req.after = 1;
    let out = grep(fx, &req).await;
    let want = [
        line(1, "a", false),
        line(2, "b", true),
        line(3, "c", false),
        line(5, "e", false),
        line(6, "b", true),
    ];
    assert_eq!(out.files[0].lines, want);
    assert_eq!(out.files[0].matches, 2);
}

/// A literal search treats regex characters as text.
pub async fn grep_literal_treats_pattern_as_text(fx: &Fixture) {
    fx.put("/x", "abc\n").await;
    fx.put("/y", "a.c\n").await;
    let mut req = GrepRequest::new("a.c");
    assert_eq!(
        paths(&grep(fx, &req).await),
        ["/x", "/y"],
        "regex: . is any char"
    );
    req.literal = true;
    assert_eq!(paths(&grep(fx, &req).await), ["/y"], "literal: . is a dot");
    let mut parens = GrepRequest::new("f(x");
    parens.literal = true;
    fx.put("/code", "call f(x\n").await;
    assert_eq!(paths(&grep(fx, &parens).await), ["/code"]);
}

/// Case-insensitive search matches any case; the default is case-sensitive.
pub async fn grep_case_insensitive(fx: &Fixture) {
    tree(fx).await;
    let mut req = GrepRequest::new("HELLO");
    req.mode = GrepMode::Count;
    assert!(
        grep(fx, &req).await.files.is_empty(),
        "case-sensitive by default"
    );
    req.case_insensitive = true;
    let out = grep(fx, &req).await;
    assert_eq!(
        paths(&out),
        ["/docs/readme.md", "/src/main.py", "/src/util.py"]
    );
    assert_eq!(out.files[2].matches, 2, "util.py has hello and Hello");
}

/// The glob filter restricts the searched files, with the glob rules.
pub async fn grep_glob_filter_limits_files(fx: &Fixture) {
    tree(fx).await;
    let mut req = GrepRequest::new("hello");
    req.glob = Some("*.py".into());
    assert_eq!(
        paths(&grep(fx, &req).await),
        ["/src/main.py", "/src/util.py"]
    );
    req.glob = Some("docs/*".into());
    assert_eq!(paths(&grep(fx, &req).await), ["/docs/readme.md"]);
    req.glob = Some("*.{md,txt}".into());
    assert_eq!(paths(&grep(fx, &req).await), ["/docs/readme.md"]);
}

/// `max_matches` caps matching lines across files and sets `truncated`.
pub async fn grep_max_matches_truncates(fx: &Fixture) {
    fx.put("/a", "x\nx\n").await;
    fx.put("/b", "x\nx\n").await;
    fx.put("/c", "x\n").await;
    let mut req = GrepRequest::new("x");
    req.mode = GrepMode::Content;
    req.max_matches = 3;
    let out = grep(fx, &req).await;
    assert!(out.truncated, "more matches exist than the limit");
    assert_eq!(paths(&out), ["/a", "/b"]);
    assert_eq!(out.files.iter().map(|f| f.matches).sum::<usize>(), 3);
    assert_eq!(out.files[1].lines, [line(1, "x", true)]);
    req.max_matches = 5;
    let out = grep(fx, &req).await;
    assert!(!out.truncated, "exactly the limit is not truncated");
    assert_eq!(out.files.iter().map(|f| f.matches).sum::<usize>(), 5);
}

/// Files that are not text (NUL byte, invalid UTF-8) are skipped.
pub async fn grep_skips_binary_files(fx: &Fixture) {
    fx.put_bytes("/bin.dat", b"hello\0world\n".to_vec()).await;
    fx.put_bytes("/latin1.txt", b"hello \xff\n".to_vec()).await;
    fx.put("/ok.txt", "hello\n").await;
    let out = grep(fx, &GrepRequest::new("hello")).await;
    assert_eq!(paths(&out), ["/ok.txt"]);
    let mut direct = GrepRequest::new("hello");
    direct.path = fx.path("/bin.dat");
    assert!(
        grep(fx, &direct).await.files.is_empty(),
        "also when named directly"
    );
}

/// An invalid regular expression gives `invalid_argument` that suggests `literal`.
pub async fn grep_bad_regex_is_invalid_argument(fx: &Fixture) {
    fx.put("/f", "(\n").await;
    for bad in ["(", "[z-a]", "a{2,1}"] {
        let err = fx.expect_err(
            fx.backend.grep(&GrepRequest::new(bad)).await,
            ErrorCode::InvalidArgument,
            "grep with a bad regex",
        );
        assert!(
            err.to_string().contains("literal"),
            "the message suggests literal: {err}"
        );
    }
    fx.expect_err(
        fx.backend.grep(&GrepRequest::new("")).await,
        ErrorCode::InvalidArgument,
        "grep with an empty pattern",
    );
}

/// An invalid glob filter gives `invalid_argument`.
pub async fn grep_bad_glob_is_invalid_argument(fx: &Fixture) {
    fx.put("/f", "x\n").await;
    let mut req = GrepRequest::new("x");
    req.glob = Some("a[".into());
    fx.expect_err(
        fx.backend.grep(&req).await,
        ErrorCode::InvalidArgument,
        "grep with a bad glob",
    );
}

/// A directory path restricts the search to the files below it.
pub async fn grep_below_path_only(fx: &Fixture) {
    tree(fx).await;
    let mut req = GrepRequest::new("hello");
    req.path = fx.path("/src");
    assert_eq!(
        paths(&grep(fx, &req).await),
        ["/src/main.py", "/src/util.py"]
    );
}

/// A file path searches that file alone.
pub async fn grep_single_file_path(fx: &Fixture) {
    tree(fx).await;
    let mut req = GrepRequest::new("hello");
    req.path = fx.path("/src/main.py");
    req.mode = GrepMode::Content;
    let out = grep(fx, &req).await;
    assert_eq!(paths(&out), ["/src/main.py"]);
    assert_eq!(out.files[0].lines, [line(2, "print('hello')", true)]);
}

/// A missing path gives `not_found`; a path below a file `not_a_directory`.
pub async fn grep_missing_path_is_not_found(fx: &Fixture) {
    fx.put("/f", "x\n").await;
    let mut req = GrepRequest::new("x");
    req.path = fx.path("/missing");
    fx.expect_err(
        fx.backend.grep(&req).await,
        ErrorCode::NotFound,
        "grep of a missing path",
    );
    req.path = fx.path("/f/below");
    fx.expect_err(
        fx.backend.grep(&req).await,
        ErrorCode::NotADirectory,
        "grep below a file",
    );
}

/// Hidden files and directories are searched like any other.
pub async fn grep_includes_hidden_files(fx: &Fixture) {
    fx.put("/.env", "TOKEN=hello\n").await;
    fx.put("/.git/HEAD", "hello ref\n").await;
    fx.put("/plain", "hello\n").await;
    let out = grep(fx, &GrepRequest::new("hello")).await;
    assert_eq!(paths(&out), ["/.env", "/.git/HEAD", "/plain"]);
}

/// Lines of CRLF files are reported without the `\r`.
pub async fn grep_crlf_lines_without_cr(fx: &Fixture) {
    fx.put("/dos.txt", "first\r\nhello there\r\n").await;
    let mut req = GrepRequest::new("there$");
    req.mode = GrepMode::Content;
    let out = grep(fx, &req).await;
    assert_eq!(out.files.len(), 1, "`$` matches before \\r\\n");
    assert_eq!(out.files[0].lines, [line(2, "hello there", true)]);
}

/// Files come in byte order of their full path (`/a-c/x` before `/a/x`).
pub async fn grep_orders_by_full_path(fx: &Fixture) {
    for path in ["/a/x", "/a.txt", "/a-c/x", "/B", "/a/b/c"] {
        fx.put(path, "k\n").await;
    }
    let out = grep(fx, &GrepRequest::new("k")).await;
    assert_eq!(paths(&out), ["/B", "/a-c/x", "/a.txt", "/a/b/c", "/a/x"]);
}

/// No match is an empty result, not an error.
pub async fn grep_no_match_is_empty(fx: &Fixture) {
    tree(fx).await;
    let out = grep(fx, &GrepRequest::new("zebra")).await;
    assert!(out.files.is_empty() && !out.truncated, "{out:?}");
    let empty = grep(
        fx,
        &GrepRequest {
            path: VPath::root(),
            ..GrepRequest::new("z")
        },
    )
    .await;
    assert!(empty.files.is_empty());
}
