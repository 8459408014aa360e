//! Model test: random operation sequences on the state backend and on the
//! disk backend (over a real temp dir) give equal results, errors
//! included, and equal trees at the end.

use sandbay_core::Limits;
use sandbay_fs::{FsBackend, FsConfig};
use sandbay_state::{StateBackend, StateConfig};
use sandbay_testkit::{Fixture, model};

/// Limits small enough that generated files hit them: edits refused with
/// `too_large`, grep skipping files, read windows split and lines cut.
const TINY: Limits = Limits {
    max_text_file_bytes: 8,
    max_window_bytes: 5,
};

fn state(limits: Limits) -> Fixture {
    let config = StateConfig {
        limits,
        ..StateConfig::default()
    };
    Fixture::new(StateBackend::new(config)).limits(limits)
}

async fn fs(limits: Limits) -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("sandbay-model-")
        .tempdir()
        .expect("temp dir");
    let root = sandbay_fs::open_root(dir.path()).await.expect("open root");
    let config = FsConfig::default().with_limits(limits);
    Fixture::new(FsBackend::with_config(root, config))
        .limits(limits)
        .host_root(dir.path())
        .guard(dir)
}

#[test]
fn state_and_fs_agree_on_random_sequences() {
    model::check(64, || async {
        (state(Limits::default()), fs(Limits::default()).await)
    });
}

#[test]
fn state_and_fs_agree_with_tiny_limits() {
    model::check(64, || async { (state(TINY), fs(TINY).await) });
}

#[test]
fn state_agrees_with_itself() {
    // The model runner itself: two independent state workspaces must agree.
    model::check(32, || async {
        (state(Limits::default()), state(Limits::default()))
    });
}
