//! What each tool does: parse, call the backend, format.

use std::time::Duration;

use serde_json::Value;

use sandbay_core::text::MAX_CONTEXT_LINES;
use sandbay_core::{
    BackendExt, EditRequest, EntryKind, Error, ErrorCode, ExecRequest, GlobRequest, GrepRequest,
    ReadRequest, VPath,
};

use crate::args::{
    self, DeleteArgs, EditFileArgs, ExecuteArgs, GlobArgs, GrepArgs, LsArgs, ReadFileArgs,
    WriteFileArgs,
};
use crate::budget::fit;
use crate::format::{self, GrepQuery};
use crate::hints;
use crate::scope;
use crate::spec::ToolName;
use crate::toolbox::{Failed, Toolbox, dir_arg, path_arg};

type Outcome = Result<String, Failed>;

/// Runs one tool call.
pub(crate) async fn run(tb: &Toolbox, tool: ToolName, args: Value) -> Outcome {
    let name = tool.as_str();
    match tool {
        ToolName::Ls => ls(tb, args::parse(name, args)?).await,
        ToolName::ReadFile => read_file(tb, args::parse(name, args)?).await,
        ToolName::WriteFile => write_file(tb, args::parse(name, args)?).await,
        ToolName::EditFile => edit_file(tb, args::parse(name, args)?).await,
        ToolName::Delete => delete(tb, args::parse(name, args)?).await,
        ToolName::Glob => glob(tb, args::parse(name, args)?).await,
        ToolName::Grep => grep(tb, args::parse(name, args)?).await,
        ToolName::Execute => execute(tb, args).await,
    }
}

fn with_hint(error: Error, hint: impl Into<String>) -> Failed {
    Failed {
        error,
        hint: Some(hint.into()),
    }
}

/// Hints for the common mistakes of choosing the wrong tool or path.
fn path_hint(error: Error, tb: &Toolbox) -> Failed {
    match error.code() {
        ErrorCode::NotFound => with_hint(error, "use ls or glob to find the right path."),
        ErrorCode::IsDirectory => with_hint(error, "list a directory with ls."),
        ErrorCode::NotADirectory => with_hint(error, "read a file with read_file."),
        ErrorCode::BinaryFile if tb.sandbox.is_some() => with_hint(
            error,
            "read_file shows text only; inspect binary files with execute (for example `od -c FILE | head`).",
        ),
        _ => error.into(),
    }
}

async fn ls(tb: &Toolbox, a: LsArgs) -> Outcome {
    let path = dir_arg(a.path.as_deref())?;
    let entries = tb.backend.ls(&path).await.map_err(|e| path_hint(e, tb))?;
    Ok(fit(tb, ToolName::Ls, format::format_ls(&path, &entries)).await)
}

async fn read_file(tb: &Toolbox, a: ReadFileArgs) -> Outcome {
    let path = path_arg(&a.file_path)?;
    let offset = a.offset.unwrap_or(0);
    let limit = a.limit.unwrap_or(tb.config.read_default_limit);
    if limit == 0 {
        return Err(Error::invalid_argument("read_file: limit must be at least 1").into());
    }
    let window = tb
        .backend
        .read(&path, ReadRequest { offset, limit })
        .await
        .map_err(|e| path_hint(e, tb))?;
    Ok(format::format_read(&path, &window, &tb.config)?)
}

async fn write_file(tb: &Toolbox, a: WriteFileArgs) -> Outcome {
    let path = path_arg(&a.file_path)?;
    tb.backend.write(&path, &a.content).await?;
    Ok(format::wrote(&path, &a.content))
}

async fn edit_file(tb: &Toolbox, a: EditFileArgs) -> Outcome {
    let path = path_arg(&a.file_path)?;
    if !a.old_string.is_empty() && a.old_string == a.new_string {
        return Err(Error::invalid_argument(
            "edit_file: old_string and new_string are the same, so nothing would change",
        )
        .into());
    }
    let request = EditRequest {
        old: a.old_string,
        new: a.new_string,
        replace_all: a.replace_all.unwrap_or(false),
    };
    match tb.backend.edit(&path, &request).await {
        Ok(outcome) => Ok(format::edited(&path, outcome.replacements)),
        Err(error @ Error::NoMatch { .. }) => {
            let hint = match tb.backend.read_to_string(&path).await {
                Ok(content) => {
                    let old = request.old;
                    hints::off_runtime(content.len(), move || hints::no_match_hint(&content, &old))
                        .await
                }
                Err(_) => None,
            };
            let hint = hint.unwrap_or_else(|| {
                "read the file with read_file and copy old_string exactly.".into()
            });
            Err(with_hint(error, hint))
        }
        Err(error @ Error::AmbiguousMatch { .. }) => {
            let hint = match tb.backend.read_to_string(&path).await {
                Ok(content) => {
                    let old = request.old;
                    hints::off_runtime(content.len(), move || hints::ambiguous_hint(&content, &old))
                        .await
                        .flatten()
                }
                Err(_) => None,
            };
            Err(Failed { error, hint })
        }
        Err(error) => Err(path_hint(error, tb)),
    }
}

