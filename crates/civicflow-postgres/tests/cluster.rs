//! The throwaway clusters the PostgreSQL tests run on (`civicflow_postgres::testing::Cluster`):
//! they start from the machine's binaries, keep what was committed across a clean stop and a
//! crash, hand out schemas no one else gets, and say how to install the binaries when there
//! are none.
//!
//! Tests that stop a server start a cluster of their own; the others share the process's.

use std::collections::HashSet;
use std::path::PathBuf;

use civicflow_postgres::testing::Cluster;

/// Whether anything accepts connections on 127.0.0.1:`port`.
fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn a_cluster_starts_and_answers() {
    let cluster = Cluster::shared();
    assert_eq!(cluster.sql("SELECT 1").trim(), "1");
    assert!(cluster.port() > 0);
    assert_eq!(
        cluster.url(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port())
    );
    // fsync stays on: the tests are about durability.
    assert_eq!(cluster.sql("SHOW fsync").trim(), "on");
    assert_eq!(cluster.sql("SHOW max_connections").trim(), "200");
    assert!(cluster.data_dir().join("PG_VERSION").is_file());
}

#[test]
fn fresh_store_urls_name_distinct_schemas_that_civicflow_creates() {
    let cluster = Cluster::shared();
    let urls: Vec<String> = (0..50).map(|_| cluster.fresh_store_url()).collect();
    let schemas: HashSet<&str> = urls
        .iter()
        .map(|url| {
            let (base, schema) = url.split_once("?schema=").expect("a schema parameter");
            assert_eq!(base, cluster.url());
            schema
        })
        .collect();
    assert_eq!(schemas.len(), urls.len(), "{urls:?}");

    // The schema does not exist until civicflow connects and creates it.
    let url = &urls[0];
    let schema = url.split_once("?schema=").expect("a schema").1;
    let count = |schema: &str| {
        cluster.sql(&format!(
            "SELECT count(*) FROM pg_namespace WHERE nspname = '{schema}'"
        ))
    };
    assert_eq!(count(schema).trim(), "0");
    let database = civicflow_postgres::Database::connect(url).expect("connect");
    assert_eq!(database.schema(), schema);
    assert_eq!(count(schema).trim(), "1");
    drop(database);
    cluster.drop_store(url);
    assert_eq!(count(schema).trim(), "0");
    // Dropping it again, or one never created, is fine.
    cluster.drop_store(url);
    cluster.drop_store(&urls[1]);
}

#[test]
fn a_clean_stop_and_a_start_keep_the_data() {
    let cluster = Cluster::start();
    cluster.sql("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)");
    let port = cluster.port();
    cluster.stop();
    assert!(!listening(port), "a stopped server listens on {port}");
    cluster.start_again();
    assert_eq!(cluster.port(), port);
    assert_eq!(cluster.sql("SELECT n FROM kept").trim(), "7");
}

#[test]
fn a_crash_keeps_what_was_committed() {
    let cluster = Cluster::start();
    cluster.sql("CREATE TABLE kept (n int)");
    cluster.sql("INSERT INTO kept SELECT generate_series(1, 1000)");
    // Killed with no checkpoint since the inserts: they survive through the WAL only.
    cluster.kill();
    assert!(
        !listening(cluster.port()),
        "the server still runs after kill"
    );
    cluster.start_again();
    assert_eq!(
        cluster.sql("SELECT count(*), sum(n) FROM kept").trim(),
        "1000|500500"
    );
}

#[test]
fn dropping_a_cluster_stops_it_and_removes_its_directory() {
    let cluster = Cluster::start();
    let dir = cluster
        .data_dir()
        .parent()
        .expect("the data directory is in the cluster's directory")
        .to_owned();
    let port = cluster.port();
    assert!(dir.is_dir());
    drop(cluster);
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(!listening(port), "something still listens on {port}");
}

#[test]
fn without_binaries_the_error_says_how_to_install_them() {
    let empty = std::env::temp_dir().join(format!("civicflow-pg-empty-bin-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("create an empty directory");
    // $CIVICFLOW_PG_BIN set to the empty directory is the only place looked in.
    let candidates = Cluster::bin_dir_candidates(Some(empty.as_os_str()));
    assert_eq!(candidates, vec![empty.clone()]);
    let err = Cluster::try_start_with_bin_dirs(&candidates).expect_err("no binaries");
    assert_eq!(
        err,
        "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and \
         $CIVICFLOW_PG_BIN): install them with `apt-get install postgresql` (Debian); the \
         PostgreSQL tests never skip"
    );
    let err = Cluster::try_start_with_bin_dirs(&[]).expect_err("nowhere to look");
    assert!(err.contains("apt-get install postgresql"), "{err}");
    let _ = std::fs::remove_dir(&empty);
}

#[test]
fn the_machines_binaries_are_found_highest_version_first() {
    let candidates = Cluster::bin_dir_candidates(None);
    assert!(
        !candidates.is_empty(),
        "no /usr/lib/postgresql/<N>/bin with N >= 15"
    );
    let majors: Vec<u32> = candidates
        .iter()
        .map(|dir| {
            let major = dir
                .parent()
                .and_then(|version| version.file_name())
                .and_then(|name| name.to_str())
                .and_then(|name| name.parse().ok())
                .unwrap_or_else(|| panic!("{} is not <root>/<N>/bin", dir.display()));
            assert!(major >= 15, "{}", dir.display());
            major
        })
        .collect();
    let mut sorted = majors.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(majors, sorted);
    assert!(candidates[0].starts_with(PathBuf::from("/usr/lib/postgresql")));
}
