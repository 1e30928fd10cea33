//! Kubernetes streaming protocols.
