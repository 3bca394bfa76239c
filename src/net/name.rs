//! [`SocketName`]: the one list of the sockets quire listens on, and the
//! strings each is known by outside the process (systemd's `LISTEN_FDNAMES`,
//! the `[listen]` keys, the `listener` metrics label).

/// Every socket quire listens on. An enum, so a misspelt name does not
/// compile instead of silently missing its inherited socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SocketName {
    Http,
    Https,
    Metrics,
    LocalCa,
    Control,
}

impl SocketName {
    pub const ALL: [SocketName; 5] = [
        SocketName::Http,
        SocketName::Https,
        SocketName::Metrics,
        SocketName::LocalCa,
        SocketName::Control,
    ];

    /// The name in `LISTEN_FDNAMES`, which systemd socket units set
    /// (`FileDescriptorName=`), so it must never change; for the TCP ones it
    /// is also the `[listen]` key.
    pub fn as_str(self) -> &'static str {
        match self {
            SocketName::Http => "http",
            SocketName::Https => "https",
            SocketName::Metrics => "metrics",
            SocketName::LocalCa => "local_ca",
            SocketName::Control => "control",
        }
    }

    /// The name of the task serving it, in logs and (for the TCP ones) the
    /// `listener` metrics label, which dashboards and alerts match on.
    pub fn listener(self) -> &'static str {
        match self {
            SocketName::Http => "http listener",
            SocketName::Https => "https listener",
            SocketName::Metrics => "metrics listener",
            SocketName::LocalCa => "local CA",
            SocketName::Control => "control socket",
        }
    }
}

impl std::fmt::Display for SocketName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SocketName {
    type Err = ();

    fn from_str(name: &str) -> Result<SocketName, ()> {
        SocketName::ALL
            .into_iter()
            .find(|known| known.as_str() == name)
            .ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_keep_the_strings_socket_units_and_dashboards_use() {
        let wire: Vec<&str> = SocketName::ALL.iter().map(|n| n.as_str()).collect();
        assert_eq!(wire, ["http", "https", "metrics", "local_ca", "control"]);
        let labels: Vec<&str> = SocketName::ALL.iter().map(|n| n.listener()).collect();
        assert_eq!(
            labels,
            [
                "http listener",
                "https listener",
                "metrics listener",
                "local CA",
                "control socket"
            ]
        );
        for name in SocketName::ALL {
            assert_eq!(name.as_str().parse(), Ok(name));
        }
        assert_eq!("local-ca".parse::<SocketName>(), Err(()));
    }
}
