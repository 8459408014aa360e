//! The conformance suite: the contract of [`sandbay_core::Backend`], one
//! public async function per behaviour.
//!
//! Each case takes a fresh [`Fixture`](crate::Fixture), runs a straight
//! script of operations and asserts with messages; its one-line doc states
//! the rule. Every error a case expects is also checked for host paths
//! ([`Fixture::expect_err`](crate::Fixture::expect_err)).
//!
//! Cases are registered once, below, in two lists:
//!
//! * the **core** list: every backend runs it;
//! * the **execute** list: only backends whose [`Capabilities`] declare
//!   `execute`; for the others the generated tests exist but are
//!   `#[ignore]`d with the reason, so a skip shows up as *ignored*, never
//!   as a pass.
//!
//! [`conformance_tests!`](crate::conformance_tests) expands both lists into
//! one `#[test]` per case named after the behaviour, plus one test checking
//! that the list selection matches the capabilities the backend declares.
//!
//! Some semantics the trait docs leave open are fixed here, so that every
//! backend agrees:
//!
//! * errors name the **requested** virtual path (`write /f/g/h` below the
//!   file `/f` says `/f/g/h: not a directory`);
//! * `edit` checks in this order: the path, the size limit, text, then the
//!   edit rules;
//! * `grep` and `glob` check their pattern before the path; `grep` of a
//!   file searches that file, `glob` below a file is `not_a_directory`;
//! * `write`, `upload` and `delete` of `/` are `permission_denied`.
//!
//! [`Capabilities`]: sandbay_core::Capabilities

mod delete;
mod edit;
mod execute;
mod glob;
mod grep;
mod large;
mod ls;
mod read;
mod transfer;
mod write;

pub use delete::*;
pub use edit::*;
pub use execute::*;
pub use glob::*;
pub use grep::*;
pub use large::*;
pub use ls::*;
pub use read::*;
pub use transfer::*;
pub use write::*;

/// Calls `$callback!{ $($args)* ; <every core case> }`. The core list.
#[doc(hidden)]
#[macro_export]
macro_rules! __sandbay_core_cases {
    ($callback:ident ! { $($args:tt)* }) => {
        $crate::$callback! {
            $($args)* ;
            // ls.rs
            ls_fresh_root_is_empty,
            ls_sorted_by_name,
            ls_reports_paths_kinds_and_sizes,
            ls_lists_only_direct_children,
            ls_includes_hidden_entries,
            ls_file_is_not_a_directory,
            ls_missing_is_not_found,
            ls_below_file_is_not_a_directory,
            stat_matches_ls_entry,
            stat_root_is_directory,
            stat_missing_is_not_found,
            // write.rs
            write_then_read_round_trips,
            write_creates_parents,
            write_overwrites_completely,
            write_empty_file,
            write_onto_directory_is_refused,
            write_below_file_is_not_a_directory,
            write_root_is_permission_denied,
            write_unicode_names_and_content,
            write_path_is_normalised,
            path_invalid_is_refused,
            // delete.rs
            delete_file_removes_it,
            delete_directory_is_recursive,
            delete_root_is_permission_denied,
            delete_missing_is_not_found,
            delete_keeps_parent_directory,
            delete_below_file_is_not_a_directory,
            delete_then_reuse_name,
            clear_empties_the_workspace,
            // read.rs
            read_missing_is_not_found,
            read_directory_is_is_directory,
            read_below_file_is_not_a_directory,
            read_nul_byte_is_binary_file,
            read_invalid_utf8_is_binary_file,
            read_window_offset_and_limit,
            read_offset_past_end_is_empty,
            read_last_line_without_newline_counts,
            read_crlf_terminators_are_removed,
            read_empty_file_has_no_lines,
            read_unicode_lines,
            read_window_ends_at_byte_budget,
            read_long_line_is_cut,
            // edit.rs
            edit_replaces_unique_occurrence,
            edit_replace_all_reports_count,
            edit_ambiguous_match_is_refused,
            edit_no_match_is_refused,
            edit_empty_old_is_invalid_argument,
            edit_keeps_crlf,
            edit_binary_file_is_refused,
            edit_missing_is_not_found,
            edit_directory_is_is_directory,
            edit_unicode_text,
            edit_to_empty_deletes_text,
            // grep.rs
            grep_files_mode_lists_sorted_paths,
            grep_content_mode_reports_lines,
            grep_count_mode_counts_lines,
            grep_context_lines_are_marked,
            grep_literal_treats_pattern_as_text,
            grep_case_insensitive,
            grep_glob_filter_limits_files,
            grep_max_matches_truncates,
            grep_skips_binary_files,
            grep_bad_regex_is_invalid_argument,
            grep_bad_glob_is_invalid_argument,
            grep_below_path_only,
            grep_single_file_path,
            grep_missing_path_is_not_found,
            grep_includes_hidden_files,
            grep_crlf_lines_without_cr,
            grep_orders_by_full_path,
            grep_no_match_is_empty,
            // glob.rs
            glob_name_pattern_matches_at_any_depth,
            glob_relative_pattern_matches_from_base,
            glob_star_does_not_cross_slash,
            glob_absolute_pattern,
            glob_double_star_crosses_directories,
            glob_braces_and_classes,
            glob_includes_hidden_files,
            glob_returns_regular_files_only,
            glob_limit_sets_truncated,
            glob_results_sorted_by_path,
            glob_bad_pattern_is_invalid_argument,
            glob_missing_base_is_not_found,
            glob_file_base_is_not_a_directory,
            glob_no_match_is_empty,
            // transfer.rs
            upload_download_binary_round_trip,
            upload_results_are_per_item,
            download_results_are_per_item,
            upload_creates_parents_and_overwrites,
            upload_empty_batch_is_empty,
            upload_binary_then_text_ops,
            download_of_written_text_is_utf8,
            // large.rs
            large_file_read_window_works,
            large_file_edit_is_too_large,
            large_file_grep_skips_it,
            large_binary_round_trip,
            concurrent_writes_all_land,
            concurrent_reads_see_whole_files,
        }
    };
}

