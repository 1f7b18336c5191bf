//! Pure code without I/O: key generation and encodings, keyed hashing, constant-time
//! comparison, the verify policy and event types.

pub mod credential;
pub mod event;
pub mod foreign;
pub mod net;
pub mod secret;
pub mod share;
pub mod tz;
