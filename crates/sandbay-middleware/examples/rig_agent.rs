//! An agent loop with rig-core 0.44 over a real sandbay workspace, driven
//! by rig's scripted completion model (the model is the only fake).
//!
//! ```text
//! cargo run -p sandbay-middleware --features rig-test-utils --example rig_agent
//! ```
//!
//! Each turn the model gets the conversation and the tool definitions; the
//! tool calls of its reply run as one batch through the toolbox (parallel
//! calls to one path are refused), and the results go back as a user
//! message, until the model answers in text.

use std::sync::Arc;

use rig_core::completion::{AssistantContent, CompletionRequest};
use rig_core::message::{ToolCall, ToolFunction, ToolName};
use rig_core::test_utils::{MockCompletionModel, MockTurn};
use sandbay_middleware::Toolbox;
use serde_json::{Value, json};

/// One scripted tool call.
fn call(id: &str, name: &str, args: Value) -> AssistantContent {
    let name = ToolName::new(name).expect("a tool name");
    AssistantContent::ToolCall(ToolCall::from_wire(id, ToolFunction::new(name, args)))
}

/// What the scripted model says, turn by turn.
fn script() -> Vec<MockTurn> {
    vec![
        MockTurn::from_contents([call(
            "c1",
            "write_file",
            json!({"file_path": "/notes/todo.md", "content": "- buy milk\n- call bob\n"}),
        )]),
        // two calls in one turn: they run concurrently
        MockTurn::from_contents([
            call("c2", "read_file", json!({"file_path": "/notes/todo.md"})),
            call(
                "c3",
                "grep",
                json!({"pattern": "bob", "output_mode": "content"}),
            ),
        ]),
        // a wrong old_string: the error says what to do
        MockTurn::from_contents([call(
            "c4",
            "edit_file",
            json!({"file_path": "/notes/todo.md", "old_string": "- call bob\n\n", "new_string": "- call Bob\n"}),
        )]),
        // two edits of one file in one turn: the second is refused
        MockTurn::from_contents([
            call(
                "c5",
                "edit_file",
                json!({"file_path": "/notes/todo.md", "old_string": "buy milk", "new_string": "buy oat milk"}),
            ),
            call(
                "c6",
                "edit_file",
                json!({"file_path": "/notes/todo.md", "old_string": "call bob", "new_string": "call Bob"}),
            ),
        ]),
        MockTurn::from_contents([call(
            "c7",
            "edit_file",
            json!({"file_path": "/notes/todo.md", "old_string": "call bob", "new_string": "call Bob"}),
        )]),
        MockTurn::text("Done: the list now says to buy oat milk and call Bob."),
    ]
}

/// Runs the loop; returns every tool call with its result text, and the
/// model's final answer.
async fn run(
    toolbox: &Toolbox,
    model: &MockCompletionModel,
    max_turns: usize,
) -> (Vec<String>, String) {
    let mut request =
        CompletionRequest::new("Keep my todo list in /notes/todo.md: buy milk, call Bob.")
            .preamble("You work in a sandbay workspace. Use the tools.");
    request.tools = toolbox.rig_definitions();
    let mut log = Vec::new();
    for _ in 0..max_turns {
        let response = model
            .call(request.clone())
            .await
            .expect("the scripted model answers");
        request.chat_history.extend(response.message());
        let calls: Vec<&ToolCall> = response.tool_calls().collect();
        if calls.is_empty() {
            return (log, response.text());
        }
        let answer = toolbox.answer_rig_calls(calls.iter().copied()).await;
        if let rig_core::message::Message::User { content } = &answer {
            for (call, item) in calls.iter().zip(content) {
                if let rig_core::message::UserContent::ToolResult(result) = item {
                    let text: Vec<String> = result
                        .content
                        .iter()
                        .filter_map(|c| match c {
                            rig_core::message::ToolResultContent::Text(t) => Some(t.text.clone()),
                            _ => None,
                        })
                        .collect();
                    let flag = if result.is_error { " (is_error)" } else { "" };
                    log.push(format!(
                        "{} {}{flag}\n{}",
                        call.function.name.as_str(),
                        Value::Object(call.function.arguments.clone()),
                        text.join("\n")
                    ));
                }
            }
        }
        request.chat_history.push(answer);
    }
    (log, String::from("(no answer within the turn limit)"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let backend = Arc::new(sandbay_state::StateBackend::default());
    let toolbox = Toolbox::new(backend);
    let model = MockCompletionModel::from_turns(script());
    let (log, answer) = run(&toolbox, &model, 10).await;
    for entry in &log {
        println!("> {entry}\n");
    }
    println!("model: {answer}");
    let out = toolbox
        .call("read_file", json!({"file_path": "/notes/todo.md"}))
        .await;
    println!("\n/notes/todo.md:\n{}", out.text);
}
