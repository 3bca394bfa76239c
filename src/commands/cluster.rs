//! `quire cluster status`: the nodes of a cluster as the shared PostgreSQL
//! has them (last contact by the database's clock, certificate serial,
//! content hash) and the leases, as tables; nodes that went silent or serve
//! other content than the rest are marked. It reads on its own connection
//! and never joins the registry it reads.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use super::{load_config, runtime};
use crate::cli::ClusterCommand;
use crate::cluster::status::{ClusterStatus, SILENT_AFTER};
use crate::cluster::{Cluster, ClusterError};
use crate::config::{ClusterConfig, Config, Overrides};

pub fn run(command: ClusterCommand) -> anyhow::Result<ExitCode> {
    let ClusterCommand::Status { config } = command;
    let config = load_config(&config, Overrides::default())?;
    let Some(cluster) = &config.cluster else {
        anyhow::bail!("{}", not_a_cluster(&config));
    };
    let read = runtime()?.block_on(async {
        let observer = Cluster::observe(cluster, crate::clock::system());
        let client = observer.client().await?;
        ClusterStatus::read(&client).await
    });
    match read {
        Ok(status) => print!("{}", render(cluster, &status)),
        Err(ClusterError::Query(e))
            if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) =>
        {
            println!(
                "no node has joined the cluster on {} yet (its database has no quire tables): start `quire serve` with this [cluster] section on a node",
                cluster.postgres
            );
        }
        Err(ClusterError::Unavailable { target, reason }) => anyhow::bail!(
            "cannot reach the cluster's PostgreSQL at {target}: {reason}. Check that the server is up and takes connections from this machine (listen_addresses, pg_hba.conf, a firewall), and that [cluster] postgres (host, port, user, password, sslmode) and ca_file in {} are right",
            config_file(&config)
        ),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "reading the cluster's state on {}",
                cluster.postgres
            )));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn config_file(config: &Config) -> String {
    config
        .source
        .as_ref()
        .map_or_else(|| "the config file".into(), |p| p.display().to_string())
}

fn not_a_cluster(config: &Config) -> String {
    let file = match &config.source {
        Some(path) => format!("{} has no [cluster] section", path.display()),
        None => {
            "no config file was given (--config or QUIRE_CONFIG), so there is no [cluster] section"
                .into()
        }
    };
    format!(
        "{file}: this node runs alone. To run several nodes on one PostgreSQL, give each node's config\n\n\
         [cluster]\n\
         postgres = \"postgres://quire:PASSWORD@db.example.com/quire?sslmode=require\"\n\
         node = \"paris\"   # defaults to the host name\n\n\
         and see \"Running a cluster\" in deploy/README.md"
    )
}

