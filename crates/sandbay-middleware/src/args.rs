//! The argument of each tool, as typed structs.
//!
//! Field doc comments become the parameter descriptions in the JSON
//! Schemas the model sees, so they are written for a model. Every
//! optional field is an `Option`, so a strict caller may send `null`.
//! Unknown fields are refused: a misspelt argument name is a clear error,
//! not a silently ignored value.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use sandbay_core::{Error, Result};

/// Arguments of `ls`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LsArgs {
    /// Absolute path of the directory to list, e.g. `/` or `/src`. Defaults to `/`.
    #[serde(default)]
    pub path: Option<String>,
}

/// Arguments of `read_file`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFileArgs {
    /// Absolute path of the file to read, e.g. `/src/main.py`.
    pub file_path: String,
    /// 0-based index of the first line to return. Defaults to 0 (the start of the file).
    #[serde(default)]
    pub offset: Option<usize>,
    /// How many lines to return at most.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Arguments of `write_file`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteFileArgs {
    /// Absolute path of the file to create or overwrite. Missing parent directories are created.
    pub file_path: String,
    /// The complete new content of the file.
    pub content: String,
}

/// Arguments of `edit_file`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EditFileArgs {
    /// Absolute path of the file to edit.
    pub file_path: String,
    /// The exact text to replace, copied from the file with its whitespace and indentation (without line numbers).
    pub old_string: String,
    /// The text to put in its place. Must differ from old_string.
    pub new_string: String,
    /// Replace every occurrence instead of requiring old_string to occur exactly once. Defaults to false.
    #[serde(default)]
    pub replace_all: Option<bool>,
}

/// Arguments of `delete`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteArgs {
    /// Absolute path of the file or directory to delete. A directory is deleted with everything in it.
    pub file_path: String,
}

/// Arguments of `glob`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GlobArgs {
    /// Glob pattern. Without `/` it matches file names at any depth (`*.py`); with `/` it matches paths relative to `path` (`src/**/*.rs`); `**` spans directories, `{a,b}` gives alternatives.
    pub pattern: String,
    /// Absolute path of the directory to search in. Defaults to `/`.
    #[serde(default)]
    pub path: Option<String>,
}

/// What `grep` reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// Paths of the files with at least one match.
    #[default]
    FilesWithMatches,
    /// Matching lines with their line numbers, and context lines if asked.
    Content,
    /// The number of matching lines per file.
    Count,
}

impl JsonSchema for OutputMode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OutputMode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "enum": ["files_with_matches", "content", "count"],
        })
    }

    fn inline_schema() -> bool {
        true
    }
}

impl From<OutputMode> for sandbay_core::GrepMode {
    fn from(mode: OutputMode) -> Self {
        match mode {
            OutputMode::FilesWithMatches => sandbay_core::GrepMode::FilesWithMatches,
            OutputMode::Content => sandbay_core::GrepMode::Content,
            OutputMode::Count => sandbay_core::GrepMode::Count,
        }
    }
}

/// Arguments of `grep`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrepArgs {
    /// Regular expression to search for (Rust regex syntax, matched within one line), or plain text when `literal` is true.
    pub pattern: String,
    /// Absolute path of the file or directory to search. Defaults to `/`.
    #[serde(default)]
    pub path: Option<String>,
    /// Only search files whose names match this glob, e.g. `*.py` or `*.{ts,tsx}`.
    #[serde(default)]
    pub glob: Option<String>,
    /// `files_with_matches` (default) lists matching files; `content` shows matching lines with line numbers; `count` gives matches per file.
    #[serde(default)]
    pub output_mode: Option<OutputMode>,
    /// Treat the pattern as plain text, not a regular expression. Defaults to false.
    #[serde(default)]
    pub literal: Option<bool>,
    /// Ignore upper and lower case. Defaults to false.
    #[serde(default)]
    pub case_insensitive: Option<bool>,
    /// Lines of context to show before and after each match (content mode), at most 100.
    #[serde(default)]
    pub context: Option<usize>,
    /// Lines of context before each match (content mode), at most 100; overrides `context`.
    #[serde(default)]
    pub before_context: Option<usize>,
    /// Lines of context after each match (content mode), at most 100; overrides `context`.
    #[serde(default)]
    pub after_context: Option<usize>,
    /// Stop after this many matches in all files together: matching lines in content and count modes, matching files in files_with_matches mode.
    #[serde(default)]
    pub max_matches: Option<usize>,
}

