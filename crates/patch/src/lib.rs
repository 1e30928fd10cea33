//! Strategic merge patch and server-side apply (managedFields, conflicts) over JSON objects.
#![forbid(unsafe_code)]
