//! Where a sandbox's files live and how file operations reach them.

pub(crate) mod container;
pub(crate) mod scripts;

pub(crate) use container::ContainerFiles;
