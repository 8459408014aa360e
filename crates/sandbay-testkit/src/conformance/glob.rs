//! `glob`: pattern targets, syntax, limits, ordering, errors.

use sandbay_core::{ErrorCode, GlobOutput, GlobRequest};

use crate::Fixture;

async fn tree(fx: &Fixture) {
    for path in [
        "/a.py",
        "/src/b.py",
        "/src/deep/c.py",
        "/src/deep/d.txt",
        "/.hidden.py",
        "/src/.h/e.py",
        "/x.rs",
        "/Cargo.toml",
    ] {
        fx.put(path, "x\n").await;
    }
}

async fn glob_at(fx: &Fixture, pattern: &str, base: &str) -> GlobOutput {
    let mut req = GlobRequest::new(pattern);
    req.path = fx.path(base);
    fx.backend
        .glob(&req)
        .await
        .unwrap_or_else(|e| panic!("glob {pattern:?} below {base} failed: {e}"))
}

async fn found(fx: &Fixture, pattern: &str, base: &str) -> Vec<String> {
    glob_at(fx, pattern, base)
        .await
        .paths
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect()
}

/// A pattern without `/` matches the file name at any depth.
pub async fn glob_name_pattern_matches_at_any_depth(fx: &Fixture) {
    tree(fx).await;
    assert_eq!(
        found(fx, "*.py", "/").await,
        [
            "/.hidden.py",
            "/a.py",
            "/src/.h/e.py",
            "/src/b.py",
            "/src/deep/c.py"
        ]
    );
    assert_eq!(found(fx, "c.py", "/").await, ["/src/deep/c.py"]);
}

/// A pattern with `/` matches the path relative to the search directory.
pub async fn glob_relative_pattern_matches_from_base(fx: &Fixture) {
    tree(fx).await;
    assert_eq!(found(fx, "src/*.py", "/").await, ["/src/b.py"]);
    assert_eq!(found(fx, "deep/*.py", "/src").await, ["/src/deep/c.py"]);
    assert!(
        found(fx, "deep/*.py", "/").await.is_empty(),
        "relative to the base, not any depth"
    );
    assert_eq!(found(fx, "./deep/*.txt", "/src").await, ["/src/deep/d.txt"]);
}

/// `*` and `?` never cross a `/`.
pub async fn glob_star_does_not_cross_slash(fx: &Fixture) {
    tree(fx).await;
    assert_eq!(found(fx, "src/*", "/").await, ["/src/b.py"]);
    assert_eq!(found(fx, "src/?.py", "/").await, ["/src/b.py"]);
}

/// A pattern starting with `/` matches the absolute virtual path.
pub async fn glob_absolute_pattern(fx: &Fixture) {
    tree(fx).await;
    assert_eq!(
        found(fx, "/src/deep/*", "/").await,
        ["/src/deep/c.py", "/src/deep/d.txt"]
    );
    assert_eq!(
        found(fx, "/src/deep/*.txt", "/src").await,
        ["/src/deep/d.txt"]
    );
}

/// `**` matches any number of directories, including none.
pub async fn glob_double_star_crosses_directories(fx: &Fixture) {
    tree(fx).await;
    assert_eq!(
        found(fx, "src/**/*.py", "/").await,
        ["/src/.h/e.py", "/src/b.py", "/src/deep/c.py"]
    );
    assert_eq!(found(fx, "**/c.py", "/").await, ["/src/deep/c.py"]);
    assert_eq!(found(fx, "**/*.rs", "/").await, ["/x.rs"]);
    assert_eq!(
        found(fx, "**", "/src/deep").await,
        ["/src/deep/c.py", "/src/deep/d.txt"]
    );
}

/// Braces give alternatives; classes match one character.
pub async fn glob_braces_and_classes(fx: &Fixture) {
    tree(fx).await;
    assert_eq!(
        found(fx, "*.{rs,toml}", "/").await,
        ["/Cargo.toml", "/x.rs"]
    );
    assert_eq!(found(fx, "[ab].py", "/").await, ["/a.py", "/src/b.py"]);
    assert_eq!(
        found(fx, "[!ab].py", "/").await,
        ["/src/.h/e.py", "/src/deep/c.py"]
    );
}

