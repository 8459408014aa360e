//! The [`Backend`] and [`Sandbox`] traits.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::path::VPath;
use crate::stream::ExecStream;
use crate::types::{
    Capabilities, DirEntry, EditOutcome, EditRequest, ExecOutput, ExecRequest, GlobOutput,
    GlobRequest, GrepOutput, GrepRequest, ReadRequest, TextWindow,
};

/// A workspace of files an agent can list, read, write, edit and search.
///
/// Every method but [`Backend::clear`] is required, so a wrapper cannot
/// silently lose an override (the forwarding impls and
/// [`delegate_backend!`](crate::delegate_backend) forward `clear` too,
/// and deny `clippy::missing_trait_methods`); convenience calls live in
/// [`BackendExt`]. The trait is
/// object safe: [`DynBackend`] and `Arc<dyn Backend>` work.
///
/// The bullets under each method are the contract; each one is a named
/// case in `sandbay-testkit`, which every backend runs.
#[async_trait]
pub trait Backend: std::fmt::Debug + Send + Sync {
    /// A short, stable backend name (`"state"`, `"fs"`, `"docker"`).
    fn name(&self) -> &'static str;

    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// Lists a directory, entries sorted by name (byte order).
    ///
    /// # Behavior
    /// - hidden entries are listed like any other;
    /// - symlinks are listed as [`crate::EntryKind::Symlink`], not followed;
    /// - a file gives `not_a_directory`, a missing path `not_found`.
    async fn ls(&self, path: &VPath) -> Result<Vec<DirEntry>>;

    /// Describes one path (following a symlink that stays inside).
    ///
    /// # Errors
    /// `not_found`, `permission_denied` (escape).
    async fn stat(&self, path: &VPath) -> Result<DirEntry>;

    /// Reads a window of lines of a UTF-8 text file.
    ///
    /// # Behavior
    /// - lines are split on `\n`; a trailing `\r` is removed;
    /// - an empty file has zero lines; an offset past the end gives an
    ///   empty window (not an error), with `total_lines` set;
    /// - memory is bounded by the window, not by the file size;
    /// - a file with a NUL byte or invalid UTF-8 gives `binary_file`.
    async fn read(&self, path: &VPath, request: ReadRequest) -> Result<TextWindow>;

    /// Creates or overwrites a file atomically, creating parent directories.
    ///
    /// # Errors
    /// `is_directory` if `path` is a directory, `not_a_directory` if a
    /// parent is a file, `permission_denied` for the root or an escape.
    async fn write(&self, path: &VPath, content: &str) -> Result<()>;

    /// Replaces exact text in a file atomically (see [`crate::text::apply_edit`]).
    ///
    /// # Errors
    /// `invalid_argument` (empty `old`), `no_match`, `ambiguous_match`,
    /// `binary_file`, `too_large`, `not_found`, `is_directory`.
    async fn edit(&self, path: &VPath, request: &EditRequest) -> Result<EditOutcome>;

    /// Removes a file, or a directory with everything below it. A symlink
    /// is removed itself, never its target.
    ///
    /// # Errors
    /// `permission_denied` for the root, `not_found`.
    async fn delete(&self, path: &VPath) -> Result<()>;

    /// Searches the text files below a path (see [`crate::text::GrepPlan`]).
    async fn grep(&self, request: &GrepRequest) -> Result<GrepOutput>;

    /// Finds regular files by glob pattern (see [`crate::text::GlobMatcher`]).
    async fn glob(&self, request: &GlobRequest) -> Result<GlobOutput>;

    /// Writes several files, binary safe; one result per item, in order.
    async fn upload(&self, files: Vec<(VPath, Vec<u8>)>) -> Vec<Result<()>>;

    /// Reads several whole files, binary safe; one result per item.
    async fn download(&self, paths: &[VPath]) -> Vec<Result<Vec<u8>>>;

    /// Deletes everything in the workspace and checks that nothing is
    /// left; returns how many top-level entries were removed. This is the
    /// file part of resetting a workspace for its next user.
    ///
    /// # Behavior
    /// - every entry goes, including names that are not valid virtual
    ///   paths (a newline, a control character, a backslash, invalid
    ///   UTF-8) where the backend can hold them;
    /// - links are removed, never followed: nothing outside is touched;
    /// - emptiness is checked the same way the entries were found.
    ///
    /// The default lists with [`Backend::ls`] and removes each entry with
    /// [`Backend::delete`] ([`clear_listed`]); a backend whose files can
    /// have names `ls` cannot show overrides it.
    ///
    /// # Errors
    /// The first failed deletion, or `permission_denied` naming the first
    /// entry left afterwards.
    async fn clear(&self) -> Result<usize> {
        clear_listed(self).await
    }
}

