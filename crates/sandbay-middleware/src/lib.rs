//! Agent tools (ls, read_file, write_file, edit_file, glob, grep, execute) over any sandbay backend, with JSON schemas and model-ready text.
#![deny(missing_docs)]
