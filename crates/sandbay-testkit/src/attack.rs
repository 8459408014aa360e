//! Attack suite: escapes, special files and races.
