//! What the generator reads from the operating system: CPU time and resident memory of a
//! process (`/proc/<pid>/stat`, `/proc/<pid>/status`), the open-files limit (raised to the
//! hard limit before connecting, with a clear error when a run cannot fit), and the
//! ephemeral port range that bounds connections per source address.

use std::fs;

use anyhow::bail;

/// File descriptors kept free besides one per connection (stdio, epoll, timers, the JSON
/// file, an in-process server's listener).
pub(crate) const FD_MARGIN: u64 = 64;

fn clock_ticks_per_sec() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

/// User + system CPU seconds of a process (`self` or a pid), all threads included.
pub(crate) fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let text = fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; fields after it start at the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ')' the first field is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks_per_sec())
}

/// Resident set size of a process in bytes (`VmRSS`).
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Summed CPU seconds of several processes (the nodes of a cluster); `None` when the list
/// is empty or any of them cannot be read (a partial sum would understate the cost).
pub(crate) fn cpu_seconds_sum(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| cpu_seconds(Some(*p))).sum()
}

/// Summed resident set size of several processes; `None` as for [`cpu_seconds_sum`].
pub(crate) fn rss_sum(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| rss_bytes(*p)).sum()
}

/// Raises the soft open-files limit to the hard limit and checks that `connections`
/// sockets (plus a margin) fit. Returns the soft limit in force.
pub(crate) fn ensure_fd_limit(connections: u64) -> anyhow::Result<u64> {
    let needed = connections + FD_MARGIN;
    let soft = rlimit::increase_nofile_limit(u64::MAX)
        .map_err(|e| anyhow::anyhow!("cannot read or raise the open-files limit: {e}"))?;
    if needed > soft {
        let hard = rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(_, h)| h.to_string())
            .unwrap_or_else(|_| "unknown".into());
        bail!(
            "{connections} connections need {needed} file descriptors ({FD_MARGIN} spare) but \
             the open-files limit (RLIMIT_NOFILE) is {soft} (hard limit {hard}); raise it \
             (ulimit -n, LimitNOFILE=) or ask for fewer connections"
        );
    }
    Ok(soft)
}

/// How many ephemeral ports one source address can use towards one destination.
pub(crate) fn ephemeral_ports() -> u64 {
    let parsed = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(|v| v.parse::<u64>());
            match (it.next(), it.next()) {
                (Some(Ok(lo)), Some(Ok(hi))) if hi >= lo => Some(hi - lo + 1),
                _ => None,
            }
        });
    parsed.unwrap_or(28_232)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_and_rss() {
        assert!(cpu_seconds(None).is_some());
        assert!(rss_bytes(std::process::id()).is_some_and(|b| b > 0));
        assert!(ephemeral_ports() > 1000);
        let me = std::process::id();
        assert!(cpu_seconds_sum(&[]).is_none());
        assert!(rss_sum(&[me, me]).is_some_and(|b| b > 0));
        assert!(cpu_seconds_sum(&[me, u32::MAX]).is_none());
    }
}
