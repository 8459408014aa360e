//! In-container file operations (busybox `sh`), for workspaces that live
//! in a Docker volume (a remote daemon, or [`crate::FileMode::Container`]).
//!
//! Every script starts with [`LIB`]. Paths arrive relative to the
//! workspace, already normalised by `VPath` (no `.`/`..`, no control
//! characters, so never a newline). Symlinks are resolved component by
//! component with the same rules as the host-side capability backend:
//! an absolute target, or a relative one climbing above the workspace, is
//! an escape. Errors are exit codes ([`code`]); the Rust side maps them to
//! typed errors naming the virtual path.

/// Exit codes of the scripts.
pub(crate) mod code {
    /// No such file or directory.
    pub(crate) const NOT_FOUND: i32 = 10;
    /// A directory where a file was expected.
    pub(crate) const IS_DIR: i32 = 11;
    /// A file where a directory was expected.
    pub(crate) const NOT_DIR: i32 = 12;
    /// The path leads outside the workspace.
    pub(crate) const ESCAPE: i32 = 13;
    /// Access refused by permissions.
    pub(crate) const ACCESS: i32 = 14;
    /// Another input/output failure.
    pub(crate) const IO: i32 = 15;
    /// Not a regular file (FIFO, socket, device).
    pub(crate) const SPECIAL: i32 = 16;
    /// The operation is not allowed on the workspace root.
    pub(crate) const ROOT: i32 = 17;
    /// The file is larger than the limit (its size is on stderr).
    pub(crate) const TOO_LARGE: i32 = 18;
    /// Too many levels of symbolic links.
    pub(crate) const LOOP: i32 = 19;
}

