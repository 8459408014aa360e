//! [`DockerClient`]: every call sandbay makes to the Docker daemon, each
//! with a time limit and with daemon errors mapped to typed errors.
//!
//! Nothing outside this module touches `bollard` directly, so the error
//! mapping (404 -> not found, unreachable -> `unavailable`, no host paths
//! in messages) and the timeouts live in one place.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, ContainerSummary, CreateImageInfo};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    ListContainersOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};
use futures_util::{Stream, StreamExt};
use sandbay_core::Error;
use tokio::io::AsyncWrite;

/// Output of an attached container or exec: stdout/stderr frames.
pub(crate) type OutputStream =
    Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
/// Input of an attached container or exec.
pub(crate) type InputSink = Pin<Box<dyn AsyncWrite + Send>>;

/// A failed daemon call, before it is turned into a [`sandbay_core::Error`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The object does not exist (HTTP 404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The object is in a conflicting state (HTTP 409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The daemon cannot be reached, broke the connection, or did not answer in time.
    #[error("{0}")]
    Unavailable(String),
    /// The daemon refused the request.
    #[error("the Docker daemon refused {op}: {message}")]
    Refused {
        /// The operation.
        op: &'static str,
        /// The daemon's message, host paths removed.
        message: String,
    },
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Error {
        match e {
            ApiError::NotFound(what) => Error::Unavailable {
                message: format!("{what} no longer exists (removed, or the daemon restarted)"),
            },
            other => Error::Unavailable {
                message: other.to_string(),
            },
        }
    }
}