/// Calls `$callback!{ $($args)* ; <every execute case> }`. The execute list.
#[doc(hidden)]
#[macro_export]
macro_rules! __sandbay_execute_cases {
    ($callback:ident ! { $($args:tt)* }) => {
        $crate::$callback! {
            $($args)* ;
            // execute.rs
            execute_sees_written_files,
            execute_changes_are_visible,
            execute_nonzero_exit_is_output,
            execute_timeout_kills_and_keeps_output,
            execute_stdin_env_and_workdir,
            execute_exit_codes_are_reported,
            execute_stdout_and_stderr_are_separate,
            execute_stdin_is_fed_whole,
            execute_workdir_nested_and_missing,
            execute_env_is_set_and_scrubbed,
            execute_binary_files_round_trip,
            execute_deletions_are_visible,
            execute_directories_and_overwrites_are_visible,
            execute_concurrent_runs,
            execute_partial_output_before_timeout,
            execute_timeout_kills_background_children,
            execute_dropped_future_leaves_no_process,
            execute_output_flood_is_capped,
            execute_stream_chunks_arrive_while_it_runs,
            execute_stream_dropped_leaves_no_process,
            execute_stream_start_errors_are_results,
        }
    };
}

/// Emits one `#[test]` per case name.
#[doc(hidden)]
#[macro_export]
macro_rules! __sandbay_emit_cases {
    ($attrs:tt $factory:expr ; $($name:ident,)*) => {
        $( $crate::__sandbay_emit_case!($attrs $factory, $name); )*
    };
}

/// Emits one `#[test]` per case name, each first checking a requirement
/// (see [`crate::isolation::require`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __sandbay_emit_required_cases {
    ([$requires:expr] $factory:expr ; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                $crate::block_on(async {
                    if !$crate::skip::require($requires) {
                        return;
                    }
                    let fixture: $crate::Fixture = ($factory).await;
                    $crate::conformance::$name(&fixture).await;
                });
            }
        )*
    };
}

/// Emits one `#[test]` for one case.
#[doc(hidden)]
#[macro_export]
macro_rules! __sandbay_emit_case {
    ([$($attr:meta),*] $factory:expr, $name:ident) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            $crate::block_on(async {
                let fixture: $crate::Fixture = ($factory).await;
                $crate::conformance::$name(&fixture).await;
            });
        }
    };
}

