//! # shmbus-bridge — carries shmbus topics across hosts through Zenoh
//!
//! SPEC §11: a bridge is an ordinary client of one local bus and a Zenoh
//! session. Local topics matching `--export` patterns are put to Zenoh as
//! keys `shmbus/TOPIC`; Zenoh keys matching `--import` patterns are
//! published into local topics. Order per topic is kept, gaps are counted as
//! loss, and no message is carried back where it came from. Killing a
//! bridge harms no local client: it is a publisher and a subscriber like any
//! other. User documentation: `docs/bridge.md`.
//!
//! Where to start reading: [`bridge::run`] wires everything; [`export`] and
//! [`import`] are the two directions; [`tag`] is the attachment that carries
//! origin and count; [`own`] is how imported messages are kept from being
//! exported again; [`gaps`] turns counts into loss; [`service`] carries
//! services (request/response) as Zenoh queryables.

#![warn(missing_docs)]

pub mod bridge;
pub mod export;
pub mod gaps;
pub mod import;
pub mod options;
pub mod own;
pub mod pattern;
pub mod service;
pub mod stats;
pub mod tag;
pub mod zconfig;

pub use bridge::run;
pub use options::BridgeArgs;