/// Shared helpers (no `exit`: they return the error code, so batch
/// scripts can go on with the next item without a subshell):
/// `__res REL FOLLOW` sets `R` to the container path of `REL`, following
/// symlinks (the last component only when `FOLLOW` is 1); `__file` checks
/// that `R` is a readable regular file; `__take N` copies exactly N bytes
/// from stdin to stdout; `__full DIR N` prints the free bytes when fewer
/// than N are left.
pub(crate) const LIB: &str = r#"W=/workspace
__res() {
  __d= __todo=$1 __h=0
  while [ -n "$__todo" ]; do
    __c=${__todo%%/*}
    if [ "$__c" = "$__todo" ]; then __todo=; else __todo=${__todo#*/}; fi
    case $__c in
      ''|.) continue ;;
      ..) [ -z "$__d" ] && return 13
          case $__d in */*) __d=${__d%/*} ;; *) __d= ;; esac
          continue ;;
    esac
    __p=$W${__d:+/$__d}/$__c
    if [ -L "$__p" ] && { [ -n "$__todo" ] || [ "$2" = 1 ]; }; then
      __h=$((__h+1)); [ "$__h" -gt 40 ] && return 19
      __t=$(readlink -- "$__p") || return 15
      case $__t in /*|'') return 13 ;; esac
      __todo=$__t${__todo:+/$__todo}
      continue
    fi
    if [ -n "$__todo" ] && [ -e "$__p" ] && [ ! -d "$__p" ]; then return 12; fi
    __d=${__d:+$__d/}$__c
  done
  R=$W${__d:+/$__d}
  return 0
}
__take() {
  __n=$1
  if [ "$__n" -ge 65536 ]; then dd bs=65536 count=$((__n / 65536)) iflag=fullblock 2>/dev/null; fi
  __n=$((__n % 65536))
  if [ "$__n" -gt 0 ]; then dd bs=$__n count=1 iflag=fullblock 2>/dev/null; fi
  return 0
}
__file() {
  [ -e "$R" ] || return 10
  [ -d "$R" ] && return 11
  [ -f "$R" ] || return 16
  [ -r "$R" ] || return 14
  return 0
}
__full() {
  __a=$(df -k "$1" 2>/dev/null | awk 'NR==2 {print $4}')
  [ -n "$__a" ] && [ $((__a * 1024)) -lt "$2" ] && echo $((__a * 1024))
}
"#;

/// `$1` = path. Prints `<mode hex> <size>` of the path, links followed.
pub(crate) const STAT: &str = r#"__res "$1" 1 || exit $?
[ -e "$R" ] || exit 10
stat -c '%f %s' -- "$R" || exit 15"#;

/// `$1` = directory. Prints `<mode hex> <size> <path>//` for each entry
/// (`//` cannot occur inside a path, so it ends records safely).
pub(crate) const LS: &str = r#"__res "$1" 1 || exit $?
if [ ! -d "$R" ]; then [ -e "$R" ] && exit 12; exit 10; fi
[ -r "$R" ] && [ -x "$R" ] || exit 14
find "$R" -mindepth 1 -maxdepth 1 -exec stat -c '%f %s %n//' {} + 2>/dev/null
exit 0"#;

/// `$1` = file. Writes the file's bytes to stdout.
pub(crate) const CAT: &str = r#"__res "$1" 1 || exit $?
__file || exit $?
exec cat -- "$R""#;

/// `$1` = file, `$2` = size limit. Like [`CAT`], but refuses a file over the limit.
pub(crate) const CAT_LIMITED: &str = r#"__res "$1" 1 || exit $?
__file || exit $?
s=$(stat -c %s -- "$R") || exit 15
if [ "$s" -gt "$2" ]; then echo "$s" >&2; exit 18; fi
exec cat -- "$R""#;

/// stdin: one path per line. For each, in order, prints
/// `F <index> <status>\n`, and for status 0 the file in base64 and a
/// line `.` (base64 never contains a dot).
pub(crate) const CAT_MANY: &str = r#"i=0
while IFS= read -r rel; do
  st=0
  __res "$rel" 1 || st=$?
  [ "$st" = 0 ] && { __file || st=$?; }
  printf 'F %s %s\n' "$i" "$st"
  if [ "$st" = 0 ]; then base64 -- "$R" 2>/dev/null; printf '\n.\n'; fi
  i=$((i+1))
done
exit 0"#;

/// stdin: for each item a path line, a length line, then that many bytes.
/// Writes each file atomically (temp file + rename), creating parents.
/// Prints `<index> <status> <free bytes>` per item (the free bytes only
/// when the workspace is full: status 18). Every item's bytes are read
/// whatever happens to it, so the next item starts at the right place.
pub(crate) const PUT_MANY: &str = r#"i=0
while IFS= read -r rel && IFS= read -r n; do
  st=0 free=
  if [ -z "$rel" ]; then st=17
  elif __res "$rel" 1; then
    P=${R%/*}
    if [ -d "$R" ]; then st=11
    elif [ ! -d "$P" ]; then
      if [ -e "$P" ]; then st=12; elif ! mkdir -p -- "$P" 2>/dev/null; then st=14; fi
    fi
    [ "$st" = 0 ] && [ ! -w "$P" ] && st=14
  else st=$?
  fi
  if [ "$st" = 0 ]; then
    T=$P/.sandbay-put.$$.$i
    if [ "$n" = 0 ]; then
      printf '' 2>/dev/null > "$T" || st=15
    elif [ "$n" -lt 65536 ]; then
      dd bs="$n" count=1 iflag=fullblock of="$T" 2>/dev/null || st=15
    else
      __take "$n" | { cat > "$T" 2>/dev/null || { cat > /dev/null; false; }; } || st=15
    fi
    [ "$st" = 0 ] && { mv -f -- "$T" "$R" 2>/dev/null || st=15; }
    if [ "$st" != 0 ]; then
      rm -f -- "$T"
      free=$(__full "$P" "$n") && st=18
    fi
  else
    __take "$n" > /dev/null
  fi
  printf '%s %s %s\n' "$i" "$st" "$free"
  i=$((i+1))
done
exit 0"#;

/// `$1` = path. Removes it (a symlink itself, a directory recursively).
pub(crate) const DELETE: &str = r#"[ -z "$1" ] && exit 17
case $1 in */*) __res "${1%/*}" 1 || exit $?; P=$R ;; *) P=$W ;; esac
if [ ! -d "$P" ]; then [ -e "$P" ] && exit 12; exit 10; fi
T=$P/${1##*/}
[ -e "$T" ] || [ -L "$T" ] || exit 10
rm -rf -- "$T" 2>/dev/null || exit 14
[ -e "$T" ] || [ -L "$T" ] && exit 14
exit 0"#;

/// `$1` = directory, `$2` = size limit (or empty), `$3` = `d` when the
/// path must be a directory. Prints, NUL-separated, the resolved path,
/// then the container path of every regular file below it (symlinks are
/// not followed), only files up to the limit when one is given. Without
/// `d`, a file path gives the file itself.
pub(crate) const FIND_FILES: &str = r#"__res "$1" 1 || exit $?
L=$2
printf '%s\0' "$R"
if [ -d "$R" ]; then D=1
elif [ -e "$R" ] && [ "$3" = d ]; then exit 12
elif [ -f "$R" ]; then D=0
elif [ -e "$R" ]; then exit 16
else exit 10
fi
if [ "$D" = 1 ]; then set -- -mindepth 1; else set -- -maxdepth 0; fi
if [ -n "$L" ]; then
  find "$R" "$@" -type f -size -$((L + 1))c -print0 2>/dev/null
else
  find "$R" "$@" -type f -print0 2>/dev/null
fi
exit 0"#;

/// The full text of an operation script with its positional arguments.
pub(crate) fn script(op: &str, args: &[&str]) -> String {
    let mut s = String::with_capacity(LIB.len() + op.len() + 64);
    s.push_str("set --");
    for a in args {
        s.push(' ');
        s.push_str(&quote(a));
    }
    s.push('\n');
    s.push_str(LIB);
    s.push_str(op);
    s.push('\n');
    s
}

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
}