/// Emits a `&[&str]` of case names.
#[doc(hidden)]
#[macro_export]
macro_rules! __sandbay_case_names {
    ($(#[$doc:meta])* $vis:vis const $const:ident ; $($name:ident,)*) => {
        $(#[$doc])*
        $vis const $const: &[&str] = &[$(stringify!($name)),*];
    };
}

/// Generates the conformance suite for a backend: one `#[test]` per case,
/// named after the behaviour.
///
/// The argument is an expression evaluated (and awaited) afresh in every
/// test, giving a [`Fixture`](crate::Fixture), usually an `async` block.
/// Add `execute = true` for a backend that can run commands (its fixture
/// must come from [`Fixture::with_sandbox`](crate::Fixture::with_sandbox));
/// without it the execute cases are generated as ignored tests.
///
/// ```ignore
/// sandbay_testkit::conformance_tests!(async {
///     sandbay_testkit::Fixture::new(sandbay_state::StateBackend::default())
/// });
/// ```
///
/// A sandbox that needs a host feature adds `requires = <expr>`, a
/// `Result<(), impl Display>` checked at the start of every test: when it
/// fails the test prints `skipped: <reason>` and returns (counted as
/// skipped), except under CI, where it fails (see [`crate::skip::require`]):
///
/// ```ignore
/// sandbay_testkit::conformance_tests!(
///     make_sandbox_fixture(),
///     execute = true,
///     requires = sandbay_exec::Jail::host_support().check(sandbay_core::Isolation::Namespaces),
/// );
/// ```
///
/// When only the commands need the host feature (the files work anywhere),
/// `execute_requires = <expr>` gates the execute cases alone, and the file
/// cases run everywhere; the factory must then build a fixture without the
/// feature too:
///
/// ```ignore
/// sandbay_testkit::conformance_tests!(
///     make_sandbox_fixture(),
///     execute = true,
///     execute_requires = sandbay_exec::Jail::host_support().check(sandbay_core::Isolation::Namespaces),
/// );
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::conformance_tests!($factory, execute = false);
    };
    ($factory:expr, execute = true, requires = $requires:expr $(,)?) => {
        $crate::__sandbay_core_cases!(__sandbay_emit_required_cases! { [$requires] $factory });
        $crate::__sandbay_execute_cases!(__sandbay_emit_required_cases! { [$requires] $factory });
        #[test]
        fn conformance_selection_matches_capabilities() {
            $crate::block_on(async {
                if !$crate::skip::require($requires) {
                    return;
                }
                let fixture: $crate::Fixture = ($factory).await;
                assert!(
                    fixture.backend.capabilities().execute,
                    "the suite was generated with execute = true, the backend declares execute = false"
                );
                assert!(
                    fixture.sandbox.is_some(),
                    "a backend with execute needs Fixture::with_sandbox"
                );
            });
        }
    };
    ($factory:expr, execute = true, execute_requires = $requires:expr $(,)?) => {
        $crate::__sandbay_core_cases!(__sandbay_emit_cases! { [] $factory });
        $crate::__sandbay_execute_cases!(__sandbay_emit_required_cases! { [$requires] $factory });
        $crate::__sandbay_capability_check!($factory, true);
    };
    ($factory:expr, execute = true $(,)?) => {
        $crate::__sandbay_core_cases!(__sandbay_emit_cases! { [] $factory });
        $crate::__sandbay_execute_cases!(__sandbay_emit_cases! { [] $factory });
        $crate::__sandbay_capability_check!($factory, true);
    };
    ($factory:expr, execute = false $(,)?) => {
        $crate::__sandbay_core_cases!(__sandbay_emit_cases! { [] $factory });
        $crate::__sandbay_execute_cases!(__sandbay_emit_cases! {
            [ignore = "the backend does not declare the execute capability"] $factory
        });
        $crate::__sandbay_capability_check!($factory, false);
    };
}

/// Emits the test that the selected lists match the declared capabilities.
#[doc(hidden)]
#[macro_export]
macro_rules! __sandbay_capability_check {
    ($factory:expr, $execute:literal) => {
        #[test]
        fn conformance_selection_matches_capabilities() {
            $crate::block_on(async {
                let fixture: $crate::Fixture = ($factory).await;
                let declared = fixture.backend.capabilities().execute;
                assert_eq!(
                    declared, $execute,
                    "the backend declares execute = {declared}, the suite was generated with execute = {}",
                    $execute
                );
                assert_eq!(
                    fixture.sandbox.is_some(),
                    $execute,
                    "a backend with execute needs Fixture::with_sandbox, and only then"
                );
            });
        }
    };
}

__sandbay_core_cases!(__sandbay_case_names! {
    /// Names of the cases every backend runs, in registry order.
    pub const CORE_CASES
});

__sandbay_execute_cases!(__sandbay_case_names! {
    /// Names of the cases run by backends that declare `execute`.
    pub const EXECUTE_CASES
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_large_and_unique() {
        assert!(CORE_CASES.len() >= 60, "{} core cases", CORE_CASES.len());
        let mut all: Vec<&str> = CORE_CASES.iter().chain(EXECUTE_CASES).copied().collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "case names are unique");
    }
}
