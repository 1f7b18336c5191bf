//! Black-box tests: each starts the real keygate binary on a random port and talks HTTP to it.

mod auth;
mod authz;
mod batching;
mod browser;
mod cache;
mod cli;
mod common;
mod foreign;
mod foreign_soap;
mod hostile;
mod keys;
mod logins;
mod multinode;
mod openapi;
mod ops;
#[path = "../support/pg.rs"]
mod pg;
mod pg_cache;
mod readme;
mod secrets;
mod smartphonekey;
mod superoffice;
mod tedee;
mod tenancy;
mod users;
mod validation;
