//! keygate: a self-hosted access-key service.
//!
//! Layers: wire -> surface ([`api`]) -> [`service`] (rules, one transaction) -> [`store`] (SQL),
//! with the pure [`core`] (keys, hashing, verdicts, events) underneath.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod error;
pub mod listener;
pub mod model;
pub mod server;
pub mod service;
pub mod store;
