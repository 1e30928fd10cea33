//! The one error type of this crate.

/// Why a selector was rejected. The messages are worded as Kubernetes words them,
/// because kubectl and client libraries show them to users verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label selector requirement is malformed or invalid
    /// (`unable to parse requirement: key: Invalid value: ...`).
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    /// The label selector's token stream is malformed outside a requirement
    /// (`found ',', expected: identifier after ','`).
    #[error("{0}")]
    Syntax(String),
    /// A requirement built from a structured selector (matchLabels/matchExpressions) is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A `matchExpressions` operator other than In, NotIn, Exists, DoesNotExist.
    #[error("{0:?} is not a valid label selector operator")]
    InvalidOperator(String),
    /// A `metav1.LabelSelector` JSON object of the wrong shape.
    #[error("invalid label selector: {0}")]
    Malformed(String),
    /// A field selector term without `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm {
        /// The whole selector as given.
        selector: String,
        /// The term that could not be split.
        term: String,
    },
    /// A backslash escape other than `\\`, `\,`, `\=` in a field selector value.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscape(String),
    /// An unescaped `,` or `=` in a field selector value. Kubernetes prints the
    /// character as its code point (Go's `%v` of a rune), and so do we.
    #[error("invalid field selector: unescaped character in value: {0}")]
    UnescapedRune(u32),
}
