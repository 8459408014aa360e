//! The rig adapter: tool definitions, DynamicTools and a scripted agent
//! loop over real backends (the model is the only fake).
#![cfg(feature = "rig-test-utils")]

mod common;

use common::Pair;
use rig_core::completion::{AssistantContent, CompletionRequest};
use rig_core::message::{
    Message, ToolCall, ToolFunction, ToolName, ToolResultContent, UserContent,
};
use rig_core::test_utils::{MockCompletionModel, MockTurn};
use rig_core::tool::ToolErrorKind;
use serde_json::{Value, json};

fn call(id: &str, name: &str, args: Value) -> AssistantContent {
    AssistantContent::ToolCall(ToolCall::from_wire(
        id,
        ToolFunction::new(ToolName::new(name).unwrap(), args),
    ))
}

/// The (text, is_error) of every tool result in a message.
fn results(message: &Message) -> Vec<(String, bool)> {
    let Message::User { content } = message else {
        return Vec::new();
    };
    content
        .iter()
        .filter_map(|c| match c {
            UserContent::ToolResult(r) => Some((
                r.content
                    .iter()
                    .map(|c| match c {
                        ToolResultContent::Text(t) => t.text.clone(),
                        other => format!("{other:?}"),
                    })
                    .collect::<String>(),
                r.is_error,
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn definitions_match_the_specs() {
    let w = Pair::new().await;
    let defs = w.state.rig_definitions();
    let specs = w.state.specs();
    assert_eq!(defs.len(), 7);
    for (d, s) in defs.iter().zip(&specs) {
        assert_eq!(d.name.as_str(), s.name);
        assert_eq!(d.description, s.description);
        assert_eq!(d.parameters, s.parameters);
    }
}

#[tokio::test]
async fn dynamic_tools_keep_the_texts() {
    let w = Pair::new().await;
    for tb in [&w.state, &w.fs] {
        let tools = tb.rig_tools();
        let write = tools
            .iter()
            .find(|t| t.name().as_str() == "write_file")
            .unwrap();
        let out = write
            .execute(json!({"file_path": "/a.txt", "content": "hi\n"}))
            .await
            .unwrap();
        assert_eq!(out.as_text(), Some("Wrote 3 bytes (1 line) to /a.txt."));
        let read = tools
            .iter()
            .find(|t| t.name().as_str() == "read_file")
            .unwrap();
        let err = read
            .execute(json!({"file_path": "../x"}))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ToolErrorKind::InvalidArgs);
        assert_eq!(err.code(), Some("invalid_path"));
        assert_eq!(
            err.model_output().as_text(),
            Some("Error: invalid path \"../x\": `..` climbs above the workspace root")
        );
        let err = read
            .execute(json!({"file_path": "/nope"}))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ToolErrorKind::NotFound);
    }
}

#[tokio::test]
async fn scripted_agent_loop() {
    let w = Pair::new().await;
    for tb in [&w.state, &w.fs] {
        let model = MockCompletionModel::from_turns([
            MockTurn::from_contents([call(
                "c1",
                "write_file",
                json!({"file_path": "/todo.md", "content": "- milk\n- bob\n"}),
            )]),
            MockTurn::from_contents([
                call(
                    "c2",
                    "edit_file",
                    json!({"file_path": "/todo.md", "old_string": "milk", "new_string": "oat milk"}),
                ),
                call(
                    "c3",
                    "edit_file",
                    json!({"file_path": "/todo.md", "old_string": "bob", "new_string": "Bob"}),
                ),
                call(
                    "c4",
                    "grep",
                    json!({"pattern": "milk", "output_mode": "count"}),
                ),
            ]),
            MockTurn::text("done"),
        ]);
        let mut request = CompletionRequest::new("make a todo list");
        request.tools = tb.rig_definitions();
        let mut answers = Vec::new();
        let final_text = loop {
            let response = model.call(request.clone()).await.unwrap();
            request.chat_history.extend(response.message());
            if response.tool_calls().next().is_none() {
                break response.text();
            }
            let answer = tb.answer_rig_calls(response.tool_calls()).await;
            answers.push(results(&answer));
            request.chat_history.push(answer);
        };
        assert_eq!(final_text, "done");
        assert_eq!(
            answers,
            vec![
                vec![("Wrote 13 bytes (2 lines) to /todo.md.".to_owned(), false)],
                vec![
                    ("Replaced 1 occurrence in /todo.md.".to_owned(), false),
                    (
                        "Error: invalid argument: another call in this batch (edit_file on /todo.md) already changes /todo.md; \
parallel changes to one path are refused so that none is lost. Repeat this edit_file call on its own once that one has finished"
                            .to_owned(),
                        true
                    ),
                    ("/todo.md:1".to_owned(), false),
                ],
            ]
        );
        // the model saw the tools and, in its last request, every result
        let requests = model.requests();
        assert_eq!(requests.len(), 3);
        let names: Vec<&str> = requests[0].tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ls",
                "read_file",
                "write_file",
                "edit_file",
                "delete",
                "glob",
                "grep"
            ]
        );
        let last = requests[2].chat_history.last().unwrap();
        assert_eq!(results(last), answers[1]);
        let out = tb.call("read_file", json!({"file_path": "/todo.md"})).await;
        assert_eq!(out.text, "     1\t- oat milk\n     2\t- bob");
    }
}
