//! DNS counters: what the listeners answered, and how far each secondary is behind.
//!
//! Design note: the UDP query path is the hot one (hundreds of thousands of queries per second
//! per core), so its counters cost one plain add per query and nothing else: no lock, no
//! allocation, no shared cache line. Each UDP worker thread owns one [`Counters`] block (its own
//! allocation, aligned to 128 bytes so that two workers' blocks never share a cache line or an
//! adjacent-line prefetch pair) and is its only writer, so an increment is a relaxed load and
//! store, not a locked read-modify-write. TCP connections run as tasks on any runtime thread and
//! share one block with relaxed `fetch_add`: TCP is rare and already pays a system call or two
//! per message. A reader (the metrics exporter, at scrape time) sums the blocks; a relaxed
//! read may miss an increment made in the same instant, which the next scrape shows.
//!
//! What is counted is read back from the reply the worker is about to send (the header's RCODE
//! and TC bit) and the question's type, so the answering code in `zone/` and `wire/` carries no
//! counting. Types are grouped into a fixed set of classes and RCODEs are the header's four
//! bits, so the label sets are bounded; nothing here knows a client address or a name.
//!
//! Zone transfers and NOTIFYs are counted here too, by outcome ([`TransferCounts`], held by the
//! transfer gate, and [`Secondary`]): one relaxed `fetch_add` per transfer or NOTIFY sent, which
//! is nothing next to the transfer or the datagram itself.
//!
//! Nothing outside `dns/` is used: the daemon hands a [`DnsStats`] to the listeners when metrics
//! are on (`None` leaves the counting out of the loop altogether) and the exporter reads it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::wire::rtype;

/// Question types counted by name; anything else is `other`, an unparsed question `none`.
pub(crate) const QTYPE_NAMES: [&str; 13] =
    ["A", "NS", "SOA", "AAAA", "TXT", "CAA", "DS", "DNSKEY", "IXFR", "AXFR", "ANY", "other", "none"];
/// Index of `other` in [`QTYPE_NAMES`].
const QTYPE_OTHER: usize = 11;
/// Index of `none` in [`QTYPE_NAMES`].
const QTYPE_NONE: usize = 12;

/// Names of the header RCODEs (RFC 6895 section 2.3), by value.
pub(crate) const RCODE_NAMES: [&str; 16] = [
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "YXDOMAIN",
    "YXRRSET",
    "NXRRSET",
    "NOTAUTH",
    "NOTZONE",
    "DSOTYPENI",
    "RCODE12",
    "RCODE13",
    "RCODE14",
    "RCODE15",
];

/// The class index of a question type (into [`QTYPE_NAMES`]).
fn qtype_index(qtype: Option<u16>) -> usize {
    match qtype {
        None => QTYPE_NONE,
        Some(rtype::A) => 0,
        Some(rtype::NS) => 1,
        Some(rtype::SOA) => 2,
        Some(rtype::AAAA) => 3,
        Some(rtype::TXT) => 4,
        Some(rtype::CAA) => 5,
        Some(rtype::DS) => 6,
        Some(rtype::DNSKEY) => 7,
        Some(rtype::IXFR) => 8,
        Some(rtype::AXFR) => 9,
        Some(rtype::ANY) => 10,
        Some(_) => QTYPE_OTHER,
    }
}

/// The counters of one UDP worker, or of all TCP connections together.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Counters {
    /// Whether several threads write (TCP): then increments are atomic read-modify-writes.
    shared: bool,
    /// Answers sent, by question type class and header RCODE.
    answers: [[AtomicU64; 16]; QTYPE_NAMES.len()],
    /// Answers sent with TC set because they did not fit the client's size.
    truncated_size: AtomicU64,
    /// Answers sent with TC set (and nothing else) by the rate limiter's slip.
    truncated_rate_limit: AtomicU64,
    /// Queries the rate limiter dropped without an answer.
    dropped_rate_limit: AtomicU64,
    /// Messages left unanswered for any other reason (not a query, too large, an answer).
    unanswered: AtomicU64,
}

