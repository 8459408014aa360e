//! No input makes a tool panic: random JSON arguments and random paths
//! for every tool give either a result or an `Error: ...` text, on the
//! state backend.

use std::sync::Arc;

use proptest::prelude::*;
use sandbay_middleware::{ToolName, Toolbox};
use serde_json::{Map, Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Paths built from hostile pieces.
fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("..".to_owned()),
            Just(".".to_owned()),
            Just("".to_owned()),
            Just("a".to_owned()),
            Just("\u{0}".to_owned()),
            Just("\\".to_owned()),
            Just("C:".to_owned()),
            Just("é".repeat(130)),
            "[a-z.]{1,8}",
        ],
        0..6,
    )
    .prop_map(|parts| parts.join("/"))
}

/// Arguments shaped like the real ones, with random values.
fn shaped_args() -> impl Strategy<Value = Value> {
    (
        path(),
        ".{0,20}",
        ".{0,20}",
        any::<Option<u32>>(),
        any::<Option<bool>>(),
        json_value(),
    )
        .prop_map(|(p, a, b, n, flag, extra)| {
            json!({
                "file_path": p, "path": p, "content": a, "old_string": a, "new_string": b,
                "pattern": a, "glob": b, "offset": n, "limit": n, "replace_all": flag,
                "literal": flag, "context": n, "max_matches": n, "command": a, "extra": extra,
            })
        })
}

fn check(
    tb: &Toolbox,
    rt: &tokio::runtime::Runtime,
    tool: ToolName,
    args: Value,
) -> Result<(), TestCaseError> {
    let out = rt.block_on(tb.call(tool.as_str(), args));
    if out.is_error {
        prop_assert!(out.text.starts_with("Error: "), "{}", out.text);
        prop_assert!(out.code.is_some());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_json_never_panics(tool in 0usize..8, args in json_value()) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let tb = Toolbox::new(Arc::new(sandbay_state::StateBackend::default()));
        check(&tb, &rt, ToolName::ALL[tool], args)?;
    }

    #[test]
    fn shaped_arguments_never_panic(tool in 0usize..8, args in shaped_args()) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let tb = Toolbox::new(Arc::new(sandbay_state::StateBackend::default()));
        rt.block_on(tb.call("write_file", json!({"file_path": "/a/b.txt", "content": "x\ny\n"})));
        // keep only the tool's own fields (unknown fields are covered above)
        let mut args = args;
        if let Some(m) = args.as_object_mut() {
            let keep: &[&str] = match ToolName::ALL[tool] {
                ToolName::Ls => &["path"],
                ToolName::ReadFile => &["file_path", "offset", "limit"],
                ToolName::WriteFile => &["file_path", "content"],
                ToolName::EditFile => &["file_path", "old_string", "new_string", "replace_all"],
                ToolName::Delete => &["file_path"],
                ToolName::Glob => &["pattern", "path"],
                ToolName::Grep => &["pattern", "path", "glob", "literal", "context", "max_matches"],
                ToolName::Execute => &["command"],
            };
            m.retain(|k, _| keep.contains(&k.as_str()));
        }
        check(&tb, &rt, ToolName::ALL[tool], args)?;
    }
}
