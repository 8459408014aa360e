//! Images: presence check and pull with progress events.

use futures_util::StreamExt;
use sandbay_core::{Error, Result};

use crate::client::{ApiError, DockerClient};
use crate::config::PullPolicy;

/// One progress message of a pull, as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullEvent {
    /// The layer or image the message is about, when given.
    pub id: Option<String>,
    /// The daemon's status text (`Pulling fs layer`, `Downloading`, ...).
    pub status: String,
    /// Bytes done so far, when the daemon reports it.
    pub current: Option<u64>,
    /// Total bytes, when the daemon reports it.
    pub total: Option<u64>,
}

/// Makes sure `image` is present on the daemon according to `policy`,
/// pulling it when needed; `progress` sees every pull message.
///
/// # Errors
/// `unavailable` when the image is missing and cannot be pulled (policy
/// [`PullPolicy::Never`], an unknown image, an unreachable registry), with
/// the reason in the message.
pub async fn ensure_image(
    client: &DockerClient,
    image: &str,
    policy: PullPolicy,
    mut progress: impl FnMut(&PullEvent) + Send,
) -> Result<()> {
    let present = client.image_present(image).await?;
    match (policy, present) {
        (PullPolicy::IfMissing, true) | (PullPolicy::Never, true) => Ok(()),
        (PullPolicy::Never, false) => Err(Error::Unavailable {
            message: format!("image {image} is not present and pulling is disabled"),
        }),
        (PullPolicy::IfMissing, false) | (PullPolicy::Always, _) => {
            pull(client, image, &mut progress).await
        }
    }
}

/// Pulls `image`, reporting progress; each message must arrive within the
/// client's time limit.
///
/// # Errors
/// `unavailable` with the daemon's reason.
pub async fn pull(
    client: &DockerClient,
    image: &str,
    progress: &mut (dyn FnMut(&PullEvent) + Send),
) -> Result<()> {
    tracing::info!(image, "pulling image");
    let stream = client.pull_image(image);
    futures_util::pin_mut!(stream);
    loop {
        let item = match tokio::time::timeout(client.timeout(), stream.next()).await {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(_) => {
                return Err(Error::Unavailable {
                    message: format!("pulling {image} stalled: no progress in time"),
                });
            }
        };
        let info = item.map_err(|e| cannot_pull(image, e))?;
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            return Err(Error::Unavailable {
                message: format!(
                    "cannot pull image {image}: {}",
                    crate::client::scrub(&detail)
                ),
            });
        }
        let (current, total) = info
            .progress_detail
            .map(|d| {
                (
                    d.current.and_then(|c| u64::try_from(c).ok()),
                    d.total.and_then(|t| u64::try_from(t).ok()),
                )
            })
            .unwrap_or((None, None));
        progress(&PullEvent {
            id: info.id,
            status: info.status.unwrap_or_default(),
            current,
            total,
        });
    }
    // the stream can end without an error for some failures: check
    if client.image_present(image).await? {
        Ok(())
    } else {
        Err(Error::Unavailable {
            message: format!("cannot pull image {image}: the daemon did not store it"),
        })
    }
}

fn cannot_pull(image: &str, e: ApiError) -> Error {
    let reason = match e {
        ApiError::NotFound(m) | ApiError::Conflict(m) | ApiError::Unavailable(m) => m,
        ApiError::Refused { message, .. } => message,
    };
    Error::Unavailable {
        message: format!("cannot pull image {image}: {reason}"),
    }
}
