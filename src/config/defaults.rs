//! Every default value of the configuration, named: what applies when a key is absent.
//!
//! Design note: the defaults live here rather than inline in `build.rs` so that the sample file,
//! the docs and the code can be checked against one list. Types are those of the validated
//! values; the reader widens them to compare with the file's numbers. Privacy defaults are
//! [`crate::privacy::Privacy::default`], beside the type they belong to.

/// `general.listen` when absent: port 53 of all interfaces, as acme-dns does.
pub(crate) const LISTEN: &str = ":53";
/// `general.protocol`: UDP and TCP, both families.
pub(crate) const PROTOCOL: &str = "both";
/// `general.max_clock_skew`, in seconds: NTP keeps clocks within milliseconds, so a minute
/// apart is a clock that is wrong, not one that drifts.
pub const MAX_CLOCK_SKEW: u64 = 60;
/// `dns.soa_ttl`: TTL of the SOA record.
pub(crate) const SOA_TTL: u32 = 3600;
/// `dns.negative_ttl`: short, so that a fresh registration is seen at once.
pub(crate) const NEGATIVE_TTL: u32 = 30;
/// `dns.txt_ttl`: TTL of the TXT answers; 1 s, so a new value is seen at once.
pub(crate) const TXT_TTL: u32 = 1;
/// `dns.persist_ttl`: TTL of the dns-persist-01 records; 5 minutes. A CA treats a TTL shorter
/// than its reuse period as that period (draft-ietf-acme-dns-persist), so a short TTL costs
/// no revalidation; a long one would keep a deleted record alive in resolvers' caches.
pub(crate) const PERSIST_TTL: u32 = 300;
/// `dns.default_ttl`: TTL of static records written without one.
pub(crate) const DEFAULT_TTL: u32 = 3600;
/// `dns.edns_udp_size`: the DNS flag day 2020 recommendation.
pub(crate) const EDNS_UDP_SIZE: u16 = 1232;
/// `dns.tcp_idle_timeout`, in seconds.
pub(crate) const TCP_IDLE_TIMEOUT: u64 = 10;
/// `dns.tcp_first_message_timeout`, in seconds: a resolver sends its query at once.
pub(crate) const TCP_FIRST_MESSAGE_TIMEOUT: u64 = 2;
/// `dns.tcp_max_connections`.
pub(crate) const TCP_MAX_CONNECTIONS: usize = 256;
/// `dns.tcp_max_connections_per_network`: one /24 or /56 holds at most this many.
pub(crate) const TCP_MAX_CONNECTIONS_PER_NETWORK: usize = 32;
/// `dns.rate_limit`: UDP answers per second per client network.
pub(crate) const RATE_LIMIT: u32 = 200;
/// `dns.rate_limit_slip`: every second limited answer is sent truncated.
pub(crate) const RATE_LIMIT_SLIP: u32 = 2;
/// `dns.txt_values`: a certificate for `example.com` and `*.example.com` needs two at once.
pub(crate) const TXT_VALUES: usize = 2;
/// `api.port` with `tls = "none"`.
pub(crate) const API_PORT_HTTP: u16 = 80;
/// `api.port` with TLS.
pub(crate) const API_PORT_HTTPS: u16 = 443;
/// `api.acme_directory` with `tls = "letsencrypt"`.
pub(crate) const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// `api.acme_directory` with `tls = "letsencryptstaging"`.
pub(crate) const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";
/// `api.acme_cache_dir`, relative to the working directory (acme-dns's default).
pub(crate) const ACME_CACHE_DIR: &str = "api-certs";
/// `api.hsts_max_age`: one year.
pub(crate) const HSTS_MAX_AGE: i64 = 31_536_000;
/// `api.trusted_proxies` when `use_header` is on: loopback only.
pub(crate) const TRUSTED_PROXIES: [&str; 2] = ["127.0.0.0/8", "::1/128"];
/// `api.register_rate_limit`: registrations per client network per hour.
pub(crate) const REGISTER_RATE_LIMIT: u32 = 20;
/// `api.auth_failure_limit`: failed authentications per client network and username per 10
/// minutes.
pub(crate) const AUTH_FAILURE_LIMIT: u32 = 30;
/// `api.update_rate_limit`: updates per account per minute, far above any ACME client's need.
pub(crate) const UPDATE_RATE_LIMIT: u32 = 60;
/// `api.body_limit`, in bytes.
pub(crate) const BODY_LIMIT: usize = 16 * 1024;
/// `api.request_timeout`, in seconds.
pub(crate) const REQUEST_TIMEOUT: u64 = 10;
/// `api.header_timeout`, in seconds.
pub(crate) const HEADER_TIMEOUT: u64 = 5;
/// `dnssec.signature_validity`, in seconds: two weeks.
pub(crate) const SIGNATURE_VALIDITY: u32 = 14 * 86_400;
/// `dnssec.refresh`, in seconds: renew with a week left.
pub(crate) const SIGNATURE_REFRESH: u32 = 7 * 86_400;
/// `transfer.wait_timeout`, in seconds: NOTIFY and an IXFR take milliseconds on a healthy
/// network; past this an ACME client is better answered (with a warning in our log).
pub(crate) const WAIT_TIMEOUT: u64 = 10;
/// `transfer.max_transfers`: zone transfers at once, in all. A secondary takes one at a time;
/// sixteen serve several secondaries catching up together, each with its messages in flight.
pub(crate) const MAX_TRANSFERS: usize = 16;
/// `transfer.max_transfers_per_network`: zone transfers at once from one client network (IPv4
/// /24, IPv6 /56), so one network cannot take them all.
pub(crate) const MAX_TRANSFERS_PER_NETWORK: usize = 4;
/// `logconfig.loglevel`.
pub(crate) const LOG_LEVEL: &str = "info";