/// Replaces every whitespace-separated token that starts with `/` (a
/// path on the daemon's host) with `<path>`.
pub(crate) fn scrub(message: &str) -> String {
    message
        .split(' ')
        .map(|t| {
            let bare = t.trim_start_matches(['"', '\'', '(', '[']);
            if bare.starts_with('/') { "<path>" } else { t }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn map_err(op: &'static str, e: bollard::errors::Error) -> ApiError {
    use bollard::errors::Error as B;
    match e {
        B::DockerResponseServerError {
            status_code: 404,
            message,
        } => ApiError::NotFound(scrub(&message)),
        B::DockerResponseServerError {
            status_code: 409,
            message,
        } => ApiError::Conflict(scrub(&message)),
        B::DockerResponseServerError {
            status_code,
            message,
        } if status_code < 500 => ApiError::Refused {
            op,
            message: scrub(&message),
        },
        B::DockerResponseServerError {
            status_code,
            message,
        } => {
            tracing::warn!(op, status_code, %message, "docker daemon error");
            ApiError::Unavailable(format!(
                "the Docker daemon failed {op} (status {status_code}): {}",
                scrub(&message)
            ))
        }
        B::RequestTimeoutError => {
            ApiError::Unavailable(format!("the Docker daemon did not answer {op} in time"))
        }
        other => {
            tracing::debug!(op, error = %other, "docker daemon unreachable");
            ApiError::Unavailable(format!(
                "cannot reach the Docker daemon ({op}); is it running?"
            ))
        }
    }
}

/// A connection to one Docker daemon.
///
/// Cheap to clone (the underlying HTTP client is shared).
#[derive(Clone)]
pub struct DockerClient {
    docker: Docker,
    host: String,
    local: bool,
    timeout: Duration,
}

impl std::fmt::Debug for DockerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerClient")
            .field("local", &self.local)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The default time limit of a daemon call.
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(30);

impl DockerClient {
    /// Connects to the daemon named by `DOCKER_HOST`, or the local unix
    /// socket, and negotiates the API version.
    ///
    /// # Errors
    /// `unavailable` when the daemon cannot be reached in time.
    pub async fn connect() -> sandbay_core::Result<DockerClient> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        DockerClient::connect_with_host(&host, DEFAULT_API_TIMEOUT).await
    }

    /// Connects to `host` (`unix:///path` or `tcp://host:port`) with a time
    /// limit for every call.
    ///
    /// A unix socket counts as a *local* daemon (it shares this machine's
    /// filesystem, so workspaces can be bind-mounted); TCP as remote.
    ///
    /// # Errors
    /// `invalid_argument` for an unsupported address, `unavailable` when
    /// the daemon cannot be reached in time.
    pub async fn connect_with_host(
        host: &str,
        timeout: Duration,
    ) -> sandbay_core::Result<DockerClient> {
        let secs = timeout.as_secs().max(1);
        let (docker, local) = if let Some(path) = host.strip_prefix("unix://") {
            let d = Docker::connect_with_unix(path, secs, bollard::API_DEFAULT_VERSION);
            (d, true)
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            let d = Docker::connect_with_http(host, secs, bollard::API_DEFAULT_VERSION);
            (d, false)
        } else {
            return Err(Error::invalid_argument(
                "the Docker host must be unix:///path or tcp://host:port",
            ));
        };
        let docker = docker.map_err(|e| {
            tracing::debug!(error = %e, "docker client setup failed");
            Error::Unavailable {
                message: "cannot set up a client for the Docker daemon".into(),
            }
        })?;
        let docker = match tokio::time::timeout(timeout, docker.negotiate_version()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return Err(map_err("version negotiation", e).into()),
            Err(_) => {
                return Err(Error::Unavailable {
                    message: "the Docker daemon did not answer in time".into(),
                });
            }
        };
        Ok(DockerClient {
            docker,
            host: host.to_string(),
            local,
            timeout,
        })
    }

    /// The daemon address this client was made for.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the daemon runs on this machine and sees its files (so
    /// workspaces can be bind-mounted): a unix socket, unless
    /// [`DockerClient::on_this_machine`] said otherwise.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// Declares whether the daemon runs on this machine and sees its
    /// files: for a daemon reached over TCP on the loopback address, for
    /// example. Bind mounts of host paths go wrong with a daemon that
    /// does not.
    #[must_use]
    pub fn on_this_machine(mut self, local: bool) -> DockerClient {
        self.local = local;
        self
    }

    /// The time limit of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Checks that the daemon answers.
    ///
    /// # Errors
    /// `unavailable`.
    pub async fn ping(&self) -> sandbay_core::Result<()> {
        self.call("ping", self.docker.ping()).await?;
        Ok(())
    }

    async fn call<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(|e| map_err(op, e)),
            Err(_) => Err(ApiError::Unavailable(format!(
                "the Docker daemon did not answer {op} within {}s",
                self.timeout.as_secs()
            ))),
        }
    }

    pub(crate) async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, ApiError> {
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        let created = self
            .call(
                "container create",
                self.docker.create_container(Some(options), body),
            )
            .await?;
        Ok(created.id)
    }

    pub(crate) async fn attach_container(
        &self,
        id: &str,
    ) -> Result<(OutputStream, InputSink), ApiError> {
        let options = AttachContainerOptionsBuilder::new()
            .stream(true)
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .build();
        let attached = self
            .call(
                "container attach",
                self.docker.attach_container(id, Some(options)),
            )
            .await?;
        Ok((attached.output, attached.input))
    }

    /// Unpacks a tar archive at `path` in a container (created or running);
    /// files belong to the container's root.
    pub(crate) async fn upload_archive(
        &self,
        id: &str,
        path: &str,
        tar: Vec<u8>,
    ) -> Result<(), ApiError> {
        let options = bollard::query_parameters::UploadToContainerOptionsBuilder::new()
            .path(path)
            .build();
        self.call(
            "archive upload",
            self.docker.upload_to_container(
                id,
                Some(options),
                bollard::body_full(bytes::Bytes::from(tar)),
            ),
        )
        .await
    }

    pub(crate) async fn start_container(&self, id: &str) -> Result<(), ApiError> {
        self.call(
            "container start",
            self.docker
                .start_container(id, None::<bollard::query_parameters::StartContainerOptions>),
        )
        .await
    }

    /// Removes a container and its anonymous volumes; a missing one is fine.
    pub(crate) async fn remove_container(&self, id: &str) -> Result<(), ApiError> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self
            .call(
                "container remove",
                self.docker.remove_container(id, Some(options)),
            )
            .await
        {
            Ok(()) | Err(ApiError::NotFound(_)) => Ok(()),
            // "removal already in progress" (auto-remove raced us)
            Err(ApiError::Conflict(m)) if m.contains("in progress") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Lists containers (running or not) carrying every `key=value` label.
    pub(crate) async fn list_containers(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<ContainerSummary>, ApiError> {
        let filters: HashMap<&str, Vec<String>> = HashMap::from([(
            "label",
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        )]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        self.call("container list", self.docker.list_containers(Some(options)))
            .await
    }

    /// Removes a volume; a missing one is fine.
    pub(crate) async fn remove_volume(&self, name: &str) -> Result<(), ApiError> {
        let options = RemoveVolumeOptionsBuilder::new().force(true).build();
        match self
            .call(
                "volume remove",
                self.docker.remove_volume(name, Some(options)),
            )
            .await
        {
            Ok(()) | Err(ApiError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Lists volumes carrying every `key=value` label: names and labels.
    pub(crate) async fn list_volumes(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<(String, HashMap<String, String>)>, ApiError> {
        let filters: HashMap<&str, Vec<String>> = HashMap::from([(
            "label",
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        )]);
        let options = ListVolumesOptionsBuilder::new().filters(&filters).build();
        let list = self
            .call("volume list", self.docker.list_volumes(Some(options)))
            .await?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.name, v.labels))
            .collect())
    }

    /// Whether an image is present on the daemon.
    pub(crate) async fn image_present(&self, image: &str) -> Result<bool, ApiError> {
        match self
            .call("image inspect", self.docker.inspect_image(image))
            .await
        {
            Ok(_) => Ok(true),
            Err(ApiError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Starts pulling an image; the stream yields the daemon's progress
    /// messages. Each item has its own time limit (the caller applies it).
    pub(crate) fn pull_image(
        &self,
        image: &str,
    ) -> impl Stream<Item = Result<CreateImageInfo, ApiError>> + Send + use<> {
        let (name, tag) = split_reference(image);
        let options = CreateImageOptionsBuilder::new()
            .from_image(name)
            .tag(tag)
            .build();
        self.docker
            .create_image(Some(options), None, None)
            .map(|r| r.map_err(|e| map_err("image pull", e)))
    }
}

/// Splits `repo[:tag]` (a registry port is not a tag) into name and tag.
pub(crate) fn split_reference(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_host_paths() {
        let m = scrub("invalid mount config: bind source path does not exist: /srv/secret/x");
        assert!(!m.contains("/srv"), "{m}");
        assert!(m.ends_with("<path>"));
        assert_eq!(
            scrub("no such image: sandbay/busybox:test"),
            "no such image: sandbay/busybox:test"
        );
        assert!(!scrub("error \"/var/lib/docker\" here").contains("/var"));
    }

    #[test]
    fn references() {
        assert_eq!(split_reference("busybox"), ("busybox", "latest"));
        assert_eq!(
            split_reference("sandbay/busybox:test"),
            ("sandbay/busybox", "test")
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/sandbay/busybox"),
            ("127.0.0.1:5000/sandbay/busybox", "latest")
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/x:v1"),
            ("127.0.0.1:5000/x", "v1")
        );
    }

    #[test]
    fn api_errors_become_unavailable_without_paths() {
        let e: Error = map_err(
            "container create",
            bollard::errors::Error::DockerResponseServerError {
                status_code: 500,
                message: "mkdir /var/lib/docker/x: no space".into(),
            },
        )
        .into();
        assert_eq!(e.code().as_str(), "unavailable");
        assert!(!e.to_string().contains("/var"), "{e}");
        let nf = map_err(
            "exec create",
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message: "No such container: abc".into(),
            },
        );
        assert!(matches!(nf, ApiError::NotFound(_)));
    }
}
