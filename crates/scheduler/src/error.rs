//! Errors for objects the scheduler cannot read.

use thiserror::Error;

use api::quantity::QuantityError;

/// A node or pod object that cannot be taken into the snapshot or scheduled. The API
/// server validates objects on write, so these mean a bug or a foreign writer.
#[derive(Debug, Error)]
pub enum ObjectError {
    /// The object has no `metadata.name`.
    #[error("{kind} has no metadata.name")]
    MissingName {
        /// "node" or "pod".
        kind: &'static str,
    },
    /// A pod given to the snapshot has no `spec.nodeName`: only placed pods belong there.
    #[error("pod {pod} has no spec.nodeName")]
    NotBound {
        /// The pod's `namespace/name`.
        pod: String,
    },
    /// A resource quantity does not parse.
    #[error("{object}: invalid quantity")]
    Quantity {
        /// The object's name.
        object: String,
        /// The parse failure.
        #[source]
        source: QuantityError,
    },
    /// A label selector in an affinity term or spread constraint does not parse.
    #[error("{object}: invalid label selector")]
    Selector {
        /// The object's name.
        object: String,
        /// The parse failure.
        #[source]
        source: labels::SelectorError,
    },
}
