//! [`ToolOutput`]: what a tool call gives back to the model.

use serde::{Deserialize, Serialize};

use sandbay_core::{Error, ErrorCode};

/// The result of one tool call.
///
/// `text` is what the model reads. A failure is `is_error: true` with a
/// text starting `Error: ` (the message of a [`sandbay_core::Error`],
/// which never names a host path), sometimes followed by a line starting
/// `Hint: `; `code` then holds the stable error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolOutput {
    /// The text for the model.
    pub text: String,
    /// Whether the call failed.
    pub is_error: bool,
    /// The machine code of the failure, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
}

impl ToolOutput {
    /// A successful result.
    pub fn ok(text: impl Into<String>) -> Self {
        ToolOutput {
            text: text.into(),
            is_error: false,
            code: None,
        }
    }

    /// A failure: `Error: <message>`.
    pub fn error(err: &Error) -> Self {
        ToolOutput {
            text: format!("Error: {err}"),
            is_error: true,
            code: Some(err.code()),
        }
    }

    /// A failure with a hint line after the message.
    pub fn error_with_hint(err: &Error, hint: Option<String>) -> Self {
        let mut out = ToolOutput::error(err);
        if let Some(hint) = hint {
            out.text.push_str("\nHint: ");
            out.text.push_str(&hint);
        }
        out
    }
}

impl From<Error> for ToolOutput {
    fn from(err: Error) -> Self {
        ToolOutput::error(&err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbay_core::VPath;

    #[test]
    fn error_texts() {
        let p = VPath::parse("/a").unwrap();
        let out = ToolOutput::error(&Error::NotFound { path: p.clone() });
        assert_eq!(out.text, "Error: /a: no such file or directory");
        assert!(out.is_error);
        assert_eq!(out.code, Some(ErrorCode::NotFound));
        let out = ToolOutput::error_with_hint(&Error::NoMatch { path: p }, Some("look".into()));
        assert_eq!(
            out.text,
            "Error: /a: the text to replace was not found\nHint: look"
        );
        let json = serde_json::to_value(ToolOutput::ok("x")).unwrap();
        assert_eq!(json, serde_json::json!({"text": "x", "is_error": false}));
    }
}
