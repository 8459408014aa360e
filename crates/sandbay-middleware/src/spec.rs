//! Tool names and [`ToolSpec`]s: name, description and JSON Schema.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::args::{
    DeleteArgs, EditFileArgs, ExecuteArgs, GlobArgs, GrepArgs, LsArgs, ReadFileArgs, WriteFileArgs,
};
use crate::config::ToolConfig;
use crate::describe;

/// The tools, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ToolName {
    /// `ls(path)`: list a directory.
    Ls,
    /// `read_file(file_path, offset, limit)`: read numbered lines.
    ReadFile,
    /// `write_file(file_path, content)`: create or overwrite a file.
    WriteFile,
    /// `edit_file(file_path, old_string, new_string, replace_all)`: replace exact text.
    EditFile,
    /// `delete(file_path)`: remove a file or a directory tree.
    Delete,
    /// `glob(pattern, path)`: find files by name pattern.
    Glob,
    /// `grep(pattern, path, glob, output_mode, ...)`: search file contents.
    Grep,
    /// `execute(command, timeout)`: run a shell command (sandboxes only).
    Execute,
}

impl ToolName {
    /// Every tool, in the order they are offered.
    pub const ALL: [ToolName; 8] = [
        ToolName::Ls,
        ToolName::ReadFile,
        ToolName::WriteFile,
        ToolName::EditFile,
        ToolName::Delete,
        ToolName::Glob,
        ToolName::Grep,
        ToolName::Execute,
    ];

    /// The name the model calls, e.g. `"read_file"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ToolName::Ls => "ls",
            ToolName::ReadFile => "read_file",
            ToolName::WriteFile => "write_file",
            ToolName::EditFile => "edit_file",
            ToolName::Delete => "delete",
            ToolName::Glob => "glob",
            ToolName::Grep => "grep",
            ToolName::Execute => "execute",
        }
    }

    /// Looks a tool up by the name the model used.
    pub fn parse(name: &str) -> Option<ToolName> {
        ToolName::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether the tool changes files (`write_file`, `edit_file`, `delete`).
    pub fn is_mutating(self) -> bool {
        matches!(
            self,
            ToolName::WriteFile | ToolName::EditFile | ToolName::Delete
        )
    }

    /// Whether the tool only looks (`ls`, `read_file`, `glob`, `grep`).
    pub fn is_read_only(self) -> bool {
        matches!(
            self,
            ToolName::Ls | ToolName::ReadFile | ToolName::Glob | ToolName::Grep
        )
    }

    fn raw_schema(self) -> Value {
        match self {
            ToolName::Ls => schema_of::<LsArgs>(),
            ToolName::ReadFile => schema_of::<ReadFileArgs>(),
            ToolName::WriteFile => schema_of::<WriteFileArgs>(),
            ToolName::EditFile => schema_of::<EditFileArgs>(),
            ToolName::Delete => schema_of::<DeleteArgs>(),
            ToolName::Glob => schema_of::<GlobArgs>(),
            ToolName::Grep => schema_of::<GrepArgs>(),
            ToolName::Execute => schema_of::<ExecuteArgs>(),
        }
    }

    /// The spec of this tool: plain JSON Schema, optional arguments not
    /// required.
    pub fn spec(self, config: &ToolConfig) -> ToolSpec {
        let mut parameters = self.raw_schema();
        clean(&mut parameters);
        ToolSpec {
            name: self.as_str().to_owned(),
            description: describe::description(self, config),
            parameters,
        }
    }

    /// The spec for strict function calling: every property required,
    /// optional ones nullable, `additionalProperties: false`, and no
    /// `format`, `$schema`, `title`, `default` or bounds keywords.
    pub fn strict_spec(self, config: &ToolConfig) -> ToolSpec {
        let mut spec = self.spec(config);
        make_strict(&mut spec.parameters);
        spec
    }
}

impl std::fmt::Display for ToolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a model is told about one tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The name the model calls, e.g. `"read_file"`.
    pub name: String,
    /// What the tool does and how to use it well, written for the model.
    pub description: String,
    /// JSON Schema of the arguments (an object schema).
    pub parameters: Value,
}

fn schema_of<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.meta_schema = None;
            s.inline_subschemas = true;
        })
        .into_generator();
    generator.into_root_schema_for::<T>().to_value()
}

/// Removes what a tool schema does not need, and the `null` that schemars
/// adds to `Option` fields (they are simply not required).
fn clean(schema: &mut Value) {
    let Some(root) = schema.as_object_mut() else {
        return;
    };
    for key in ["$schema", "title", "format", "description"] {
        root.remove(key);
    }
    if let Some(Value::Object(props)) = root.get_mut("properties") {
        for prop in props.values_mut() {
            if let Some(p) = prop.as_object_mut() {
                strip_null(p);
                p.remove("format");
                p.remove("default");
            }
        }
    }
    root.insert("additionalProperties".into(), Value::Bool(false));
    if !root.contains_key("required") {
        root.insert("required".into(), Value::Array(Vec::new()));
    }
}

