//! The shell text sandbay runs inside containers (busybox `sh`), in one
//! place so the protocol can be read as a whole.
//!
//! Every command runs as the leader of its own process group (`setsid`),
//! so killing the group kills the whole tree the command started. The
//! wrapper prints an end marker (see [`super::marker`]) with the exit code
//! on both streams, then kills what is left of its group, so a finished
//! command leaves no background process behind.

/// Runs one command; the runner starts it with `setsid`, so it leads a
/// new session and process group.
///
/// Arguments: token, working directory, command, base64 stdin (may be
/// empty), then the complete environment as `NAME=value` entries.
///
/// The command runs in a subshell of the wrapper (a fork, no `exec`:
/// busybox `exec`s cost most of a command's time here). The wrapper's
/// environment is the runner's, which starts empty but for the base
/// entries, so exporting the given entries gives exactly that environment.
/// `eval` parses the whole text first, so the leading `unset c` hides the
/// wrapper's variable without touching the command.
pub(crate) const WRAPPER: &str = r#"t=$1 w=$2 c=$3 i=$4; shift 4
if cd "$w" 2>/dev/null; then
  if [ -n "$i" ]; then
    printf %s "$i" | base64 -d | (for e; do export "$e"; done; set --; unset t w i e OLDPWD; eval "unset c
$c")
  else
    (for e; do export "$e"; done; set --; unset t w i e OLDPWD; eval "unset c
$c") </dev/null
  fi
  r=$?
else
  r=nodir
fi
printf '\036%s:%s\036' "$t" "$r"; printf '\036%s:%s\036' "$t" "$r" >&2
kill -KILL 0"#;

/// Defines the runner's functions; sent once on the runner's stdin.
///
/// * `__sb_run TOKEN ARGS...` reaps the previous command's wrapper (dead
///   by then), prints a start marker on both streams, so output of an
///   earlier command can never be mistaken for this one's, and starts the
///   wrapper in the background, in its own session. When the process
///   limit is reached the fork fails (the shell goes on) and the end
///   marker says `nofork`.
/// * `__sb_abort TOKEN` kills the current command's group, waits until
///   every member is gone (`__sb_gone`, at most 3 s), and prints a
///   `killed` marker on both streams.
/// * On end of input (the owner went away) the current command is killed.
pub(crate) fn runner_prelude() -> String {
    format!(
        r#"__sb_last=
__sb_wrap={wrapper}
__sb_end() {{ [ -n "$__sb_last" ] && kill -KILL -"$__sb_last" 2>/dev/null; }}
__sb_gone() {{
  __sb_n=0
  while [ -n "$__sb_last" ] && kill -0 -"$__sb_last" 2>/dev/null && [ "$__sb_n" -lt 300 ]; do
    sleep 0.01; __sb_n=$((__sb_n + 1))
  done
}}
trap __sb_end EXIT
__sb_run() {{
  [ -n "$__sb_last" ] && wait "$__sb_last" 2>/dev/null
  __sb_gone
  printf '\036%s:go\036' "$1"; printf '\036%s:go\036' "$1" >&2
  __sb_prev=$!
  setsid sh -c "$__sb_wrap" sh "$@" </dev/null &
  if [ "$!" = "$__sb_prev" ]; then
    __sb_last=
    printf '\036%s:nofork\036' "$1"; printf '\036%s:nofork\036' "$1" >&2
  else
    __sb_last=$!
  fi
}}
__sb_abort() {{
  __sb_end
  [ -n "$__sb_last" ] && wait "$__sb_last" 2>/dev/null
  __sb_gone
  __sb_last=
  printf '\036%s:killed\036' "$1"; printf '\036%s:killed\036' "$1" >&2
}}
"#,
        wrapper = quote(WRAPPER)
    )
}

/// Runs one command as a fresh `docker exec` (the fallback path).
///
/// Arguments: `sandbay-exec` (argv 0), token, working directory, command,
/// then `NAME=value` entries. The exec is its own session and group
/// leader; stdin is the exec's. The time limit is enforced from outside
/// by [`EXEC_KILLER`] (busybox `timeout` only has one-second steps and
/// leaves its watcher process outside the group).
pub(crate) const EXEC_WRAPPER: &str = r#"t=$1 w=$2 c=$3; shift 3
if cd "$w" 2>/dev/null; then
  env -i "$@" sh -c "$c"
  r=$?
else
  r=nodir
fi
printf '\036%s:%s\036' "$t" "$r"; printf '\036%s:%s\036' "$t" "$r" >&2
kill -KILL 0"#;

/// Kills the process group of the fallback command with a given token
/// (found by its argv); used when the client-side time limit fires first.
pub(crate) const EXEC_KILLER: &str = r#"t=$1
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  if tr '\0' '\n' < "$d/cmdline" 2>/dev/null | grep -qx -- "$t"; then
    kill -KILL -"$p" 2>/dev/null
  fi
done
exit 0"#;

/// Quotes a string for `sh`: the result is one word with exactly this
/// content, whatever characters it has.
///
/// ```text
/// it's  ->  'it'\''s'
/// ```
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str(r"'\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$x `y` \\ \n"), "'$x `y` \\ \n'");
    }

    #[test]
    fn prelude_embeds_the_wrapper() {
        let p = runner_prelude();
        assert!(p.contains("__sb_wrap='t=$1"));
        assert!(p.contains("trap __sb_end EXIT"));
    }
}
