//! Storage for the support team: accounts (users, sessions, API tokens), the
//! cross-tenant queue and its overview, the actions support takes on requests,
//! and the daily digest's schedule.
//!
//! Every list is bounded (`LIMIT`) and pages with a cursor; every filter has
//! an index (migration 000004_support); overview numbers are `GROUP BY`
//! counts, never loaded rows.

pub mod accounts;
pub mod actions;
pub mod digest;
pub mod queue;
pub mod schema;
