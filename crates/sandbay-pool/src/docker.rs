//! Pooled Docker sandboxes.

use std::time::Duration;

use async_trait::async_trait;
use sandbay_core::{Error, ExecRequest, Result, Sandbox};
use sandbay_docker::{DockerClient, DockerConfig, DockerSandbox};

use crate::{SandboxFactory, clear_workspace};

/// The owner label pooled containers carry until a user takes them (see
/// [`sandbay_docker::OWNER`]).
pub const POOL_OWNER: &str = "sandbay-pool";

/// Kills every process of the sandbox but PID 1 (the init), the
/// container's main process (the command runner: the oldest process after
/// PID 1, since everything a user starts comes later) and this script's
/// own ancestry, whether it runs on the runner or as a fresh `exec`. It
/// goes round after round, pausing briefly after the first few, until
/// none is left, so a fork bomb's children are caught too; each round
/// stops what it found before killing it, so no parent reacts to a
/// child's death. Then it gives the owner back access to whatever the
/// user locked with `chmod` (symlinks are not followed) and empties
/// `/tmp`. Exits non-zero when processes survive or `/tmp` cannot be
/// emptied.
const RESET_SCRIPT: &str = r#"keep=" 1 "
p=$$
while [ "$p" -gt 1 ] 2>/dev/null; do
  keep="$keep$p "
  { read -r l < "/proc/$p/stat"; } 2>/dev/null || break
  r=${l##*) }; r=${r#* }; p=${r%% *}
done
oldest= oldest_t=
for f in /proc/[0-9]*/stat; do
  { read -r l < "$f"; } 2>/dev/null || continue
  p=${l%% *}
  [ "$p" = 1 ] && continue
  r=${l##*) }
  set -- $r
  t=${20}
  if [ -z "$oldest" ] || [ "$t" -lt "$oldest_t" ]; then oldest=$p oldest_t=$t; fi
done
[ -n "$oldest" ] && keep="$keep$oldest "
i=0
while :; do
  found=
  for f in /proc/[0-9]*/stat; do
    { read -r l < "$f"; } 2>/dev/null || continue
    p=${l%% *}
    case $keep in *" $p "*) continue ;; esac
    r=${l##*) }
    [ "${r%% *}" = Z ] && continue
    found="$found $p"
  done
  [ -z "$found" ] && break
  i=$((i + 1))
  if [ "$i" -gt 100 ]; then
    echo "processes survive:$found" >&2
    exit 1
  fi
  kill -STOP $found 2>/dev/null
  kill -KILL $found 2>/dev/null
  [ "$i" -gt 3 ] && sleep 0.05
done
chmod -R u+rwX /workspace /tmp 2>/dev/null
cd /tmp && rm -rf -- ./* ./.[!.]* ./..?* 2>/dev/null
left=$(ls -A /tmp)
if [ -n "$left" ]; then
  echo "/tmp is not empty" >&2
  exit 1
fi
exit 0"#;

/// Makes [`DockerSandbox`]es for a [`Pool`](crate::Pool): one container
/// each, from one [`DockerConfig`] (with its limits, no network, and the
/// rest of its safe defaults).
///
/// A reset kills every process the previous user left (including ones
/// that left the command's process group with `setsid`), empties `/tmp`,
/// and deletes every file of the workspace through the sandbox's own file
/// API. A container whose reset fails is destroyed, never handed out.
///
/// Containers are labelled with owner [`POOL_OWNER`] unless the config
/// names another owner, so [`sandbay_docker::reap_orphans`] finds what a
/// crashed process left.
///
/// ```no_run
/// use sandbay_docker::{DockerClient, DockerConfig};
/// use sandbay_pool::{DockerFactory, Pool, PoolConfig};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = DockerClient::connect().await?;
/// let factory = DockerFactory::new(client, DockerConfig::default());
/// let pool = Pool::new(factory, PoolConfig::default().with_min_idle(4))?;
/// pool.warm().await?; // four containers ready, no start-up on the request path
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct DockerFactory {
    client: DockerClient,
    config: DockerConfig,
    reset_timeout: Duration,
}

impl DockerFactory {
    /// A factory for containers made with `config` on `client`'s daemon.
    pub fn new(client: DockerClient, config: DockerConfig) -> DockerFactory {
        let config = if config.owner == DockerConfig::default().owner {
            config.with_owner(POOL_OWNER)
        } else {
            config
        };
        DockerFactory {
            client,
            config,
            reset_timeout: Duration::from_secs(20),
        }
    }

    /// Time limit of the in-container part of a reset (default 20 s).
    pub fn with_reset_timeout(mut self, timeout: Duration) -> DockerFactory {
        self.reset_timeout = timeout;
        self
    }

    /// The config every container is made from.
    pub fn config(&self) -> &DockerConfig {
        &self.config
    }
}

#[async_trait]
impl SandboxFactory for DockerFactory {
    type Sandbox = DockerSandbox;

    async fn create(&self) -> Result<DockerSandbox> {
        DockerSandbox::create(&self.client, self.config.clone()).await
    }

    async fn reset(&self, sandbox: &DockerSandbox) -> Result<()> {
        let out = sandbox
            .execute(ExecRequest::new(RESET_SCRIPT).timeout(self.reset_timeout))
            .await?;
        if out.timed_out || out.exit_code != Some(0) {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(Error::Unavailable {
                message: format!(
                    "resetting container {} failed (exit {:?}{}): {why}",
                    sandbox.container_id(),
                    out.exit_code,
                    if out.timed_out { ", timed out" } else { "" },
                ),
            });
        }
        clear_workspace(sandbox).await?;
        Ok(())
    }

    async fn destroy(&self, sandbox: DockerSandbox) -> Result<()> {
        sandbox.shutdown().await
    }
}
