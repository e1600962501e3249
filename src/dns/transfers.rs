//! Zone transfers as a service that reads the zone: the policy of `[transfer]` (who may
//! transfer, with which key, how many at once, whom to notify and wait for) and the decision of
//! what an IXFR gets.
//!
//! Design note: the zone keeps its data and the journal of its commits' differences, and knows
//! nothing of who may read them; [`Transfers`] holds the settings and the zone, and is what the
//! listeners (`server`, `xfr`), the NOTIFY senders (`notify`), the writer waiting for
//! secondaries (`zone_sync`) and the metrics read. The daemon makes one when `[transfer]` is
//! configured, which turns the zone's journal on; without one, nothing transfers and the zone
//! keeps no journal.

use std::sync::Arc;

use super::journal::{Change, Limits};
use super::xfr::MESSAGE_LIMIT;
use super::xfr_settings::TransferSettings;
use super::zone::Zone;

/// Zone transfers of one zone, with their policy.
#[derive(Debug)]
pub struct Transfers {
    /// The zone transferred.
    zone: Arc<Zone>,
    /// Who may transfer, with which key, and whom to notify.
    settings: TransferSettings,
}

/// What an IXFR request gets.
#[derive(Debug)]
pub enum IxfrPlan {
    /// The client is current (or ahead): the SOA alone.
    UpToDate {
        /// The current SOA record.
        soa: Vec<u8>,
    },
    /// The journal reaches back to the client's serial: the differences.
    Incremental {
        /// The current SOA record.
        soa: Vec<u8>,
        /// The steps from the client's serial to the current one.
        changes: Vec<Arc<Change>>,
    },
    /// The journal does not reach back that far, the difference would be larger than the
    /// zone, or the client's serial is exactly 2^31 away (RFC 1982 leaves the comparison
    /// undefined; Knot sends the zone too): the whole zone, by a walk.
    Full,
}

impl Transfers {
    /// Transfers of `zone` under `settings`; the zone keeps a journal within `limits` from now
    /// on.
    pub fn new(zone: Arc<Zone>, settings: TransferSettings, limits: Limits) -> Self {
        zone.keep_journal(limits);
        Self { zone, settings }
    }

    /// The zone transferred.
    pub fn zone(&self) -> &Arc<Zone> {
        &self.zone
    }

    /// The settings.
    pub(crate) fn settings(&self) -> &TransferSettings {
        &self.settings
    }

    /// What to send a client at `client_serial` asking for IXFR.
    pub fn ixfr_plan(&self, client_serial: u32) -> IxfrPlan {
        let steps = self.zone.steps_since(client_serial);
        // Serial arithmetic (RFC 1982): equal or newer means nothing to send; exactly 2^31
        // apart is undefined, and only the whole zone brings such a client back.
        let distance = steps.serial.wrapping_sub(client_serial);
        if distance == 0 || (distance as i32) < 0 && distance != 1 << 31 {
            return IxfrPlan::UpToDate { soa: steps.soa };
        }
        match steps.changes {
            Some(changes) => {
                // Larger than the zone (and than one message): the zone is the cheaper answer,
                // as BIND's max-ixfr-ratio decides.
                let bytes: usize = changes.iter().map(|c| c.size()).sum();
                if bytes > MESSAGE_LIMIT && bytes > self.zone.zone_bytes() {
                    return IxfrPlan::Full;
                }
                IxfrPlan::Incremental { soa: steps.soa, changes }
            }
            None => IxfrPlan::Full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::dnssec::{Algorithm, SigningKey};
    use crate::dns::records::{name_to_wire, parse_record};
    use crate::dns::zone::{Signer, ZoneSettings};

    /// A signed zone of `names` registered names, with transfers open to nobody.
    fn transfers(names: usize) -> Transfers {
        let apex = name_to_wire("auth.example.org").unwrap();
        let settings = ZoneSettings {
            apex: "auth.example.org".into(),
            nsname: "ns1.auth.example.org".into(),
            nsadmin: "admin.example.org".into(),
            records: vec![parse_record("ns1.auth.example.org. A 192.0.2.2", &apex, 3600).unwrap()],
            soa_ttl: 3600,
            negative_ttl: 60,
            txt_ttl: 1,
            persist_ttl: 300,
            default_ttl: 3600,
            udp_size: 1232,
            nsid: None,
        };
        let pkcs8 = SigningKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
        let key = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, &pkcs8).unwrap();
        let zone = Zone::new(&settings, Some(Signer { key, validity: 3600, refresh: 600 })).unwrap();
        let value = |i: usize| format!("{i:A<43}");
        let mut write = zone.begin();
        write.load((0..names).map(|i| (format!("name{i}"), vec![value(i)])));
        write.commit(1000);
        let settings = TransferSettings {
            allow: Default::default(),
            notify: vec![],
            key: None,
            client_ip: Default::default(),
            wait: None,
            limits: crate::dns::xfr_gate::TransferLimits { total: 16, per_network: 4 },
            gate: Default::default(),
        };
        Transfers::new(Arc::new(zone), settings, Limits::default())
    }

    #[test]
    fn a_serial_half_the_space_away_or_a_larger_difference_gets_the_zone() {
        let transfers = transfers(400);
        let zone = Arc::clone(transfers.zone());
        let serial = zone.serial();
        assert!(matches!(transfers.ixfr_plan(serial.wrapping_add(1 << 31)), IxfrPlan::Full));
        assert!(matches!(transfers.ixfr_plan(serial.wrapping_add(1)), IxfrPlan::UpToDate { .. }));
        assert!(matches!(transfers.ixfr_plan(serial), IxfrPlan::UpToDate { .. }));
        assert!(matches!(transfers.ixfr_plan(serial.wrapping_add((1 << 31) + 1)), IxfrPlan::Full));
        let mut write = zone.begin();
        write.txt("name1", &["A".repeat(43)]);
        write.commit(serial + 1);
        assert!(matches!(transfers.ixfr_plan(serial), IxfrPlan::Incremental { .. }));
        // A new signing epoch replaces every signature: the difference outweighs the zone.
        let mut write = zone.begin();
        write.epoch(zone.epoch() + 3600);
        assert!(write.commit(serial + 2).resigned > 0);
        assert!(matches!(transfers.ixfr_plan(serial + 1), IxfrPlan::Full));
        // Older than the journal (a load into an empty zone starts it): the whole zone.
        assert!(matches!(transfers.ixfr_plan(serial - 1), IxfrPlan::Full));
    }
}
