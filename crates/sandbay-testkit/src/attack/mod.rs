//! The attack suite: escapes, special files and races against backends
//! that keep their files in a host directory.
//!
//! Every case takes a [`Fixture`](crate::Fixture) whose
//! `host_root` is the host directory the backend
//! serves (an fs backend's root, or the directory a container
//! bind-mounts). An [`Arena`] makes a sibling directory *outside* that
//! root, fills it with files holding a unique secret, and plants links,
//! FIFOs and races from the host side, as a command run in the workspace
//! (or anyone with host access) could. Each case then asserts that:
//!
//! * no result ever contains the secret (contents, names, bytes);
//! * no error message names a host path (the root, the outside
//!   directory, their real paths or their random names);
//! * nothing outside is created, changed or removed;
//! * refusals are typed: `permission_denied` for anything leading out
//!   or any special file, `invalid_path` for hostile path strings;
//! * `clear` removes every entry, also names no virtual path can carry
//!   (planted from the host: a newline, invalid UTF-8, a backslash, a
//!   control character), and follows no link while doing it.
//!
//! [`attack_tests!`](crate::attack_tests) turns the whole list into one
//! `#[test]` per case:
//!
//! ```ignore
//! sandbay_testkit::attack_tests!(async {
//!     let dir = tempfile::tempdir().unwrap();
//!     let root = sandbay_fs::open_root(dir.path()).await.unwrap();
//!     Fixture::new(FsBackend::new(root)).host_root(dir.path()).guard(dir)
//! });
//! ```
//!
//! The race case needs `renameat2(RENAME_EXCHANGE)` (Linux, most local
//! filesystems) and runs for [`RACE_DURATION`].

mod arena;
mod clear;
mod links;
mod paths;
mod probe;
mod race;
mod special;

pub use arena::{Arena, Checker, OutsideEntry, OutsideState};
pub use clear::clear_removes_every_name;
pub use links::*;
pub use paths::*;
pub use probe::{probe_escape, sweep};
pub use race::{RACE_DURATION, rename_swap_race_leaks_nothing};
pub use special::*;

/// Emits one `#[test]` per attack case for a fixture factory (an
/// expression evaluating to a future of [`Fixture`](crate::Fixture)).
///
/// An optional `requires = <expr>` (a `Result<(), impl Display>`) is
/// checked first in every test: when it fails the test is skipped with the
/// reason, or fails under CI ([`crate::skip::require`]).
#[macro_export]
macro_rules! attack_tests {
    ($factory:expr $(,)?) => {
        $crate::attack_tests!($factory, requires = ::std::result::Result::<(), &str>::Ok(()));
    };
    ($factory:expr, requires = $requires:expr $(,)?) => {
        $crate::attack_tests!(@emit $factory, $requires;
            dotdot_and_absolute_paths_stay_inside,
            nul_and_overlong_paths_are_refused,
            symlink_to_file_inside_is_followed,
            symlink_to_dir_inside_is_not_walked,
            dangling_symlink_is_not_found,
            symlink_loop_is_refused,
            absolute_symlink_inside_is_refused,
            absolute_symlink_outside_is_refused,
            mid_path_symlink_outside_is_refused,
            relative_symlink_outside_is_refused,
            hard_link_outside_is_refused,
            fifo_never_blocks,
            socket_and_device_are_refused,
            rename_swap_race_leaks_nothing,
            clear_removes_every_name,
        );
    };
    (@emit $factory:expr, $requires:expr; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                $crate::block_on(async {
                    if !$crate::skip::require($requires) {
                        return;
                    }
                    let fixture: $crate::Fixture = ($factory).await;
                    $crate::attack::$name(&fixture).await;
                });
            }
        )*
    };
}
