//! Errors of the patch engines. Messages name the failing operation, the path and the reason,
//! because the API server returns them to the client verbatim (kubectl prints them).

use crate::fieldset::Conflict;

/// Why a JSON patch, merge patch or strategic merge patch could not be applied.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// The body is not a JSON Patch document (an array of operations).
    #[error("invalid JSON patch document: {0}")]
    InvalidJsonPatch(String),
    /// One RFC 6902 operation failed (`index` counts from 0, like Kubernetes' messages).
    #[error("json patch operation {index} ({op}) failed at path '{path}': {reason}")]
    JsonPatchOp {
        /// Position of the failing operation in the patch array.
        index: usize,
        /// The operation name (`add`, `remove`, `replace`, `move`, `copy`, `test`).
        op: String,
        /// The JSON pointer of the operation.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A merge patch or strategic merge patch body that is not a JSON object.
    #[error("{kind} must be a JSON object, got {found}")]
    NotAnObject {
        /// Which document: "merge patch", "strategic merge patch", "original object".
        kind: &'static str,
        /// The JSON type that was found.
        found: &'static str,
    },
    /// Strategic merge patch is only defined for compiled-in kinds (Kubernetes answers 415 for CRDs).
    #[error(
        "strategic merge patch is not supported for {kind}.{api_version}; use application/merge-patch+json or application/apply-patch+yaml"
    )]
    StrategicUnsupported {
        /// apiVersion of the target.
        api_version: String,
        /// kind of the target.
        kind: String,
    },
    /// A `$patch` directive with an unknown or misplaced value.
    #[error("unknown patch type: {directive} at {path}")]
    BadPatchType {
        /// The value found in `$patch`.
        directive: String,
        /// Where it was found.
        path: String,
    },
    /// `$patch: merge` inside a list, which Kubernetes does not implement.
    #[error("merging lists cannot yet be specified in the patch (at {path})")]
    MergeDirectiveInList {
        /// The list's path.
        path: String,
    },
    /// A list element of a merge list lacks the declared merge key.
    #[error("element of {path} does not contain declared merge key: {key}")]
    MissingMergeKey {
        /// The merge key, e.g. `name`.
        key: String,
        /// The list's path.
        path: String,
    },
    /// A directive whose value has the wrong shape (`$retainKeys` not a list, ...).
    #[error("invalid {directive} directive at {path}: {reason}")]
    BadDirective {
        /// The directive, e.g. `$retainKeys` or `$setElementOrder/containers`.
        directive: String,
        /// The map holding it.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Lists mixing element types, or lists of lists, which cannot be merged.
    #[error("cannot merge list at {path}: {reason}")]
    BadList {
        /// The list's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Why a server-side apply was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// Fields owned by other managers would change; the caller must answer 409 Conflict
    /// (reason `Conflict`) with this message, and may retry with `force=true`.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The applied configuration is malformed (answer 400 / 422).
    #[error("{0}")]
    Invalid(String),
}

/// Renders Kubernetes' conflict message (`k8s.io/apiserver/.../fieldmanager/internal/conflict.go`):
/// one conflict on one line, several grouped by manager (sorted), one path per line.
fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager_display(),
            only.field
        );
    }
    let mut managers: Vec<String> = conflicts.iter().map(Conflict::manager_display).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for m in &managers {
        lines.push(format!("conflicts with {m}:"));
        for c in conflicts.iter().filter(|c| &c.manager_display() == m) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}
