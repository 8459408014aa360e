//! The backends the demo runs on: state and fs always, more when present.

use std::sync::Arc;

use super::{Target, Workspace};

/// In-memory workspaces from one store.
struct StateTarget {
    store: sandbay_state::StateStore,
}

impl Target for StateTarget {
    fn name(&self) -> String {
        "state".into()
    }

    fn open<'a>(
        &'a self,
        user: &'a str,
        session: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Workspace, String>> + Send + 'a>>
    {
        Box::pin(async move {
            let backend = self.store.session(user, session);
            Ok(Workspace {
                backend,
                sandbox: None,
                host_root: None,
            })
        })
    }
}

/// Host-directory workspaces under a temporary base directory.
struct FsTarget {
    base: tempfile::TempDir,
    provider: sandbay_fs::FsProvider,
}

impl Target for FsTarget {
    fn name(&self) -> String {
        "fs".into()
    }

    fn open<'a>(
        &'a self,
        user: &'a str,
        session: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Workspace, String>> + Send + 'a>>
    {
        Box::pin(async move {
            let backend = self
                .provider
                .session(user, session)
                .await
                .map_err(|e| e.to_string())?;
            let host_root = self
                .provider
                .session_path(user, session)
                .map_err(|e| e.to_string())?;
            Ok(Workspace {
                backend: Arc::new(backend),
                sandbox: None,
                host_root: Some(host_root),
            })
        })
    }

    fn close(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let _ = std::fs::remove_dir_all(self.base.path().join("users"));
        })
    }
}

/// Every target available on this machine, each with an optional note.
pub(crate) async fn available() -> Vec<(Box<dyn Target>, Option<String>)> {
    let mut targets: Vec<(Box<dyn Target>, Option<String>)> = vec![(
        Box::new(StateTarget {
            store: sandbay_state::StateStore::default(),
        }),
        None,
    )];
    match tempfile::Builder::new().prefix("sandbay-demo-").tempdir() {
        Ok(base) => match sandbay_fs::FsProvider::open(base.path().join("users")).await {
            Ok(provider) => targets.push((Box::new(FsTarget { base, provider }), None)),
            Err(e) => eprintln!("demo: fs backend unavailable: {e}"),
        },
        Err(e) => eprintln!("demo: no temporary directory for the fs backend: {e}"),
    }
    targets
}
