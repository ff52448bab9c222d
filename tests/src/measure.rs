//! What a bench measures besides time: CPU spent by this process and by the whole machine
//! (PostgreSQL included), and the process's peak memory. Linux only: read from `/proc`,
//! where CPU times are counted in ticks of 1/100 s.

use std::time::Instant;

const TICKS_PER_SECOND: f64 = 100.0;

/// CPU used from [`CpuMeter::start`] until [`CpuMeter::stop`].
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    pub wall_seconds: f64,
    /// By this process (user and system).
    pub process_seconds: f64,
    /// By every process on the machine, this one included.
    pub machine_seconds: f64,
}

impl CpuUse {
    /// Milliseconds of CPU per unit of work: this process's, and everyone else's.
    pub fn per(&self, units: usize) -> String {
        let ms = |seconds: f64| seconds * 1000.0 / units as f64;
        format!(
            "{:.2} ms CPU each ({:.2} ms this process, {:.2} ms the rest: PostgreSQL, mostly)",
            ms(self.machine_seconds),
            ms(self.process_seconds),
            ms(self.machine_seconds - self.process_seconds)
        )
    }
}

pub struct CpuMeter {
    started: Instant,
    process: f64,
    machine: f64,
}

impl CpuMeter {
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
            process: process_ticks_of("self"),
            machine: machine_busy_ticks(),
        }
    }

    pub fn stop(&self) -> CpuUse {
        CpuUse {
            wall_seconds: self.started.elapsed().as_secs_f64(),
            process_seconds: (process_ticks_of("self") - self.process) / TICKS_PER_SECOND,
            machine_seconds: (machine_busy_ticks() - self.machine) / TICKS_PER_SECOND,
        }
    }
}

/// The most memory this process has held at once so far (`VmHWM`), in MiB.
pub fn peak_rss_mib() -> f64 {
    peak_rss_mib_of("self")
}

/// The most memory process `pid` ("self": this one) has held at once so far, in MiB.
pub fn peak_rss_mib_of(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Starts measuring the peak anew, so that [`peak_rss_mib`] tells the peak of what follows.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU seconds (user and system) process `pid` has used so far.
pub fn cpu_seconds_of(pid: &str) -> f64 {
    process_ticks_of(pid) / TICKS_PER_SECOND
}

/// User and system ticks of process `pid`: fields 14 and 15 of `/proc/<pid>/stat`, counted
/// after the command name, which may hold spaces.
fn process_ticks_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse().ok())
        .collect();
    fields.iter().sum()
}

/// Ticks every CPU spent busy: the first line of `/proc/stat` less idle and I/O wait.
fn machine_busy_ticks() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|field| field.parse().ok())
        .collect();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    ticks.iter().sum::<f64>() - idle
}
