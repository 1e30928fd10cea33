//! OCI containers through runc and conmon.