/// [`Backend::clear`] through [`Backend::ls`] and [`Backend::delete`]:
/// what a backend whose every name is a valid virtual path needs.
///
/// # Errors
/// As [`Backend::clear`].
pub async fn clear_listed<B: Backend + ?Sized>(backend: &B) -> Result<usize> {
    let root = VPath::root();
    let entries = backend.ls(&root).await?;
    let removed = entries.len();
    for entry in entries {
        match backend.delete(&entry.path).await {
            // gone meanwhile: that is what we wanted
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let left = backend.ls(&root).await?;
    if let Some(first) = left.first() {
        return Err(Error::PermissionDenied {
            path: first.path.clone(),
            reason: format!("{} entries could not be removed", left.len()),
        });
    }
    Ok(removed)
}

/// A [`Backend`] whose workspace can also run commands.
#[async_trait]
pub trait Sandbox: Backend {
    /// A stable identifier of this sandbox (for logs and labels).
    fn id(&self) -> &str;

    /// Runs a shell command in the workspace.
    ///
    /// # Behavior
    /// - the working directory is the workspace root (or `workdir`);
    /// - on timeout, and when the returned future is dropped, the whole
    ///   process tree dies; output produced so far is kept;
    /// - output is capped while streaming, never buffered unbounded;
    /// - a non-zero exit is a normal [`ExecOutput`], not an error.
    async fn execute(&self, request: ExecRequest) -> Result<ExecOutput>;

    /// Runs a shell command like [`Sandbox::execute`], its output coming
    /// as it is written: `Stdout`/`Stderr` chunks, then the `Exit`
    /// ([`ExecStream`]).
    ///
    /// # Behavior
    /// - an error before the command started (a bad request, a full or
    ///   stopped sandbox) is the `Err` of this call; a failure after it is
    ///   an `Err` item of the stream;
    /// - the time limit and the output cap are those of `execute`;
    /// - dropping the stream before its end kills the command's whole
    ///   process tree, as dropping `execute`'s future does.
    ///
    /// The default is **not** a stream: it runs [`Sandbox::execute`] to
    /// the end and then yields the whole output at once
    /// ([`ExecStream::buffered`], whose [`ExecStream::is_live`] is
    /// `false`). Backends that can stream override it.
    ///
    /// # Errors
    /// As [`Sandbox::execute`].
    async fn execute_stream(&self, request: ExecRequest) -> Result<ExecStream> {
        Ok(ExecStream::buffered(self.execute(request).await?))
    }
}

/// A type-erased backend.
pub type DynBackend = dyn Backend;
/// A type-erased sandbox.
pub type DynSandbox = dyn Sandbox;

macro_rules! forward_backend {
    ($ty:ty) => {
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<T: Backend + ?Sized> Backend for $ty {
            fn name(&self) -> &'static str {
                (**self).name()
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            async fn ls(&self, path: &VPath) -> Result<Vec<DirEntry>> {
                (**self).ls(path).await
            }
            async fn stat(&self, path: &VPath) -> Result<DirEntry> {
                (**self).stat(path).await
            }
            async fn read(&self, path: &VPath, request: ReadRequest) -> Result<TextWindow> {
                (**self).read(path, request).await
            }
            async fn write(&self, path: &VPath, content: &str) -> Result<()> {
                (**self).write(path, content).await
            }
            async fn edit(&self, path: &VPath, request: &EditRequest) -> Result<EditOutcome> {
                (**self).edit(path, request).await
            }
            async fn delete(&self, path: &VPath) -> Result<()> {
                (**self).delete(path).await
            }
            async fn grep(&self, request: &GrepRequest) -> Result<GrepOutput> {
                (**self).grep(request).await
            }
            async fn glob(&self, request: &GlobRequest) -> Result<GlobOutput> {
                (**self).glob(request).await
            }
            async fn upload(&self, files: Vec<(VPath, Vec<u8>)>) -> Vec<Result<()>> {
                (**self).upload(files).await
            }
            async fn download(&self, paths: &[VPath]) -> Vec<Result<Vec<u8>>> {
                (**self).download(paths).await
            }
            async fn clear(&self) -> Result<usize> {
                (**self).clear().await
            }
        }

        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<T: Sandbox + ?Sized> Sandbox for $ty {
            fn id(&self) -> &str {
                (**self).id()
            }
            async fn execute(&self, request: ExecRequest) -> Result<ExecOutput> {
                (**self).execute(request).await
            }
            async fn execute_stream(&self, request: ExecRequest) -> Result<ExecStream> {
                (**self).execute_stream(request).await
            }
        }
    };
}

forward_backend!(Arc<T>);
forward_backend!(Box<T>);
forward_backend!(&T);

/// Implements [`Backend`] for a type that keeps its files in a field
/// (a backend, or anything with the same async methods) and adds
/// something else, typically `execute`: every file operation goes to the
/// field, `name` and `capabilities` are given.
///
/// The implementation denies `clippy::missing_trait_methods`, so a
/// method added to [`Backend`] cannot be forgotten here.
///
/// ```
/// use sandbay_core::{Backend, Capabilities, delegate_backend};
///
/// /// A backend that reports itself under another name.
/// #[derive(Debug)]
/// struct Renamed<B> {
///     inner: B,
/// }
///
/// delegate_backend!(impl<B: Backend> Backend for Renamed<B> => inner {
///     fn name(&self) -> &'static str { "renamed" }
///     fn capabilities(&self) -> Capabilities { self.inner.capabilities() }
/// });
/// ```
#[macro_export]
macro_rules! delegate_backend {
    (
        impl $(<$($generic:ident : $bound:path),+>)? Backend for $ty:ty => $field:ident {
            fn name(&$name_self:ident) -> &'static str $name:block
            fn capabilities(&$caps_self:ident) -> Capabilities $caps:block
        }
    ) => {
        #[$crate::async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl $(<$($generic: $bound),+>)? $crate::Backend for $ty {
            fn name(&$name_self) -> &'static str $name
            fn capabilities(&$caps_self) -> $crate::Capabilities $caps
            async fn ls(&self, path: &$crate::VPath) -> $crate::Result<::std::vec::Vec<$crate::DirEntry>> {
                self.$field.ls(path).await
            }
            async fn stat(&self, path: &$crate::VPath) -> $crate::Result<$crate::DirEntry> {
                self.$field.stat(path).await
            }
            async fn read(
                &self,
                path: &$crate::VPath,
                request: $crate::ReadRequest,
            ) -> $crate::Result<$crate::TextWindow> {
                self.$field.read(path, request).await
            }
            async fn write(&self, path: &$crate::VPath, content: &str) -> $crate::Result<()> {
                self.$field.write(path, content).await
            }
            async fn edit(
                &self,
                path: &$crate::VPath,
                request: &$crate::EditRequest,
            ) -> $crate::Result<$crate::EditOutcome> {
                self.$field.edit(path, request).await
            }
            async fn delete(&self, path: &$crate::VPath) -> $crate::Result<()> {
                self.$field.delete(path).await
            }
            async fn grep(&self, request: &$crate::GrepRequest) -> $crate::Result<$crate::GrepOutput> {
                self.$field.grep(request).await
            }
            async fn glob(&self, request: &$crate::GlobRequest) -> $crate::Result<$crate::GlobOutput> {
                self.$field.glob(request).await
            }
            async fn upload(
                &self,
                files: ::std::vec::Vec<($crate::VPath, ::std::vec::Vec<u8>)>,
            ) -> ::std::vec::Vec<$crate::Result<()>> {
                self.$field.upload(files).await
            }
            async fn download(
                &self,
                paths: &[$crate::VPath],
            ) -> ::std::vec::Vec<$crate::Result<::std::vec::Vec<u8>>> {
                self.$field.download(paths).await
            }
            async fn clear(&self) -> $crate::Result<usize> {
                self.$field.clear().await
            }
        }
    };
}

/// Convenience calls on top of [`Backend`].
///
/// Blanket-implemented for every backend. **Do not implement this trait
/// yourself**: its methods are defined in terms of the required ones.
#[async_trait]
pub trait BackendExt: Backend {
    /// Reads a whole file as bytes.
    async fn read_bytes(&self, path: &VPath) -> Result<Vec<u8>> {
        self.download(std::slice::from_ref(path))
            .await
            .pop()
            .unwrap_or_else(|| Err(Error::NotFound { path: path.clone() }))
    }

    /// Reads a whole file as UTF-8 text.
    ///
    /// # Errors
    /// `binary_file` if it is not UTF-8 text.
    async fn read_to_string(&self, path: &VPath) -> Result<String> {
        let bytes = self.read_bytes(path).await?;
        String::from_utf8(bytes).map_err(|_| Error::BinaryFile { path: path.clone() })
    }

    /// Writes one file, binary safe.
    async fn write_bytes(&self, path: &VPath, bytes: Vec<u8>) -> Result<()> {
        self.upload(vec![(path.clone(), bytes)])
            .await
            .pop()
            .unwrap_or(Ok(()))
    }

    /// Whether the path exists (a dangling symlink counts as missing).
    async fn exists(&self, path: &VPath) -> Result<bool> {
        match self.stat(path).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl<B: Backend + ?Sized> BackendExt for B {}
