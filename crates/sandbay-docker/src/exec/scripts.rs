//! The shell text sandbay runs inside containers (busybox `sh`), in one
//! place so the protocol can be read as a whole.
//!
//! On the runner, a command costs one fork for its wrapper (a background
//! subshell of the runner) and one fork and `exec` for its `sh -c`
//! (busybox `exec`s cost most of a command's CPU time, which counts
//! against the container's CPU quota). Everything a command starts stays
//! in the runner's process group, so the wrapper ends a command by killing
//! every other member of that group but the runner and itself (a sweep of
//! `/proc` with shell builtins only) before it prints the end marker (see
//! [`super::marker`]) with the exit code on both streams: a finished
//! command leaves no process behind. A time limit or a dropped future
//! makes the runner sweep the same way, wrapper included.

/// Defines the runner's functions; sent once on the runner's stdin.
///
/// * `__sb_sweep [SPARE]` kills every process of the runner's group except
///   the runner, PID 1 and `SPARE`, again until none is left (zombies
///   aside), so even a fork bomb's children are all caught. Each round
///   stops every process it found before it kills any, so no parent runs
///   on for a moment after its child died (`sleep 30; echo never` never
///   prints `never`).
/// * `__sb_run TOKEN WORKDIR COMMAND STDIN_B64 ENV...` reaps the previous
///   wrapper (dead by then), prints a start marker on both streams (so
///   output of an earlier command is never taken for this one's), and
///   starts `__sb_wrapper` in the background. When the process limit is
///   reached the fork fails, the shell goes on, and the end marker says
///   `nofork`.
/// * `__sb_wrapper` (in the background subshell) exports exactly the given
///   environment (the runner itself starts with only the base entries),
///   runs `sh -c COMMAND` in the working directory, sweeps, and prints the
///   end marker with the exit code (`nodir` for a missing directory).
/// * `__sb_check TOKEN`, sent while a command runs long, does nothing
///   while the command's wrapper lives. When the wrapper is gone without
///   its end marker (the command killed it, e.g. `kill -9 $PPID`), it
///   sweeps, reaps the wrapper and prints the end marker with the
///   wrapper's exit status, so the caller learns of it at once instead of
///   at the time limit. A duplicate marker after a normal end belongs to a
///   finished command and is ignored.
/// * `__sb_abort TOKEN` sweeps (the wrapper too), reaps it, and prints a
///   `killed` marker on both streams.
/// * On end of input (the owner went away) the runner sweeps and exits.
pub(crate) fn runner_prelude() -> String {
    r#"__sb_last=
read -r __sb_l < /proc/self/stat
__sb_me=${__sb_l%% *}
__sb_r=${__sb_l##*) }; __sb_r=${__sb_r#* }; __sb_r=${__sb_r#* }
__sb_pg=${__sb_r%% *}
__sb_sweep() {
  __sb_i=0
  while [ "$__sb_i" -lt 200 ]; do
    __sb_ps=
    for __sb_f in /proc/[0-9]*/stat; do
      # the group's redirection is set up before the inner `<`, so a
      # process that exited meanwhile leaves no "can't open" message
      { read -r __sb_l < "$__sb_f"; } 2>/dev/null || continue
      __sb_p=${__sb_l%% *}
      case $__sb_p in "$__sb_me"|"$1"|1) continue ;; esac
      __sb_r=${__sb_l##*) }
      __sb_s=${__sb_r%% *}; __sb_r=${__sb_r#* }; __sb_r=${__sb_r#* }
      [ "${__sb_r%% *}" = "$__sb_pg" ] || continue
      [ "$__sb_s" = Z ] && continue
      __sb_ps="$__sb_ps $__sb_p"
    done
    [ -z "$__sb_ps" ] && return 0
    kill -STOP $__sb_ps 2>/dev/null
    kill -KILL $__sb_ps 2>/dev/null
    __sb_i=$((__sb_i + 1))
  done
  return 0
}
trap __sb_sweep EXIT
__sb_wrapper() {
  trap - EXIT
  read -r __sb_l < /proc/self/stat
  __sb_w=${__sb_l%% *}
  __sb_t=$1 __sb_d=$2 __sb_c=$3 __sb_in=$4
  shift 4
  if cd "$__sb_d" 2>/dev/null; then
    unset OLDPWD
    for __sb_e; do export "$__sb_e"; done
    if [ -n "$__sb_in" ]; then
      printf %s "$__sb_in" | base64 -d | sh -c "$__sb_c"
    else
      sh -c "$__sb_c" </dev/null
    fi
    __sb_x=$?
  else
    __sb_x=nodir
  fi
  __sb_sweep "$__sb_w"
  printf '\036%s:%s\036' "$__sb_t" "$__sb_x"; printf '\036%s:%s\036' "$__sb_t" "$__sb_x" >&2
}
__sb_run() {
  [ -n "$__sb_last" ] && wait "$__sb_last" 2>/dev/null
  __sb_tok=$1
  printf '\036%s:go\036' "$1"; printf '\036%s:go\036' "$1" >&2
  __sb_prev=$!
  __sb_wrapper "$@" </dev/null &
  if [ "$!" = "$__sb_prev" ]; then
    __sb_last=
    printf '\036%s:nofork\036' "$1"; printf '\036%s:nofork\036' "$1" >&2
  else
    __sb_last=$!
  fi
}
__sb_check() {
  [ "$1" = "$__sb_tok" ] && [ -n "$__sb_last" ] || return 0
  { read -r __sb_l < "/proc/$__sb_last/stat"; } 2>/dev/null && {
    __sb_r=${__sb_l##*) }
    [ "${__sb_r%% *}" = Z ] || return 0
  }
  __sb_sweep
  wait "$__sb_last" 2>/dev/null
  __sb_x=$?
  __sb_last=
  printf '\036%s:%s\036' "$1" "$__sb_x"; printf '\036%s:%s\036' "$1" "$__sb_x" >&2
}
__sb_abort() {
  __sb_sweep
  [ -n "$__sb_last" ] && wait "$__sb_last" 2>/dev/null
  __sb_last=
  printf '\036%s:killed\036' "$1"; printf '\036%s:killed\036' "$1" >&2
}
"#
    .to_string()
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
  if { tr '\0' '\n' < "$d/cmdline"; } 2>/dev/null | grep -qx -- "$t"; then
    kill -KILL -"$p" 2>/dev/null
  fi
done
exit 0"#;

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
pub(crate) const RESET: &str = r#"keep=" 1 "
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
    fn prelude_defines_the_protocol() {
        let p = runner_prelude();
        for f in [
            "__sb_sweep()",
            "__sb_wrapper()",
            "__sb_run()",
            "__sb_check()",
            "__sb_abort()",
        ] {
            assert!(p.contains(f), "{f}");
        }
        assert!(p.contains("trap __sb_sweep EXIT"));
    }
}
