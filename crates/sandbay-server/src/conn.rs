//! Accepting connections: a cap on open connections, overall and per peer
//! address, and a time limit for a request's header block, all before
//! any credentials are read, then
//! HTTP/1.1 (hyper) over the router; a graceful end that lets requests in
//! progress finish.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::ConnectionLimits;

/// Serves `router` on `listener` until `shutdown` completes, then waits
/// for the connections in progress to finish their requests.
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: &ConnectionLimits,
    app: Arc<crate::routes::App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_open.max(1)));
    let peers = Arc::new(PeerCounts::default());
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_timeout_ms.max(1)))
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // out of descriptors, say: wait a moment rather than spin
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(peer_place) = PeerPlace::take(&peers, peer.ip(), limits.max_per_peer) else {
            // this address holds its share: close at once, unread
            app.metrics.connection_refused();
            drop(stream);
            continue;
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // full: close at once, before reading a byte
            app.metrics.connection_refused();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
            drop(peer_place);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Open connections by peer address.
#[derive(Debug, Default)]
struct PeerCounts(Mutex<HashMap<IpAddr, usize>>);

/// One open connection of a peer, counted until dropped.
struct PeerPlace {
    counts: Arc<PeerCounts>,
    peer: IpAddr,
}

impl PeerPlace {
    /// A place for `peer` if it holds fewer than `max` (`0`: no cap).
    fn take(counts: &Arc<PeerCounts>, peer: IpAddr, max: usize) -> Option<PeerPlace> {
        let mut map = counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(peer).or_insert(0);
        if max != 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerPlace {
            counts: Arc::clone(counts),
            peer,
        })
    }
}

impl Drop for PeerPlace {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.peer);
            }
        }
    }
}
