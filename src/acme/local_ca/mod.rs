//! The in-process ACME server (RFC 8555) and its certificate authority.
