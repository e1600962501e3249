//! `[metrics]`: the Prometheus exporter's listener.
//!
//! Design note: the section is optional and off when absent (nothing listens, and the DNS
//! workers do not count). Its one key, `listen`, must be a full `address:port`: an operator
//! should see in the file exactly where the metrics are offered, and they are refused on the
//! API's port, where the API's clients (the whole Internet, on a shared instance) would reach
//! them.

use std::net::SocketAddr;

use super::raw::Metrics as RawMetrics;
use super::{Api, ConfigError, key_error, quoted};

/// The exporter's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Metrics {
    /// Where `GET /metrics` is served.
    pub(crate) listen: SocketAddr,
}

/// Reads `[metrics]`; `None` when the section sets no `listen`.
pub(super) fn parse(section: &RawMetrics, api: &Api) -> Result<Option<Metrics>, ConfigError> {
    let Some(text) = section.listen().string()? else { return Ok(None) };
    let text = text.trim();
    let listen: SocketAddr = text.parse().map_err(|_| {
        key_error(
            "metrics.listen",
            format!("{} is not an address:port (e.g. \"127.0.0.1:9153\" or \"[::1]:9153\")", quoted(text)),
        )
    })?;
    let overlaps =
        listen.ip() == api.listen.ip() || listen.ip().is_unspecified() || api.listen.ip().is_unspecified();
    if listen.port() == api.listen.port() && listen.port() != 0 && overlaps {
        return Err(key_error(
            "metrics.listen",
            format!("{listen} is the API's address ({}); metrics need a port of their own", api.listen),
        ));
    }
    Ok(Some(Metrics { listen }))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    /// The smallest valid file with an API port and a `[metrics]` section.
    fn config(metrics: &str) -> Result<Config, crate::config::ConfigError> {
        let text = format!(
            "[general]\ndomain = \"auth.example.org\"\nnsname = \"ns1.auth.example.org\"\nnsadmin = \"admin.example.org\"\n\
             [database]\nengine = \"sqlite3\"\nconnection = \"x.db\"\n\
             [api]\nip = \"127.0.0.1\"\nport = \"8080\"\ntls = \"none\"\n{metrics}"
        );
        Config::from_text(&text, "test")
    }

    #[test]
    fn off_when_absent_and_read_when_given() {
        assert_eq!(config("").unwrap().metrics, None);
        let on = config("[metrics]\nlisten = \"127.0.0.1:9153\"\n").unwrap();
        assert_eq!(on.metrics.unwrap().listen, "127.0.0.1:9153".parse().unwrap());
    }

    #[test]
    fn the_api_port_and_bad_addresses_are_refused_by_key() {
        for bad in ["127.0.0.1:8080", "0.0.0.0:8080", "localhost:9153", "9153"] {
            let error = config(&format!("[metrics]\nlisten = \"{bad}\"\n")).unwrap_err().to_string();
            assert!(error.contains("metrics.listen"), "{bad}: {error}");
        }
    }
}
