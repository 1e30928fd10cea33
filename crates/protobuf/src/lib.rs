//! Decodes Kubernetes protobuf request bodies (the k8s\0 envelope) into JSON objects.
#![forbid(unsafe_code)]
