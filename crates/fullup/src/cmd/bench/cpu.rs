//! CPU time per delivery: the figure that moves least with the machine's other load.
//!
//! Read from `/proc` (Linux only; elsewhere the figures are absent): the service the
//! bench started (every node of it, with `--nodes`), this process (the load client and the receiver), and, for a service on
//! PostgreSQL, every `postgres` process of the machine, so the database server must be
//! otherwise idle for its figure to mean anything. A backend that exits during the run
//! is counted through the postmaster's reaped-children time.

use std::time::Duration;

use procfs::process::Process;
use serde::Serialize;

/// CPU time used so far by each party of a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    service: Option<Duration>,
    database: Option<Duration>,
    bench: Option<Duration>,
}

impl CpuTimes {
    /// Reads the times now: `service` holds the pids of the service's processes the
    /// bench started (none for `--target`), `database` whether to read the PostgreSQL
    /// server's.
    pub fn now(service: &[u32], database: bool) -> Self {
        Self {
            service: processes_time(service),
            database: database.then(postgres_time).flatten(),
            bench: Process::myself().ok().as_ref().and_then(own_time),
        }
    }

    /// The CPU each party used between `self` and `later`, per delivery.
    pub fn per_delivery(&self, later: &Self, deliveries: usize) -> CpuPerDelivery {
        let per = |a: Option<Duration>, b: Option<Duration>| {
            let used = b?.checked_sub(a?)?;
            (deliveries > 0).then(|| used.as_secs_f64() * 1e3 / deliveries as f64)
        };
        CpuPerDelivery {
            service_cpu_ms_per_delivery: per(self.service, later.service),
            database_cpu_ms_per_delivery: per(self.database, later.database),
            bench_cpu_ms_per_delivery: per(self.bench, later.bench),
        }
    }
}

/// Milliseconds of CPU (user + system) per delivery; absent where not measured.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuPerDelivery {
    /// The `fullup serve` process (every node, with `--nodes`).
    pub service_cpu_ms_per_delivery: Option<f64>,
    /// Every PostgreSQL server process (a service on PostgreSQL only).
    pub database_cpu_ms_per_delivery: Option<f64>,
    /// The bench itself: its load client and its verifying receiver.
    pub bench_cpu_ms_per_delivery: Option<f64>,
}

impl CpuPerDelivery {
    /// One line for the table.
    pub fn describe(&self) -> String {
        let show = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |ms| format!("{ms:.3} ms"));
        format!(
            "service {}, database {}, bench (load + receiver) {}",
            show(self.service_cpu_ms_per_delivery),
            show(self.database_cpu_ms_per_delivery),
            show(self.bench_cpu_ms_per_delivery)
        )
    }
}

/// The user + system time of the processes `pids` together; None when there are none
/// or one cannot be read.
fn processes_time(pids: &[u32]) -> Option<Duration> {
    if pids.is_empty() {
        return None;
    }
    pids.iter()
        .map(|&pid| own_time(&Process::new(i32::try_from(pid).ok()?).ok()?))
        .sum()
}

/// A process's own user + system time.
fn own_time(process: &Process) -> Option<Duration> {
    let stat = process.stat().ok()?;
    Some(ticks(stat.utime + stat.stime))
}

/// The user + system time of every `postgres` process, and of the children the
/// postmaster (the one whose parent is not `postgres`) has reaped.
fn postgres_time() -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut found = false;
    for process in procfs::process::all_processes().ok()?.flatten() {
        let Ok(stat) = process.stat() else { continue };
        if stat.comm != "postgres" {
            continue;
        }
        found = true;
        total += ticks(stat.utime + stat.stime);
        let parent_is_postgres = Process::new(stat.ppid)
            .and_then(|p| p.stat())
            .is_ok_and(|p| p.comm == "postgres");
        if !parent_is_postgres {
            let reaped = u64::try_from(stat.cutime + stat.cstime).unwrap_or(0);
            total += ticks(reaped);
        }
    }
    found.then_some(total)
}

fn ticks(n: u64) -> Duration {
    Duration::from_secs_f64(n as f64 / procfs::ticks_per_second() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_cpu_and_per_delivery_divides_it() {
        let before = CpuTimes::now(&[std::process::id()], false);
        let mut x = 0u64;
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = CpuTimes::now(&[std::process::id()], false);
        let per = before.per_delivery(&after, 10);
        let service = per.service_cpu_ms_per_delivery.expect("measured on Linux");
        assert!(service > 0.0, "{per:?}");
        assert_eq!(per.database_cpu_ms_per_delivery, None);
        assert_eq!(
            before.per_delivery(&after, 0).service_cpu_ms_per_delivery,
            None
        );
    }
}
