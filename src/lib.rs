//! lethe: a GDPR erasure workflow service.
//!
//! `domain` is pure (states, transitions, deadlines, ids); `store`, `http`
//! and the CLI use it. See DESIGN in the repository's docs for the product.

pub mod admin;
pub mod cli;
pub mod config;
pub mod domain;
pub mod egress;
pub mod email;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod startup;
pub mod store;
pub mod support;
pub mod telemetry;
