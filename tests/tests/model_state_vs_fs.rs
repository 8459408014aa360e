//! Model test: random operation sequences on the state backend and on the
//! disk backend (over a real temp dir) give equal results, errors
//! included, and equal trees at the end.

use sandbay_fs::FsBackend;
use sandbay_state::{StateBackend, StateConfig};
use sandbay_testkit::{Fixture, model};

async fn state() -> Fixture {
    let config = StateConfig::default();
    Fixture::new(StateBackend::new(config)).limits(config.limits)
}

async fn fs() -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("sandbay-model-")
        .tempdir()
        .expect("temp dir");
    let root = sandbay_fs::open_root(dir.path()).await.expect("open root");
    Fixture::new(FsBackend::new(root))
        .host_root(dir.path())
        .guard(dir)
}

#[test]
fn state_and_fs_agree_on_random_sequences() {
    model::check(64, || async { (state().await, fs().await) });
}

#[test]
fn state_agrees_with_itself() {
    // The model runner itself: two independent state workspaces must agree.
    model::check(32, || async { (state().await, state().await) });
}
