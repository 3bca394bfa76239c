//! An error and every cause it wraps, on one line. The HTTP clients (ACME,
//! import) report errors this way: hyper's own message ("client error
//! (Connect)") says little until its last cause ("Connection refused").

/// `error: cause: cause of the cause: …`.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    std::iter::successors(Some(error), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_follows_the_error() {
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(
            with_causes(&Outer(refused)),
            "client error (Connect): Connection refused"
        );
        let alone = std::io::Error::other("no cause");
        assert_eq!(with_causes(&alone), "no cause");
    }
}
