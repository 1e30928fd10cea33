//! Drover's node agent. For now only [`hollow`]: simulated nodes that register,
//! heartbeat and report their pods Running without starting containers (for
//! end-to-end and scale tests of the control plane). The real runc agent will live
//! beside it.
#![forbid(unsafe_code)]

pub mod hollow;
pub mod node;
