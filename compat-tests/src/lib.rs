//! Shared helpers for the compatibility tests live in `tests/common`.
