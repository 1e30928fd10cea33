//! apiserver
#![forbid(unsafe_code)]