fn strip_null(prop: &mut Map<String, Value>) {
    if let Some(Value::Array(types)) = prop.get("type") {
        let rest: Vec<Value> = types
            .iter()
            .filter(|t| t.as_str() != Some("null"))
            .cloned()
            .collect();
        let single = if rest.len() == 1 {
            rest[0].clone()
        } else {
            Value::Array(rest)
        };
        prop.insert("type".into(), single);
    }
    if let Some(Value::Array(values)) = prop.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
}

fn make_strict(schema: &mut Value) {
    let Some(root) = schema.as_object_mut() else {
        return;
    };
    let required: Vec<String> = root
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    // required ones first, in field order, then the optional ones sorted:
    // the same order whatever map type serde_json was built with
    let mut optional = Vec::new();
    if let Some(Value::Object(props)) = root.get_mut("properties") {
        for (name, prop) in props.iter_mut() {
            if !required.contains(name) {
                optional.push(name.clone());
            }
            let Some(p) = prop.as_object_mut() else {
                continue;
            };
            for key in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] {
                p.remove(key);
            }
            if !required.contains(name) {
                make_nullable(p);
            }
        }
    }
    optional.sort();
    let all = required.into_iter().chain(optional).map(Value::String);
    root.insert("required".into(), Value::Array(all.collect()));
    root.insert("additionalProperties".into(), Value::Bool(false));
}

fn make_nullable(prop: &mut Map<String, Value>) {
    if let Some(Value::String(t)) = prop.get("type").cloned() {
        prop.insert(
            "type".into(),
            Value::Array(vec![Value::String(t), "null".into()]),
        );
    }
    if let Some(Value::Array(values)) = prop.get_mut("enum") {
        values.push(Value::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_round_trip() {
        for t in ToolName::ALL {
            assert_eq!(ToolName::parse(t.as_str()), Some(t));
        }
        assert_eq!(ToolName::parse("cat"), None);
    }

    #[test]
    fn read_file_schema_is_pinned() {
        let spec = ToolName::ReadFile.spec(&ToolConfig::default());
        assert_eq!(
            spec.parameters,
            json!({
                "type": "object",
                "properties": {
                    "file_path": {"type": "string", "description": "Absolute path of the file to read, e.g. `/src/main.py`."},
                    "offset": {"type": "integer", "minimum": 0, "description": "0-based index of the first line to return. Defaults to 0 (the start of the file)."},
                    "limit": {"type": "integer", "minimum": 0, "description": "How many lines to return at most."}
                },
                "required": ["file_path"],
                "additionalProperties": false
            })
        );
    }

    #[test]
    fn strict_grep_schema_is_pinned() {
        let spec = ToolName::Grep.strict_spec(&ToolConfig::default());
        let p = &spec.parameters;
        assert_eq!(p["additionalProperties"], json!(false));
        assert_eq!(
            p["required"],
            json!([
                "pattern",
                "after_context",
                "before_context",
                "case_insensitive",
                "context",
                "glob",
                "literal",
                "max_matches",
                "output_mode",
                "path"
            ])
        );
        assert_eq!(p["properties"]["pattern"]["type"], json!("string"));
        assert_eq!(p["properties"]["path"]["type"], json!(["string", "null"]));
        assert_eq!(
            p["properties"]["max_matches"],
            json!({"type": ["integer", "null"], "description": "Stop after this many matches in all files together: matching lines in content and count modes, matching files in files_with_matches mode."})
        );
        assert_eq!(
            p["properties"]["output_mode"]["enum"],
            json!(["files_with_matches", "content", "count", null])
        );
        assert_eq!(
            p["properties"]["output_mode"]["type"],
            json!(["string", "null"])
        );
    }

    #[test]
    fn strict_specs_have_no_forbidden_keywords() {
        fn walk(v: &Value, path: &str) {
            match v {
                Value::Object(m) => {
                    for (k, v) in m {
                        assert!(
                            !matches!(
                                k.as_str(),
                                "format" | "$schema" | "title" | "default" | "minimum" | "$ref"
                            ),
                            "{path}/{k}"
                        );
                        walk(v, &format!("{path}/{k}"));
                    }
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, path)),
                _ => {}
            }
        }
        for t in ToolName::ALL {
            let spec = t.strict_spec(&ToolConfig::default());
            walk(&spec.parameters, t.as_str());
            let props = spec.parameters["properties"].as_object().unwrap();
            assert_eq!(
                spec.parameters["required"].as_array().unwrap().len(),
                props.len(),
                "{t}"
            );
            for (name, prop) in props {
                assert!(prop["description"].is_string(), "{t}.{name}");
            }
        }
    }

    #[test]
    fn plain_specs_have_no_null_types() {
        for t in ToolName::ALL {
            let spec = t.spec(&ToolConfig::default());
            let text = spec.parameters.to_string();
            assert!(!text.contains("null"), "{t}: {text}");
            assert!(!text.contains("format"), "{t}: {text}");
            assert_eq!(spec.parameters["type"], json!("object"));
        }
    }
}
