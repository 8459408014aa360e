//! One container per user for sandbay (bollard): limits, no network, non-root, nothing leaked.
#![deny(missing_docs)]
