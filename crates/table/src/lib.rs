//! Server-side Table output: the columns and cells kubectl shows for each kind.
#![forbid(unsafe_code)]
