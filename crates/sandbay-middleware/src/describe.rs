//! Tool descriptions: what the model reads to decide how to call a tool.
//!
//! They are generated from the [`ToolConfig`], so the limits a model is
//! told about are the limits in force.

use sandbay_core::text::MAX_CONTEXT_LINES;

use crate::config::ToolConfig;
use crate::spec::ToolName;

const PATHS: &str = "Paths are absolute paths inside the workspace, which starts at `/` (for example `/src/app.py`); \
they are not paths of any host machine.";

/// The description of one tool under `config`.
pub(crate) fn description(tool: ToolName, config: &ToolConfig) -> String {
    let limit = config.read_default_limit;
    let chars = config.max_line_chars;
    let results = config.results_dir.as_str();
    match tool {
        ToolName::Ls => format!(
            "List the entries of a directory in the workspace. {PATHS} \
Directories end with `/`, files show their size. \
Use it to find your way around; to find files by name anywhere below a directory, glob is faster."
        ),
        ToolName::ReadFile => format!(
            "Read a text file from the workspace. {PATHS} \
Lines come numbered like `cat -n` (line number, a tab, then the line); the numbers are not part of the file. \
By default up to {limit} lines are returned from the start; for a long file, pass offset (0-based line index) \
and limit to read it in parts, and follow the hint at the end telling where to continue. \
Lines longer than {chars} characters are cut. \
Read a file before you edit it, so that old_string matches it exactly."
        ),
        ToolName::WriteFile => format!(
            "Create a file, or replace the whole content of an existing one. {PATHS} \
Missing parent directories are created. \
To change part of an existing file, prefer edit_file: it is cheaper and cannot lose the rest of the file. \
Read an existing file before overwriting it."
        ),
        ToolName::EditFile => format!(
            "Replace exact text in a file. {PATHS} \
old_string must match the file exactly, including whitespace and indentation; copy it from read_file output \
without the line number and tab in front. It must occur exactly once, so include enough surrounding lines \
to make it unique, or set replace_all to change every occurrence (for example to rename a variable). \
The reply states how many occurrences were replaced. Read the file first; when old_string is not found, \
the error may point at a near match."
        ),
        ToolName::Delete => format!(
            "Delete a file, or a directory with everything in it. {PATHS} \
This cannot be undone; check the path with ls first when unsure."
        ),
        ToolName::Glob => format!(
            "Find files by name pattern, like `**/*.py` or `*.{{json,yaml}}`. {PATHS} \
A pattern without `/` matches file names at any depth; a pattern with `/` matches paths relative to path. \
Returns matching file paths sorted by name, at most {glob}. \
Prefer this to running find or ls in a shell.",
            glob = config.glob_limit
        ),
        ToolName::Grep => format!(
            "Search the contents of text files for a regular expression (Rust regex syntax, matched line by line). {PATHS} \
output_mode files_with_matches (default) lists matching files, content shows matching lines as \
`line_number:text` under each file path (context lines as `line_number-text`, gaps as `--`), \
count gives matching lines per file. Narrow the search with path and glob (for example `*.rs`); \
set literal for plain text with regex characters such as `(` or `.`. At most {default} matches are reported \
unless max_matches says otherwise: matching lines in content and count modes, matching files in files_with_matches mode. \
Context is at most {context} lines before and after a match. Prefer this to running grep or rg in a shell.",
            context = MAX_CONTEXT_LINES,
            default = config.grep_default_matches
        ),
        ToolName::Execute => format!(
            "Run a shell command (`sh -c`) in the workspace. The working directory is the workspace root, \
holding the files the other tools see; in commands, name them relative to it (`src/app.py`, not `/src/app.py`), \
since the shell may see the workspace at a different absolute place. The reply holds standard output, then standard error, \
then the exit code, and says when output was cut or the time limit killed the command. \
timeout is in seconds: {default} by default, at most {max}. \
Use the file tools to read, write, edit and search files, and this tool for everything else \
(running programs, tests, builds). Results longer than the reply limit are saved under {results} \
with a preview.",
            default = config.default_timeout.as_secs(),
            max = config.max_timeout.as_secs(),
        ),
    }
}