/// What a [`Counters`] block (or a sum of them) held at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Answers by question type class (index into [`QTYPE_NAMES`]) and RCODE.
    pub(crate) answers: [[u64; 16]; QTYPE_NAMES.len()],
    /// See [`Counters`].
    pub(crate) truncated_size: u64,
    /// See [`Counters`].
    pub(crate) truncated_rate_limit: u64,
    /// See [`Counters`].
    pub(crate) dropped_rate_limit: u64,
    /// See [`Counters`].
    pub(crate) unanswered: u64,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self {
            answers: [[0; 16]; QTYPE_NAMES.len()],
            truncated_size: 0,
            truncated_rate_limit: 0,
            dropped_rate_limit: 0,
            unanswered: 0,
        }
    }
}

impl Counters {
    /// A zeroed block; `shared` when more than one thread will write to it.
    fn new(shared: bool) -> Self {
        Self {
            shared,
            answers: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            truncated_size: AtomicU64::new(0),
            truncated_rate_limit: AtomicU64::new(0),
            dropped_rate_limit: AtomicU64::new(0),
            unanswered: AtomicU64::new(0),
        }
    }

    /// Adds one. With a single writer a relaxed load and store is exact and needs no locked
    /// instruction; the branch is the same every time for a given block.
    #[inline]
    fn bump(&self, counter: &AtomicU64) {
        if self.shared {
            counter.fetch_add(1, Ordering::Relaxed);
        } else {
            counter.store(counter.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        }
    }

    /// Counts one message handled: `qtype` is the question's type (`None` when it did not
    /// parse), `reply` what is about to be sent (empty: nothing), `slipped` whether the rate
    /// limiter asked for the truncated answer.
    #[inline]
    pub(crate) fn answered(&self, qtype: Option<u16>, reply: &[u8], slipped: bool) {
        let (Some(&flags), Some(&rcode)) = (reply.get(2), reply.get(3)) else {
            self.bump(&self.unanswered);
            return;
        };
        self.bump(&self.answers[qtype_index(qtype)][usize::from(rcode & 0x0F)]);
        if slipped {
            self.bump(&self.truncated_rate_limit);
        } else if flags & 0x02 != 0 {
            self.bump(&self.truncated_size);
        }
    }

    /// Counts one query the rate limiter dropped.
    #[inline]
    pub(crate) fn dropped(&self) {
        self.bump(&self.dropped_rate_limit);
    }

    /// Counts one message left unanswered before it reached the answering code.
    #[inline]
    pub(crate) fn unanswered(&self) {
        self.bump(&self.unanswered);
    }

    /// Adds this block's counts into `sum`.
    fn add_to(&self, sum: &mut Snapshot) {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for (row, counters) in sum.answers.iter_mut().zip(&self.answers) {
            for (total, counter) in row.iter_mut().zip(counters) {
                *total += read(counter);
            }
        }
        sum.truncated_size += read(&self.truncated_size);
        sum.truncated_rate_limit += read(&self.truncated_rate_limit);
        sum.dropped_rate_limit += read(&self.dropped_rate_limit);
        sum.unanswered += read(&self.unanswered);
    }
}

/// Transfer kinds counted, by index ([`TransferCounts`]).
pub(crate) const TRANSFER_KINDS: [&str; 2] = ["AXFR", "IXFR"];
/// Names of the [`TransferOutcome`]s, by index.
pub(crate) const TRANSFER_OUTCOMES: [&str; 3] = ["complete", "cut_short", "refused"];

/// How a transfer request over TCP ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TransferOutcome {
    /// Sent to the end (an AXFR, an IXFR's difference, or the one SOA of an up-to-date IXFR).
    Complete = 0,
    /// Started and not finished: the client stopped reading or left.
    CutShort = 1,
    /// Answered with an error (TSIG, not allowed, a cap reached, malformed, not our zone).
    Refused = 2,
}

/// Transfer requests over TCP since the start, by kind and outcome.
#[derive(Debug, Default)]
pub(crate) struct TransferCounts {
    /// Indexed by kind ([`TRANSFER_KINDS`]), then outcome ([`TRANSFER_OUTCOMES`]).
    counts: [[AtomicU64; TRANSFER_OUTCOMES.len()]; TRANSFER_KINDS.len()],
}

