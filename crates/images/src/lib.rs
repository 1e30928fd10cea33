//! OCI images for the node agent.
