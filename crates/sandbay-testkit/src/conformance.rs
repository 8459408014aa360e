//! Conformance suite: one public async function per behaviour.