impl TransferCounts {
    /// Counts one request: `axfr` tells AXFR from IXFR.
    pub(crate) fn count(&self, axfr: bool, outcome: TransferOutcome) {
        self.counts[usize::from(!axfr)][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts, by kind then outcome.
    pub(crate) fn snapshot(&self) -> [[u64; TRANSFER_OUTCOMES.len()]; TRANSFER_KINDS.len()] {
        self.counts.each_ref().map(|row| row.each_ref().map(|c| c.load(Ordering::Relaxed)))
    }
}

/// Names of the [`NotifyOutcome`]s, by index.
pub(crate) const NOTIFY_OUTCOMES: [&str; 5] =
    ["acknowledged", "timeout", "error_rcode", "bad_tsig", "unreachable"];

/// How one NOTIFY attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotifyOutcome {
    /// The secondary answered without error.
    Acknowledged = 0,
    /// No answer in time.
    Timeout = 1,
    /// The secondary answered with an error RCODE.
    ErrorRcode = 2,
    /// The answer's TSIG was missing or did not verify.
    BadTsig = 3,
    /// Sending or receiving failed (e.g. the port is closed).
    Unreachable = 4,
}

/// What a NOTIFY task knows of its secondary.
#[derive(Debug)]
pub(crate) struct Secondary {
    /// The serial of the last acknowledged NOTIFY; `u64::MAX` before the first.
    acknowledged: AtomicU64,
    /// Since when (seconds since the epoch) the zone has held a serial the secondary has not
    /// acknowledged; 0 while it is up to date.
    behind_since: AtomicU64,
    /// NOTIFY attempts, by outcome ([`NOTIFY_OUTCOMES`]).
    notifies: [AtomicU64; NOTIFY_OUTCOMES.len()],
}

impl Secondary {
    /// Counts one NOTIFY attempt that ended with `outcome`.
    pub(crate) fn notified(&self, outcome: NotifyOutcome) {
        self.notifies[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// NOTIFY attempts so far, by outcome ([`NOTIFY_OUTCOMES`]).
    pub(crate) fn notifies(&self) -> [u64; NOTIFY_OUTCOMES.len()] {
        self.notifies.each_ref().map(|c| c.load(Ordering::Relaxed))
    }

    /// Records that the zone moved to a serial the secondary has not acknowledged yet, at
    /// `now`; an earlier start of the lag is kept.
    pub(crate) fn zone_changed(&self, now: u64) {
        let _ = self.behind_since.compare_exchange(0, now.max(1), Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Records an acknowledged NOTIFY for `serial`, while the zone serves `current`.
    pub(crate) fn acknowledged(&self, serial: u32, current: u32) {
        self.acknowledged.store(u64::from(serial), Ordering::Relaxed);
        if serial == current {
            self.behind_since.store(0, Ordering::Relaxed);
        }
    }

    /// The last acknowledged serial, if any.
    pub(crate) fn serial(&self) -> Option<u32> {
        u32::try_from(self.acknowledged.load(Ordering::Relaxed)).ok()
    }

    /// Seconds the secondary has been behind the zone at `now` (0 when up to date).
    pub(crate) fn seconds_behind(&self, now: u64) -> u64 {
        match self.behind_since.load(Ordering::Relaxed) {
            0 => 0,
            since => now.saturating_sub(since),
        }
    }
}

/// Every DNS counter of the process: one block per UDP worker, one for TCP, one record per
/// secondary.
#[derive(Debug)]
pub(crate) struct DnsStats {
    /// The UDP workers' blocks, in the order they were handed out.
    udp: Mutex<Vec<Arc<Counters>>>,
    /// The block all TCP connections share.
    tcp: Arc<Counters>,
    /// The secondaries, in the order of `[transfer] notify`.
    secondaries: Mutex<Vec<Arc<Secondary>>>,
}

impl Default for DnsStats {
    fn default() -> Self {
        Self { udp: Mutex::default(), tcp: Arc::new(Counters::new(true)), secondaries: Mutex::default() }
    }
}

impl DnsStats {
    /// A new block for one UDP worker thread, which must be its only writer.
    pub(crate) fn udp_worker(&self) -> Arc<Counters> {
        let counters = Arc::new(Counters::new(false));
        self.udp.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::clone(&counters));
        counters
    }

    /// The block TCP connections share.
    pub(crate) fn tcp(&self) -> Arc<Counters> {
        Arc::clone(&self.tcp)
    }

    /// A new record for the next secondary (numbered from 1 in the order of registration).
    pub(crate) fn secondary(&self, now: u64) -> Arc<Secondary> {
        let secondary = Arc::new(Secondary {
            acknowledged: AtomicU64::new(u64::MAX),
            behind_since: AtomicU64::new(now.max(1)),
            notifies: Default::default(),
        });
        self.secondaries.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::clone(&secondary));
        secondary
    }

    /// UDP counts (every worker summed) and TCP counts.
    pub(crate) fn totals(&self) -> (Snapshot, Snapshot) {
        let mut udp = Snapshot::default();
        for block in self.udp.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            block.add_to(&mut udp);
        }
        let mut tcp = Snapshot::default();
        self.tcp.add_to(&mut tcp);
        (udp, tcp)
    }

    /// The secondaries, in order.
    pub(crate) fn secondaries(&self) -> Vec<Arc<Secondary>> {
        self.secondaries.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply header with these flags (third byte) and RCODE.
    fn reply(flags: u8, rcode: u8) -> [u8; 12] {
        [0, 1, flags, rcode, 0, 1, 0, 0, 0, 0, 0, 0]
    }

    #[test]
    fn counts_by_type_class_rcode_and_truncation() {
        let stats = DnsStats::default();
        let worker = stats.udp_worker();
        let other = stats.udp_worker();
        worker.answered(Some(rtype::TXT), &reply(0x84, 0), false);
        other.answered(Some(rtype::TXT), &reply(0x84, 0), false);
        worker.answered(Some(rtype::TXT), &reply(0x84, 3), false);
        worker.answered(Some(99), &reply(0x86, 0), false);
        worker.answered(Some(rtype::A), &reply(0x86, 0), true);
        worker.answered(None, &reply(0x80, 1), false);
        worker.answered(Some(rtype::A), &[], false);
        worker.dropped();
        stats.tcp().answered(Some(rtype::SOA), &reply(0x84, 0), false);
        let (udp, tcp) = stats.totals();
        assert_eq!(udp.answers[4][0], 2);
        assert_eq!(udp.answers[4][3], 1);
        assert_eq!(udp.answers[QTYPE_OTHER][0], 1);
        assert_eq!(udp.answers[QTYPE_NONE][1], 1);
        assert_eq!((udp.truncated_size, udp.truncated_rate_limit), (1, 1));
        assert_eq!((udp.dropped_rate_limit, udp.unanswered), (1, 1));
        assert_eq!(tcp.answers[2][0], 1);
        assert_eq!(udp.answers.iter().flatten().sum::<u64>(), 6);
    }

    #[test]
    fn a_block_fills_its_own_cache_lines() {
        assert_eq!(std::mem::align_of::<Counters>(), 128);
        assert_eq!(std::mem::size_of::<Counters>() % 128, 0);
    }

    #[test]
    fn a_secondary_is_behind_from_the_change_until_it_acknowledges_the_current_serial() {
        let stats = DnsStats::default();
        let secondary = stats.secondary(100);
        assert_eq!((secondary.serial(), secondary.seconds_behind(103)), (None, 3));
        secondary.acknowledged(7, 7);
        assert_eq!((secondary.serial(), secondary.seconds_behind(110)), (Some(7), 0));
        secondary.zone_changed(120);
        secondary.zone_changed(125);
        secondary.acknowledged(7, 8);
        assert_eq!(secondary.seconds_behind(130), 10);
        secondary.acknowledged(8, 8);
        assert_eq!(secondary.seconds_behind(131), 0);
    }

    #[test]
    fn transfers_and_notifies_are_counted_by_outcome() {
        let transfers = TransferCounts::default();
        transfers.count(true, TransferOutcome::Complete);
        transfers.count(false, TransferOutcome::Refused);
        transfers.count(false, TransferOutcome::Refused);
        assert_eq!(transfers.snapshot(), [[1, 0, 0], [0, 0, 2]]);
        let secondary = DnsStats::default().secondary(100);
        secondary.notified(NotifyOutcome::Timeout);
        secondary.notified(NotifyOutcome::Acknowledged);
        assert_eq!(secondary.notifies(), [1, 1, 0, 0, 0]);
    }
}
