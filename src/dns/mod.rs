//! Everything DNS: the wire format, the zone, and the listeners.
//!
//! Design note: this module never depends on the store or the API. The zone is written by
//! whoever owns the data (`sync`, at start and on each change) through its one write
//! transaction (`Zone::begin`), and the listeners and the transfer service only ever read it.

pub mod dnssec;
pub mod journal;
pub mod notify;
pub mod propagation;
pub mod records;
pub mod rrl;
pub mod server;
pub mod stats;
pub mod transfers;
pub mod tsig;
pub mod wire;
pub mod xfr;
pub mod xfr_gate;
pub mod xfr_settings;
pub mod xot;
pub mod zone;
