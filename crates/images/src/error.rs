//! The error type shared by every image operation.

/// Why an image operation failed. The variants are coarse on purpose: the agent maps them onto
/// Kubernetes waiting reasons (`ErrImagePull`, `ErrImageNeverPull`, `InvalidImageName`, ...).
#[derive(thiserror::Error, Debug)]
pub enum ImageError {
    /// The registry answered but has no such repository, tag or digest.
    #[error("image {reference} not found: {detail} (check the image name and tag)")]
    NotFound {
        /// The normalized reference that was requested.
        reference: String,
        /// What the registry said.
        detail: String,
    },
    /// The registry could not be reached at all (connection refused, DNS, TLS handshake, timeout).
    #[error(
        "registry {registry} is unreachable while pulling {reference}: {detail} (check the registry address \
         and network; plain-HTTP registries must be listed as insecure)"
    )]
    Unreachable {
        /// The registry host (and port).
        registry: String,
        /// The normalized reference that was requested.
        reference: String,
        /// The underlying network error.
        detail: String,
    },
    /// The registry refused the credentials (or their absence).
    #[error(
        "registry {registry} denied access to {reference}: {detail} (check the imagePullSecrets credentials)"
    )]
    Unauthorized {
        /// The registry host (and port).
        registry: String,
        /// The normalized reference that was requested.
        reference: String,
        /// What the registry said.
        detail: String,
    },
    /// Content did not hash to the digest that names it; nothing of it was kept.
    #[error(
        "content digest mismatch: expected {expected}, got {actual} (the registry or archive served corrupted \
         data; nothing was cached, retry the pull)"
    )]
    DigestMismatch {
        /// The digest the manifest (or archive) promised.
        expected: String,
        /// The digest of the bytes actually received.
        actual: String,
    },
    /// The pull policy is `Never` and the image is not in the node's store.
    #[error(
        "image {0} is not present on the node and the pull policy is Never (import it with `drover image import` \
         or change imagePullPolicy)"
    )]
    NotPresent(String),
    /// `remove`/`mount_rootfs` named an image the store does not hold.
    #[error("no such image in the node's store: {0}")]
    NoSuchImage(String),
    /// The reference is not a valid image name.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A local filesystem or mount operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest, config, index or archive is malformed or unsupported.
    #[error("malformed or unsupported image content: {0}")]
    Format(String),
    /// The registry answered with an error that fits no other variant (5xx, protocol violations).
    #[error("registry error while pulling {reference}: {detail}")]
    Registry {
        /// The normalized reference that was requested.
        reference: String,
        /// What went wrong.
        detail: String,
    },
}

impl ImageError {
    /// Builds a closure turning an `io::Error` into [`ImageError::Io`] with context.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
        let context = context.into();
        move |source| ImageError::Io { context, source }
    }
}

/// Wraps an `io::Error` with context, for `map_err`.
pub(crate) fn io_err(context: impl std::fmt::Display, source: std::io::Error) -> ImageError {
    ImageError::Io {
        context: context.to_string(),
        source,
    }
}