/// Hidden files and directories are included; `*` matches a leading dot.
pub async fn glob_includes_hidden_files(fx: &Fixture) {
    tree(fx).await;
    assert_eq!(found(fx, ".*", "/").await, ["/.hidden.py"]);
    assert_eq!(
        found(fx, "e.py", "/").await,
        ["/src/.h/e.py"],
        "inside a hidden directory"
    );
    assert!(
        found(fx, "*", "/")
            .await
            .contains(&"/.hidden.py".to_owned())
    );
}

/// Only regular files are returned, never directories.
pub async fn glob_returns_regular_files_only(fx: &Fixture) {
    fx.put("/dir.py/inner.py", "x").await;
    fx.put("/lib/x", "x").await;
    assert_eq!(found(fx, "*.py", "/").await, ["/dir.py/inner.py"]);
    assert_eq!(found(fx, "*", "/").await, ["/dir.py/inner.py", "/lib/x"]);
    fx.backend.delete(&fx.path("/lib/x")).await.expect("delete");
    assert_eq!(
        found(fx, "lib", "/").await,
        Vec::<String>::new(),
        "an empty directory is no match"
    );
}

/// `limit` caps the result (first paths in order) and sets `truncated`.
pub async fn glob_limit_sets_truncated(fx: &Fixture) {
    tree(fx).await;
    let mut req = GlobRequest::new("*.py");
    req.limit = 2;
    let out = fx.backend.glob(&req).await.expect("glob");
    let got: Vec<&str> = out.paths.iter().map(|p| p.as_str()).collect();
    assert_eq!(got, ["/.hidden.py", "/a.py"]);
    assert!(out.truncated);
    req.limit = 5;
    let out = fx.backend.glob(&req).await.expect("glob");
    assert_eq!(
        (out.paths.len(), out.truncated),
        (5, false),
        "exactly the limit is not truncated"
    );
}

/// Results are sorted by full path in byte order.
pub async fn glob_results_sorted_by_path(fx: &Fixture) {
    for path in ["/a/x.md", "/a.md", "/a-c/x.md", "/B.md", "/ä.md"] {
        fx.put(path, "").await;
    }
    assert_eq!(
        found(fx, "*.md", "/").await,
        ["/B.md", "/a-c/x.md", "/a.md", "/a/x.md", "/ä.md"]
    );
}

/// A malformed or empty pattern gives `invalid_argument`.
pub async fn glob_bad_pattern_is_invalid_argument(fx: &Fixture) {
    fx.put("/f", "x").await;
    for bad in ["a[", "{a", ""] {
        fx.expect_err(
            fx.backend.glob(&GlobRequest::new(bad)).await,
            ErrorCode::InvalidArgument,
            &format!("glob {bad:?}"),
        );
    }
}

/// A missing search directory gives `not_found`.
pub async fn glob_missing_base_is_not_found(fx: &Fixture) {
    let mut req = GlobRequest::new("*");
    req.path = fx.path("/nowhere");
    fx.expect_err(
        fx.backend.glob(&req).await,
        ErrorCode::NotFound,
        "glob below a missing dir",
    );
}

/// A file as search directory gives `not_a_directory`.
pub async fn glob_file_base_is_not_a_directory(fx: &Fixture) {
    fx.put("/f.txt", "x").await;
    let mut req = GlobRequest::new("*");
    req.path = fx.path("/f.txt");
    fx.expect_err(
        fx.backend.glob(&req).await,
        ErrorCode::NotADirectory,
        "glob below a file",
    );
}

/// No match is an empty, untruncated result.
pub async fn glob_no_match_is_empty(fx: &Fixture) {
    tree(fx).await;
    let out = glob_at(fx, "*.zzz", "/").await;
    assert!(out.paths.is_empty() && !out.truncated, "{out:?}");
    assert!(glob_at(fx, "*", "/src/.h").await.paths.len() == 1);
}
