//! The transfer policy: who may transfer the zone (the allow list), with which key, how their
//! addresses are logged, whom to notify, how many transfers may run at once (`[transfer]`).
//!
//! Design note: these are settings the transfer service ([`super::transfers::Transfers`], used
//! by [`super::xfr`]) holds and reads when a request comes, never the query path; the zone
//! knows nothing of them. The allow list and the log policy are shared behind a lock so that a
//! reload (SIGHUP) changes them in place for every holder; the rest changes only with a
//! restart.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};

use super::tsig::TsigKey;
use super::xfr_gate::{Gate, TransferLimits};
use crate::cidr::Cidr;
use crate::privacy::{ClientIp, IpPolicy};

/// Networks allowed to transfer. Clones share the list, so the daemon's reload (SIGHUP) changes
/// in place what the transfer service checks; it is read only when a transfer is requested, never on the
/// query path.
#[derive(Clone, Debug, Default)]
pub struct AllowList(Arc<RwLock<Vec<Cidr>>>);

impl AllowList {
    /// A list of these networks.
    pub fn new(networks: Vec<Cidr>) -> Self {
        Self(Arc::new(RwLock::new(networks)))
    }

    /// The networks now.
    pub(crate) fn networks(&self) -> Vec<Cidr> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Allows these networks from the next request on (every clone sees them).
    pub(crate) fn replace(&self, networks: Vec<Cidr>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = networks;
    }

    /// How many networks.
    pub(crate) fn len(&self) -> usize {
        self.0.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether `ip` is in one of the networks.
    fn contains(&self, ip: IpAddr) -> bool {
        self.0.read().unwrap_or_else(PoisonError::into_inner).iter().any(|net| net.contains(ip))
    }
}

impl PartialEq for AllowList {
    /// The same networks now.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.networks() == other.networks()
    }
}

/// How client addresses appear in transfer logs (`privacy.client_ip`). Clones share it, so a
/// reload changes it in place, as it does the [`AllowList`].
#[derive(Clone, Debug, Default)]
pub struct LogPolicy(Arc<RwLock<IpPolicy>>);

impl LogPolicy {
    /// A shared policy, set to `policy`.
    pub fn new(policy: IpPolicy) -> Self {
        Self(Arc::new(RwLock::new(policy)))
    }

    /// The policy now.
    pub(crate) fn get(&self) -> IpPolicy {
        *self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Uses `policy` from the next log line on (every clone sees it).
    pub(crate) fn replace(&self, policy: IpPolicy) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = policy;
    }
}

impl PartialEq for LogPolicy {
    /// The same policy now.
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// Who may transfer the zone, with which key, and whom to notify (`[transfer]`).
#[derive(Clone, Debug, PartialEq)]
pub struct TransferSettings {
    /// Networks allowed to transfer (changed in place by a reload).
    pub allow: AllowList,
    /// Secondaries told of every change.
    pub notify: Vec<SocketAddr>,
    /// When set, transfers and NOTIFY need this key.
    pub key: Option<Arc<TsigKey>>,
    /// How client addresses appear in logs (`privacy.client_ip`; changed in place by a reload).
    pub client_ip: LogPolicy,
    /// With `wait_for_secondaries = "all"`: how long an update waits at most for every
    /// secondary in `notify` to serve its serial (`None`: it does not wait).
    pub wait: Option<std::time::Duration>,
    /// Transfers at once, in all and per client network.
    pub limits: TransferLimits,
    /// The transfers running and the refusals to log (clones share it).
    pub gate: Arc<Gate>,
}

impl TransferSettings {
    /// Whether `peer` may transfer.
    pub(super) fn allows(&self, peer: SocketAddr) -> bool {
        self.allow.contains(peer.ip())
    }

    /// The client as logs may show it.
    pub(super) fn client(&self, peer: SocketAddr) -> String {
        self.client_ip.get().render(ClientIp::new(peer.ip()))
    }
}
