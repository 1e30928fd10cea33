//! Label and field selectors: parsing and matching, as Kubernetes defines them.
//!
//! The grammar, the validation rules and the error wording follow
//! `k8s.io/apimachinery/pkg/labels` and `k8s.io/apimachinery/pkg/fields`, so that
//! clients see the same answers from Drover as from a real API server.
#![forbid(unsafe_code)]

mod error;
mod field;
mod label;
mod validation;

pub use error::SelectorError;
pub use field::{FieldSelector, FieldTerm, field_value, supported_field, supported_fields};
pub use label::{LabelSelector, Operator, Requirement};
pub use validation::{is_qualified_name, is_valid_label_value};
