//! The process's own vital signs, read from /proc/self at scrape time:
//! resident memory, CPU time, open file descriptors, start time. On a system
//! without /proc the figures read as zero rather than failing the scrape.

use std::fs;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ProcessFigures {
    pub resident_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
    /// Unix time the process started.
    pub start_time: u64,
}

pub fn read() -> ProcessFigures {
    let page_size = sysconf(libc::_SC_PAGESIZE).unwrap_or(4096);
    let ticks = sysconf(libc::_SC_CLK_TCK).unwrap_or(100);
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // `fields[0]` is field 3 (state) of proc(5).
    let field = |n: usize| -> u64 { fields.get(n - 3).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let boot_time = fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse::<u64>().ok())
        .unwrap_or(0);
    ProcessFigures {
        resident_bytes: field(24) * page_size,
        cpu_seconds: (field(14) + field(15)) as f64 / ticks as f64,
        open_fds: fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64),
        start_time: boot_time + field(22) / ticks.max(1),
    }
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value.
    let value = unsafe { libc::sysconf(name) };
    (value > 0).then_some(value as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_reads_its_own_figures() {
        let figures = read();
        assert!(figures.resident_bytes > 1024 * 1024, "{figures:?}");
        assert!(figures.open_fds >= 3, "{figures:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(figures.start_time <= now + 1 && figures.start_time > now - 86_400 * 365);
        assert!(figures.cpu_seconds >= 0.0);
    }
}