async fn delete(tb: &Toolbox, a: DeleteArgs) -> Outcome {
    let path = path_arg(&a.file_path)?;
    let was_dir = match tb.backend.stat(&path).await {
        Ok(entry) if entry.kind == EntryKind::Dir => !is_symlink(tb, &path).await,
        _ => false,
    };
    tb.backend.delete(&path).await?;
    Ok(format::deleted(&path, was_dir))
}

/// Whether `path` is itself a symlink (`stat` follows links, `ls` does not).
async fn is_symlink(tb: &Toolbox, path: &VPath) -> bool {
    if !tb.backend.capabilities().symlinks {
        return false;
    }
    let Some(parent) = path.parent() else {
        return false;
    };
    tb.backend.ls(&parent).await.is_ok_and(|entries| {
        entries
            .iter()
            .any(|e| &e.path == path && e.kind == EntryKind::Symlink)
    })
}

/// Whether a search result should be hidden: it lies in the results
/// directory and the search did not start inside it. The searches leave
/// that directory out already (see `scope`); this also drops results
/// saved while a search ran.
fn hidden(tb: &Toolbox, base: &VPath, path: &VPath) -> bool {
    let dir = &tb.config.results_dir;
    !dir.is_root() && path.starts_with(dir) && !base.starts_with(dir)
}

async fn glob(tb: &Toolbox, a: GlobArgs) -> Outcome {
    let base = dir_arg(a.path.as_deref())?;
    let request = GlobRequest {
        pattern: a.pattern.clone(),
        path: base.clone(),
        limit: tb.config.glob_limit,
    };
    let mut output = scope::glob(&*tb.backend, &request, &tb.config.results_dir)
        .await
        .map_err(|e| path_hint(e, tb))?;
    output.paths.retain(|p| !hidden(tb, &base, p));
    let text = format::format_glob(&a.pattern, &base, &output, tb.config.glob_limit);
    Ok(fit(tb, ToolName::Glob, text).await)
}

async fn grep(tb: &Toolbox, a: GrepArgs) -> Outcome {
    let base = dir_arg(a.path.as_deref())?;
    let max_matches = a
        .max_matches
        .unwrap_or(tb.config.grep_default_matches)
        .min(tb.config.grep_max_matches);
    if max_matches == 0 {
        return Err(Error::invalid_argument("grep: max_matches must be at least 1").into());
    }
    for (field, lines) in [
        ("context", a.context),
        ("before_context", a.before_context),
        ("after_context", a.after_context),
    ] {
        if let Some(lines) = lines.filter(|&n| n > MAX_CONTEXT_LINES) {
            return Err(Error::invalid_argument(format!(
                "grep: field `{field}`: at most {MAX_CONTEXT_LINES} lines of context are allowed, not {lines}"
            ))
            .into());
        }
    }
    let mode = a.output_mode.unwrap_or_default().into();
    let context = a.context.unwrap_or(0);
    let glob = a.glob.filter(|g| !g.is_empty());
    let request = GrepRequest {
        pattern: a.pattern.clone(),
        path: base.clone(),
        literal: a.literal.unwrap_or(false),
        case_insensitive: a.case_insensitive.unwrap_or(false),
        glob: glob.clone(),
        mode,
        before: a.before_context.unwrap_or(context),
        after: a.after_context.unwrap_or(context),
        max_matches,
    };
    let mut output = scope::grep(&*tb.backend, &request, &tb.config.results_dir)
        .await
        .map_err(|e| path_hint(e, tb))?;
    output.files.retain(|f| !hidden(tb, &base, &f.path));
    let query = GrepQuery {
        pattern: &a.pattern,
        base: &base,
        glob: glob.as_deref(),
        mode,
        max_matches,
    };
    let text = format::format_grep(&query, &output, tb.config.max_line_chars);
    Ok(fit(tb, ToolName::Grep, text).await)
}

async fn execute(tb: &Toolbox, args: Value) -> Outcome {
    let Some(sandbox) = &tb.sandbox else {
        return Err(with_hint(
            Error::Unsupported {
                operation: "execute",
                backend: tb.backend.name(),
            },
            "this workspace has no shell; use ls, read_file, write_file, edit_file, delete, glob and grep.",
        ));
    };
    let a: ExecuteArgs = args::parse(ToolName::Execute.as_str(), args)?;
    if a.command.trim().is_empty() {
        return Err(Error::invalid_argument("execute: command is empty").into());
    }
    let max = tb.config.max_timeout;
    let (timeout, lowered) = match a.timeout {
        None => (tb.config.default_timeout.min(max), None),
        Some(0) => {
            return Err(
                Error::invalid_argument("execute: timeout must be at least 1 second").into(),
            );
        }
        Some(secs) if Duration::from_secs(secs) > max => (max, Some((secs, max))),
        Some(secs) => (Duration::from_secs(secs), None),
    };
    let output = sandbox
        .execute(ExecRequest::new(a.command).timeout(timeout))
        .await?;
    let text = format::format_exec(&output, timeout, lowered);
    Ok(fit(tb, ToolName::Execute, text).await)
}
