//! [`ServeError`].

/// Why serving an MCP session failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The client did not complete the MCP handshake (it closed the
    /// stream, or sent something that is not MCP).
    #[error("the MCP session could not start: {0}")]
    Initialize(String),
    /// The session task ended abnormally.
    #[error("the MCP session stopped abnormally: {0}")]
    Stopped(String),
}
