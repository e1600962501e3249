//! Logging from `[logconfig]`: level, destination (stdout, stderr, a file), text or JSON.
//!
//! Design note: the level sits in a reloadable filter, and the daemon's reload (SIGHUP) sets it
//! through [`crate::daemon::reload::LOG_LEVEL`], which this installs. The destination and the
//! format are fixed at start: changing them would mean a second subscriber, and a reload says
//! they need a restart.

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry, fmt, reload};

use crate::config::{Config, LogTarget};

/// The subscriber below the formatting layer: the registry behind the reloadable level.
type Filtered = Layered<reload::Layer<LevelFilter, Registry>, Registry>;

/// Sets up the tracing subscriber from `[logconfig]`, and the hook that changes its level.
pub(super) fn init(config: &Config) -> Result<(), String> {
    use std::io::IsTerminal;
    let (filter, handle) = reload::Layer::new(LevelFilter::from_level(config.log.level));
    let layer = fmt::layer().with_target(false);
    let json = config.log.json;
    let output: Box<dyn Layer<Filtered> + Send + Sync> = match &config.log.target {
        LogTarget::Stdout if json => layer.json().with_writer(std::io::stdout).boxed(),
        LogTarget::Stdout => {
            layer.with_ansi(std::io::stdout().is_terminal()).with_writer(std::io::stdout).boxed()
        }
        LogTarget::Stderr if json => layer.json().with_writer(std::io::stderr).boxed(),
        LogTarget::Stderr => {
            layer.with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).boxed()
        }
        LogTarget::File(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("logconfig.logfile: cannot open {}: {e}", path.display()))?;
            let file = std::sync::Mutex::new(file);
            if json {
                layer.json().with_writer(file).boxed()
            } else {
                layer.with_ansi(false).with_writer(file).boxed()
            }
        }
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))?;
    let set =
        move |level: tracing::Level| handle.reload(LevelFilter::from_level(level)).map_err(|e| e.to_string());
    // Only `serve` sets up logging, once; a second call would find the hook set and keep it.
    let _ = crate::daemon::reload::LOG_LEVEL.set(Box::new(set));
    Ok(())
}
