//! Loopback ports for peers that must be told theirs in advance (quire
//! itself binds port 0 and says which it got).

/// A free loopback port, for a peer that must be told one in advance.
///
/// Taken outside the kernel's ephemeral range, and never the same twice in
/// this process: the kernel hands ephemeral ports to every `bind(:0)` and
/// outgoing connection of the tests running beside this one, so a port
/// picked there could be taken before the peer binds it.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let (first, count) = ports_outside_ephemeral_range();
    // Processes running the suite side by side start apart.
    let start = std::process::id() % count;
    for _ in 0..count {
        let offset = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = (first + (start + offset) % count) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {first}..{}", first + count);
}

/// The first port and count of a span of ports the kernel does not hand out
/// on its own: below `ip_local_port_range` (32768-60999 by default), or above.
fn ports_outside_ephemeral_range() -> (u32, u32) {
    const WANTED: u32 = 10_000;
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .expect("read /proc/sys/net/ipv4/ip_local_port_range");
    let bounds: Vec<u32> = range
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let (low, high) = (bounds[0], bounds[1]);
    if low >= 1024 + WANTED {
        (low - WANTED, WANTED)
    } else if high + WANTED <= 65_535 {
        (high + 1, WANTED)
    } else {
        panic!(
            "the ephemeral port range {low}-{high} leaves no room for test peers' ports; narrow it: sysctl -w net.ipv4.ip_local_port_range=\"32768 60999\""
        )
    }
}
