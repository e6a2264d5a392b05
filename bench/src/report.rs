//! Latency histograms and the server's resource use, read from /proc.

use hdrhistogram::Histogram;

/// A latency histogram in microseconds, 1 µs to 60 s, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

/// Formats p50/p99/p99.9 in milliseconds.
pub(crate) fn percentiles(h: &Histogram<u64>, with_999: bool) -> String {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    if with_999 {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms (max {:.2} ms, n={})",
            ms(0.5),
            ms(0.99),
            ms(0.999),
            h.max() as f64 / 1000.0,
            h.len()
        )
    } else {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms (max {:.2} ms, n={})",
            ms(0.5),
            ms(0.99),
            h.max() as f64 / 1000.0,
            h.len()
        )
    }
}

/// CPU seconds (user + system) a process has used so far.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// Peak resident set size of a process in MiB.
pub(crate) fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Prints the server's resource use over the run.
pub(crate) fn server_usage(pid: Option<u32>, cpu_before: Option<f64>) {
    let Some(pid) = pid else { return };
    let cpu = cpu_seconds(pid).zip(cpu_before).map(|(a, b)| a - b);
    println!(
        "server: cpu {} s, peak rss {} MiB",
        cpu.map(|c| format!("{c:.2}")).unwrap_or_else(|| "?".into()),
        peak_rss_mib(pid)
            .map(|r| format!("{r:.0}"))
            .unwrap_or_else(|| "?".into())
    );
}