/// How long ago, in the largest unit that keeps two digits of sense.
fn age(age: Duration) -> String {
    let seconds = age.as_secs();
    match seconds {
        0..120 => format!("{seconds} s ago"),
        120..7_200 => format!("{} min ago", seconds / 60),
        7_200..172_800 => format!("{} h ago", seconds / 3_600),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

/// Rows as columns padded to their widest cell; the last column is not padded.
fn table(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::from(" ");
        for (c, cell) in row.iter().enumerate() {
            let _ = write!(line, " {cell:<width$} ", width = widths[c]);
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// Content hashes are shown by their first characters: enough to tell two
/// deploys apart at a glance.
const HASH_SHOWN: usize = 12;

fn render(cluster: &ClusterConfig, status: &ClusterStatus) -> String {
    let mut out = String::new();
    let live = status.live().count();
    let _ = writeln!(
        out,
        "cluster on {}: {} nodes, {live} heard from in the last {} s",
        cluster.postgres,
        status.nodes.len(),
        SILENT_AFTER.as_secs()
    );
    if status.nodes.is_empty() {
        out.push_str("  no node has joined yet\n");
    } else {
        let mut rows = vec![
            [
                "NODE",
                "LAST CONTACT",
                "CERTIFICATE SERIAL",
                "CONTENT",
                "VERSION",
                "NOTE",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for node in &status.nodes {
            let mut notes = Vec::new();
            if ClusterStatus::is_silent(node) {
                notes.push(format!("SILENT for over {} s", SILENT_AFTER.as_secs()));
            }
            if status.content_differs(node) {
                notes.push(match status.majority_hash() {
                    Some(_) => "CONTENT DIFFERS from the other nodes'".to_string(),
                    None => "CONTENT DIFFERS: no two nodes agree".to_string(),
                });
            }
            rows.push(vec![
                node.node.clone(),
                age(node.last_contact_age),
                node.cert_serial.clone().unwrap_or_else(|| "-".into()),
                node.content_hash
                    .as_deref()
                    .map_or_else(|| "-".into(), |h| h.chars().take(HASH_SHOWN).collect()),
                node.version.clone(),
                notes.join("; "),
            ]);
        }
        table(&mut out, &rows);
        let differing = status.differing();
        if !differing.is_empty() {
            let _ = writeln!(
                out,
                "  content differs on {}: deploy the same content to every node (each rebuilds on its own and reports within seconds)",
                differing.join(", ")
            );
        }
    }
    out.push_str("leases\n");
    if status.leases.is_empty() {
        out.push_str("  none taken yet\n");
    } else {
        let mut rows = vec![
            [
                "NAME",
                "HOLDER",
                "TOKEN",
                "EXPIRES (database clock)",
                "STATE",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for lease in &status.leases {
            rows.push(vec![
                lease.name.clone(),
                lease.holder.clone(),
                lease.token.to_string(),
                crate::clock::for_people(lease.expires).to_string(),
                if lease.live { "held" } else { "free (expired)" }.to_string(),
            ]);
        }
        table(&mut out, &rows);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::lease::LeaseInfo;
    use crate::cluster::nodes::NodeInfo;

    fn node(name: &str, age: u64, hash: &str) -> NodeInfo {
        NodeInfo {
            node: name.into(),
            last_contact_age: Duration::from_secs(age),
            started: chrono::DateTime::UNIX_EPOCH,
            version: "0.1.0".into(),
            cert_serial: Some("0a:1b".into()),
            content_hash: Some(hash.into()),
        }
    }

    #[test]
    fn the_table_marks_silent_nodes_and_the_odd_content_out() {
        let cluster = ClusterConfig {
            postgres: crate::config::PostgresTarget::parse(
                "postgres://quire:secret@db.test:5433/blog",
            )
            .unwrap(),
            node: "paris".parse().unwrap(),
            ca_file: None,
        };
        let status = ClusterStatus {
            nodes: vec![
                node("paris", 2, "aaaaaaaaaaaaaaaaaaaa"),
                node("tokyo", 3, "aaaaaaaaaaaaaaaaaaaa"),
                node("lima", 45, "bbbbbbbbbbbbbbbbbbbb"),
            ],
            leases: vec![LeaseInfo {
                name: "certificates".into(),
                holder: "tokyo".into(),
                token: 3,
                expires: chrono::DateTime::UNIX_EPOCH,
                live: true,
            }],
        };
        let text = render(&cluster, &status);
        assert!(!text.contains("secret"), "{text}");
        assert!(
            text.starts_with(
                "cluster on db.test:5433/blog: 3 nodes, 2 heard from in the last 30 s\n"
            ),
            "{text}"
        );
        let line = |name: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap()
                .to_string()
        };
        assert!(
            line("paris").contains("2 s ago") && line("paris").contains("aaaaaaaaaaaa "),
            "{text}"
        );
        assert!(
            !line("paris").contains("DIFFERS") && !line("tokyo").contains("SILENT"),
            "{text}"
        );
        assert!(
            line("lima").contains("SILENT for over 30 s; CONTENT DIFFERS"),
            "{text}"
        );
        assert!(
            text.contains("content differs on lima: deploy the same content"),
            "{text}"
        );
        assert!(
            line("certificates").contains("tokyo") && line("certificates").ends_with("held"),
            "{text}"
        );
    }

    #[test]
    fn ages_read_in_a_sensible_unit() {
        assert_eq!(age(Duration::from_secs(7)), "7 s ago");
        assert_eq!(age(Duration::from_secs(600)), "10 min ago");
        assert_eq!(age(Duration::from_secs(3 * 3600 + 5)), "3 h ago");
        assert_eq!(age(Duration::from_secs(9 * 86_400)), "9 days ago");
    }
}
