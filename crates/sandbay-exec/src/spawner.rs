//! One long-lived thread creates every jailed process.
//!
//! Two reasons: a child's parent-death signal (`PR_SET_PDEATHSIG`) fires
//! when the *thread* that created it exits, and tokio may retire threads
//! (blocking-pool threads, `block_in_place`); a thread that lives as long as
//! the process makes the signal mean "the host process died". And entering
//! a jail's network namespace for the `clone3` then happens on this thread,
//! never on a thread that runs other code.

use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};

use sandbay_core::{Error, Result};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

fn sender() -> Option<&'static Sender<Job>> {
    static SPAWNER: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    SPAWNER
        .get_or_init(|| {
            let (tx, rx) = channel::<Job>();
            std::thread::Builder::new()
                .name("sandbay-exec-spawner".into())
                .spawn(move || {
                    for job in rx {
                        // A panicking job must not take the thread down.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

fn no_thread() -> Error {
    Error::Unavailable {
        message: "the jail could not start: no spawner thread".into(),
    }
}

/// Runs `f` on the spawner thread and waits for its result (async). If the
/// caller goes away first, the result is dropped on the spawner thread
/// (a `RunGuard` then kills its process).
pub(crate) async fn spawn_on<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    sender()
        .ok_or_else(no_thread)?
        .send(job)
        .map_err(|_| no_thread())?;
    rx.await.map_err(|_| no_thread())?
}

/// Runs `f` on the spawner thread and waits for its result (blocking).
pub(crate) fn spawn_on_blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    sender()
        .ok_or_else(no_thread)?
        .send(job)
        .map_err(|_| no_thread())?;
    rx.recv().map_err(|_| no_thread())?
}
