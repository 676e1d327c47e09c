//! CPU time and memory of a process, from `/proc` (Linux).

use std::time::Instant;

/// A process's CPU time (user + system, all threads) at an instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    pub at: Instant,
    pub cpu_seconds: f64,
}

/// `pid`'s CPU time now, or `None` if it is gone (or this is not Linux).
pub fn cpu_sample(pid: Option<u32>) -> Option<CpuSample> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    let at = Instant::now();
    Some(CpuSample {
        at,
        cpu_seconds: parse_cpu_ticks(&stat)? as f64 / ticks_per_second(),
    })
}

/// CPU used between two samples, in percent of one core.
pub fn cpu_percent(a: Option<CpuSample>, b: Option<CpuSample>) -> Option<f64> {
    let (a, b) = (a?, b?);
    let wall = b.at.duration_since(a.at).as_secs_f64();
    (wall > 0.0).then(|| (b.cpu_seconds - a.cpu_seconds) / wall * 100.0)
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks. The
/// command name (field 2) may hold spaces and parentheses, so fields count from the last
/// `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 is the first after ')'
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no memory arguments.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// The whole machine's CPU time: busy and all, in clock ticks summed over its cores, and
/// how many cores.
#[derive(Debug, Clone, Copy)]
pub struct MachineSample {
    pub busy: u64,
    pub total: u64,
    pub cores: usize,
}

/// The machine's CPU time now, from `/proc/stat`.
pub fn machine_sample() -> Option<MachineSample> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let (busy, total) = parse_machine_ticks(stat.lines().next()?)?;
    let cores = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    Some(MachineSample { busy, total, cores })
}

/// The machine's use between two samples, in percent of one core (100 × cores when every
/// core was busy).
pub fn machine_percent(a: Option<MachineSample>, b: Option<MachineSample>) -> Option<f64> {
    let (a, b) = (a?, b?);
    let total = b.total.checked_sub(a.total)?;
    let busy = b.busy.checked_sub(a.busy)?;
    (total > 0).then(|| busy as f64 / total as f64 * 100.0 * b.cores.max(1) as f64)
}

/// (busy, total) ticks of `/proc/stat`'s `cpu` line: idle and iowait are not busy; guest
/// time is already in user time.
pub fn parse_machine_ticks(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let ticks: Vec<u64> = fields
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = ticks.iter().sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// A process's resident memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// VmRSS: everything resident, file mappings included (a file mapped by several
    /// pipelines counts once per mapping).
    pub rss: u64,
    /// VmHWM: the peak of `rss`.
    pub peak: u64,
    /// RssAnon: heap and stacks only.
    pub anon: u64,
}

/// Resident memory of `pid` now.
pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Memory {
        rss: status_kb(&status, "VmRSS:")? * 1024,
        peak: status_kb(&status, "VmHWM:")? * 1024,
        anon: status_kb(&status, "RssAnon:")? * 1024,
    })
}

fn status_kb(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 \
                    9 0 12345 1000000 500 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_the_machine_s_busy_time() {
        let line = "cpu  100 5 50 800 40 3 2 0 7 0";
        assert_eq!(parse_machine_ticks(line), Some((160, 1000)));
        assert_eq!(parse_machine_ticks("cpu0 1 2 3 4 5 6 7 8"), None);
        let a = MachineSample {
            busy: 100,
            total: 1000,
            cores: 2,
        };
        let b = MachineSample {
            busy: 400,
            total: 2000,
            cores: 2,
        };
        assert_eq!(machine_percent(Some(a), Some(b)), Some(60.0));
        assert!(machine_sample().is_some_and(|m| m.cores >= 1 && m.total >= m.busy));
    }

    #[test]
    fn reads_this_process() {
        assert!(cpu_sample(None).is_some());
        let m = memory(std::process::id()).expect("own status");
        assert!(m.rss > 0 && m.peak >= m.rss && m.anon <= m.rss);
    }
}
