//! The process metrics every Prometheus exporter has: start time, CPU, memory, descriptors.
//!
//! Design note: read from Linux's `/proc/self` at scrape time, under the names and meanings of
//! the Prometheus client libraries' process collectors (`process_start_time_seconds`, …), so
//! that existing dashboards and alerts work unchanged. Written here rather than taken from
//! `prometheus`'s `process` feature, which brings the `procfs` crate and its dependencies for
//! five numbers. On a system without `/proc` the metrics are left out, not invented.

use prometheus::proto::MetricFamily;

/// Clock ticks per second of `/proc`'s times: `USER_HZ`, fixed at 100 in Linux's user ABI on
/// every architecture we build for.
const TICKS_PER_SECOND: f64 = 100.0;

/// A gauge's families with this value.
fn gauge(name: &str, help: &str, value: f64) -> Vec<MetricFamily> {
    let metric = prometheus::Gauge::new(name, help).expect("valid metric name");
    metric.set(value);
    prometheus::core::Collector::collect(&metric)
}

/// The fields of `/proc/self/stat` after the command name (field 3 onwards).
fn stat_fields(stat: &str) -> Vec<&str> {
    // The command name is in parentheses and may itself hold spaces and parentheses.
    stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default()
}

/// The value of a `Key:   N kB` line of `/proc/self/status`, in bytes.
fn status_kb(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    let kb: f64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024.0)
}

/// The soft limit on open files, from `/proc/self/limits`.
fn max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// The system's boot time (seconds since the epoch), from `/proc/stat`.
fn boot_time(stat: &str) -> Option<f64> {
    stat.lines().find_map(|line| line.strip_prefix("btime "))?.trim().parse().ok()
}

/// The process metrics available on this system.
pub(super) fn gather() -> Vec<MetricFamily> {
    let mut out = Vec::new();
    let read = |path: &str| std::fs::read_to_string(path).ok();
    if let Some(stat) = read("/proc/self/stat") {
        let fields = stat_fields(&stat);
        // utime and stime are fields 14 and 15, starttime field 22 (1-based; ours start at 3).
        let number = |field: usize| fields.get(field - 3).and_then(|v| v.parse::<f64>().ok());
        if let (Some(user), Some(system)) = (number(14), number(15)) {
            let cpu = prometheus::Counter::new(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
            )
            .expect("valid metric name");
            cpu.inc_by((user + system) / TICKS_PER_SECOND);
            out.extend(prometheus::core::Collector::collect(&cpu));
        }
        if let (Some(start), Some(boot)) = (number(22), read("/proc/stat").as_deref().and_then(boot_time)) {
            out.extend(gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                boot + start / TICKS_PER_SECOND,
            ));
        }
    }
    if let Some(status) = read("/proc/self/status") {
        if let Some(rss) = status_kb(&status, "VmRSS:") {
            out.extend(gauge("process_resident_memory_bytes", "Resident memory size in bytes.", rss));
        }
        if let Some(virtual_size) = status_kb(&status, "VmSize:") {
            out.extend(gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", virtual_size));
        }
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        // The directory handle being read is one of the entries; it is not the process's own.
        let open = entries.count().saturating_sub(1);
        out.extend(gauge("process_open_fds", "Number of open file descriptors.", open as f64));
    }
    if let Some(max) = read("/proc/self/limits").as_deref().and_then(max_fds) {
        out.extend(gauge("process_max_fds", "Maximum number of open file descriptors.", max));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_proc_formats() {
        let fields = stat_fields("42 (a) b) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 1234 5");
        assert_eq!(fields[0], "S");
        assert_eq!(fields[14 - 3], "250");
        assert_eq!(fields[22 - 3], "1234");
        assert_eq!(status_kb("Name:\tx\nVmRSS:\t   2048 kB\n", "VmRSS:"), Some(2048.0 * 1024.0));
        assert_eq!(
            max_fds(
                "Limit Soft Hard Units\nMax open files            1024                 4096                 files\n"
            ),
            Some(1024.0)
        );
        assert_eq!(boot_time("cpu 1 2\nbtime 1700000000\n"), Some(1_700_000_000.0));
    }

    #[test]
    fn this_process_has_its_metrics() {
        let names: Vec<String> = gather().iter().map(|f| f.name().to_owned()).collect();
        for name in ["process_start_time_seconds", "process_resident_memory_bytes", "process_open_fds"] {
            assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
        }
    }
}