/// Arguments of `execute`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteArgs {
    /// Shell command line, run with `sh -c` in the workspace root.
    pub command: String,
    /// Time limit in seconds for the command and everything it starts.
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// Parses the arguments of `tool`, with errors that name the field.
///
/// Accepts a JSON object, a string holding a JSON object (as some model
/// APIs deliver arguments), or `null` for "no arguments".
///
/// # Errors
///
/// `invalid_argument`, e.g. `read_file: missing field `file_path``.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(tool: &str, args: Value) -> Result<T> {
    let args = match args {
        Value::Null => Value::Object(Default::default()),
        Value::String(text) => match serde_json::from_str::<Value>(&text) {
            Ok(value @ Value::Object(_)) => value,
            _ => {
                return Err(Error::invalid_argument(format!(
                    "{tool}: the arguments must be a JSON object"
                )));
            }
        },
        value @ Value::Object(_) => value,
        _ => {
            return Err(Error::invalid_argument(format!(
                "{tool}: the arguments must be a JSON object"
            )));
        }
    };
    serde_path_to_error::deserialize(args).map_err(|err| {
        let field = err.path().to_string();
        let detail = friendly(&err.inner().to_string());
        if field == "." || field.is_empty() || detail.starts_with("unknown field") {
            Error::invalid_argument(format!("{tool}: {detail}"))
        } else {
            Error::invalid_argument(format!("{tool}: field `{field}`: {detail}"))
        }
    })
}

/// Replaces Rust type names in serde messages with words a model knows.
fn friendly(message: &str) -> String {
    message
        .replace("expected usize", "expected a non-negative integer")
        .replace("expected u64", "expected a non-negative integer")
        .replace("expected a boolean", "expected true or false")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err<T: serde::de::DeserializeOwned + std::fmt::Debug>(args: Value) -> String {
        parse::<T>("tool", args).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            err::<ReadFileArgs>(json!({})),
            "invalid argument: tool: missing field `file_path`"
        );
        assert_eq!(
            err::<ReadFileArgs>(json!({"file_path": "/a", "offset": "x"})),
            "invalid argument: tool: field `offset`: invalid type: string \"x\", expected a non-negative integer"
        );
        assert_eq!(
            err::<ReadFileArgs>(json!({"file_path": "/a", "offset": -1})),
            "invalid argument: tool: field `offset`: invalid value: integer `-1`, expected a non-negative integer"
        );
        assert_eq!(
            err::<ReadFileArgs>(json!({"path": "/a"})),
            "invalid argument: tool: unknown field `path`, expected one of `file_path`, `offset`, `limit`"
        );
        assert_eq!(
            err::<EditFileArgs>(
                json!({"file_path": "/a", "old_string": "a", "new_string": "b", "replace_all": "yes"})
            ),
            "invalid argument: tool: field `replace_all`: invalid type: string \"yes\", expected true or false"
        );
        assert_eq!(
            err::<GrepArgs>(json!({"pattern": "a", "output_mode": "lines"})),
            "invalid argument: tool: field `output_mode`: unknown variant `lines`, expected one of `files_with_matches`, `content`, `count`"
        );
        assert_eq!(
            err::<LsArgs>(json!([1])),
            "invalid argument: tool: the arguments must be a JSON object"
        );
        assert_eq!(
            err::<LsArgs>(json!("not json")),
            "invalid argument: tool: the arguments must be a JSON object"
        );
    }

    #[test]
    fn nulls_strings_and_defaults() {
        let a: GrepArgs = parse(
            "grep",
            json!({"pattern": "x", "path": null, "output_mode": null, "literal": null}),
        )
        .unwrap();
        assert_eq!(a.path, None);
        assert_eq!(a.output_mode, None);
        let a: LsArgs = parse("ls", Value::Null).unwrap();
        assert_eq!(a, LsArgs::default());
        let a: ReadFileArgs = parse("read_file", json!("{\"file_path\": \"/a\"}")).unwrap();
        assert_eq!(a.file_path, "/a");
        let a: GrepArgs = parse("grep", json!({"pattern": "x", "output_mode": "count"})).unwrap();
        assert_eq!(a.output_mode, Some(OutputMode::Count));
    }
}
