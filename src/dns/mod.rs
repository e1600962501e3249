//! Everything DNS: the wire format, the zone, and the listeners.
//!
//! Design note: this module never depends on the store or the API. The zone is filled by
//! whoever owns the data (the daemon at start, the API on each change) through `Zone` methods,
//! and the listeners only ever read it.

pub mod dnssec;
pub mod journal;
pub mod notify;
pub mod propagation;
pub mod records;
pub mod rrl;
pub mod server;
pub mod stats;
pub mod tsig;
pub mod wire;
pub mod xfr;
pub mod xfr_gate;
pub mod xfr_settings;
pub mod xot;
pub mod zone;
