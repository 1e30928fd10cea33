//! Server-side Table output: the columns and cells kubectl shows for each kind.
//!
//! kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints whatever
//! columns the server defines, so the columns and cell logic here follow Kubernetes'
//! `pkg/printers/internalversion/printers.go` (built-in kinds), the apiextensions
//! table convertor (custom resources) and the default table convertor (everything
//! else). The server always generates the wide (`-o wide`) cells; kubectl hides the
//! columns with `priority > 0` unless asked.
#![forbid(unsafe_code)]

mod builtin;
mod crd;
mod util;

use serde_json::{Value, json};

pub use crd::{crd_cells, crd_columns};
pub use util::{human_duration, parse_timestamp};

/// One column definition of a meta.k8s.io/v1 Table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Header text; kubectl upper-cases it (`Nominated Node` → `NOMINATED NODE`).
    pub name: &'static str,
    /// OpenAPI type of the cells: `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: &'static str,
    /// OpenAPI format; `name` marks the column holding the object name.
    pub format: &'static str,
    /// Human description of the column.
    pub description: &'static str,
    /// 0 for default output, 1 for columns shown only with `-o wide`.
    pub priority: i32,
}

impl Column {
    /// The `columnDefinitions` entry of a Table.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// A column definition whose text comes from data (a CRD's additionalPrinterColumns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedColumn {
    /// Header text.
    pub name: String,
    /// OpenAPI type of the cells.
    pub type_: String,
    /// OpenAPI format.
    pub format: String,
    /// Human description of the column.
    pub description: String,
    /// 0 for default output, >0 for `-o wide` only.
    pub priority: i32,
}

impl OwnedColumn {
    /// The `columnDefinitions` entry of a Table.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

impl From<&Column> for OwnedColumn {
    fn from(c: &Column) -> Self {
        OwnedColumn {
            name: c.name.to_string(),
            type_: c.type_.to_string(),
            format: c.format.to_string(),
            description: c.description.to_string(),
            priority: c.priority,
        }
    }
}

/// The columns for a kind (group "" for core). Unknown kinds get Kubernetes' default
/// table convertor columns: `Name` and `Created At`.
pub fn columns(group: &str, kind: &str) -> Vec<Column> {
    builtin::columns(group, kind)
}

/// The cells of one row, in column order (all columns, wide ones included). `now` is
/// Unix seconds, for AGE and other durations.
pub fn cells(group: &str, kind: &str, obj: &Value, now: i64) -> Vec<Value> {
    builtin::cells(group, kind, obj, now)
}
