//! Reliability and security tests: abuse limits, slow clients, crashes and
//! outages of the database, the SMTP server and the erasure targets. Each test
//! prints its figures on lines starting with `RELIABILITY ` (run with
//! `--nocapture` to see them; docs/RELIABILITY.md quotes the last run).

mod abuse;
mod backlog;
mod crash;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../api/mail.rs"]
mod mail;
mod outage;
#[allow(dead_code)]
#[path = "../api/targets_server.rs"]
mod targets_server;

mod idle;
mod process;
