//! Builds meta.k8s.io/v1 Tables from objects, with the columns the `table` crate defines
//! for built-in kinds and the CRD's additionalPrinterColumns for custom resources.

use crate::state::{State, now_unix};
use api::ResourceInfo;
use serde_json::{Value, json};

/// The column definitions for a resource.
pub fn column_definitions(state: &State, info: &ResourceInfo) -> Vec<Value> {
    if info.custom {
        let version = state.crd_version(info);
        let apc = version
            .as_ref()
            .and_then(|v| v.get("additionalPrinterColumns"));
        table::crd_columns(apc)
            .iter()
            .map(|c| c.to_json())
            .collect()
    } else {
        table::columns(&info.group, &info.kind)
            .iter()
            .map(|c| c.to_json())
            .collect()
    }
}

/// The cells of one object's row.
pub fn cells(state: &State, info: &ResourceInfo, obj: &Value, now: i64) -> Vec<Value> {
    if info.custom {
        let version = state.crd_version(info);
        let apc = version
            .as_ref()
            .and_then(|v| v.get("additionalPrinterColumns"));
        table::crd_cells(apc, obj, now)
    } else {
        table::cells(&info.group, &info.kind, obj, now)
    }
}

/// One row: cells plus the object as PartialObjectMetadata (the default), the whole
/// object (`includeObject=Object`) or nothing (`None`).
pub fn row(
    state: &State,
    info: &ResourceInfo,
    obj: Value,
    include: Option<&str>,
    now: i64,
) -> Value {
    let cells = cells(state, info, &obj, now);
    let object = match include {
        Some("None") => Value::Null,
        Some("Object") => obj,
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        }),
    };
    let mut r = json!({"cells": cells});
    if !object.is_null() {
        r["object"] = object;
    }
    r
}

/// A whole Table for a list or get (`with_columns` false for watch events after the first).
pub fn table(
    state: &State,
    info: &ResourceInfo,
    items: Vec<Value>,
    rv: &str,
    include: Option<&str>,
    with_columns: bool,
) -> Value {
    let now = now_unix();
    let rows: Vec<Value> = items
        .into_iter()
        .map(|o| row(state, info, o, include, now))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": if with_columns { column_definitions(state, info) } else { vec![] },
        "rows": rows,
    })
}
