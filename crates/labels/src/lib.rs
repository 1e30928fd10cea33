//! Label and field selectors: parsing and matching, as Kubernetes defines them.
#![forbid(unsafe_code)]
