//! Everything DNS: the wire format, the zone, and the listeners.
//!
//! Design note: this module never depends on the store or the API. The zone is written by
//! whoever owns the data (`zone_sync`, at start and on each change) through its one write
//! transaction (`Zone::begin`), and the listeners and the transfer service only ever read it.

pub mod dnssec;
pub mod journal;
pub(crate) mod notify;
pub(crate) mod propagation;
pub(crate) mod records;
pub(crate) mod rrl;
pub mod server;
pub(crate) mod stats;
pub mod transfers;
pub mod tsig;
pub mod wire;
pub mod xfr;
pub mod xfr_gate;
pub(crate) mod xfr_settings;
pub(crate) mod xot;
pub mod zone;
