//! The offline commands on a shared store (`--store postgres://…`), on a real server: a sled
//! store moved onto PostgreSQL and back with the same chain head, the tools on it, `init`,
//! and one clear message with exit code 2 for each way a start can fail.

use std::path::Path;

use crate::common::cli::{civicflow, demo_store, path};
use crate::common::TempDir;
use civicflow_postgres::testing::Cluster;

/// The chain head a `civicflow head` prints (its last word).
fn head_of(args: &[&str]) -> String {
    let (code, out, err) = civicflow(args);
    assert_eq!(code, 0, "{out}{err}");
    out.split_whitespace().last().expect("a hash").to_owned()
}

#[test]
fn a_sled_store_moves_onto_postgres_and_back_with_the_same_chain_head() {
    let cluster = Cluster::shared();
    let url = cluster.fresh_store_url();
    let scratch = TempDir::new("pg-move");
    let source = scratch.path().join("sled");
    let run = demo_store(&source);
    let sled_head = head_of(&["head", "--data", path(&source)]);
    let export = scratch.path().join("tonghui.cflog");
    let (code, _, err) = civicflow(&[
        "export-log",
        "--data",
        path(&source),
        "--out",
        path(&export),
    ]);
    assert_eq!(code, 0, "{err}");

    // Onto PostgreSQL: the instance directory holds nothing of the log.
    let instance = scratch.path().join("instance");
    let (code, text, err) = civicflow(&[
        "import-log",
        "--data",
        path(&instance),
        "--store",
        &url,
        "--in",
        path(&export),
    ]);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains(&sled_head), "{text}");
    let pg = ["--data", path(&instance), "--store", url.as_str()];
    let with = |command: &[&str]| -> Vec<String> {
        command
            .iter()
            .chain(pg.iter())
            .map(|s| (*s).to_owned())
            .collect()
    };
    let run_with = |command: &[&str]| {
        let args = with(command);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        civicflow(&refs)
    };
    let (code, out, err) = run_with(&["head"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.split_whitespace().last(), Some(sled_head.as_str()));
    let (code, out, err) = run_with(&["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("intact"), "{out}");

    // The tools on it: an audit, a bundle that verifies without the store, the read models.
    let case = run.smooth_case.to_string();
    let (code, out, err) = run_with(&["audit", &case]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("chain"), "{out}");
    let bundle = scratch.path().join("case.json");
    let (code, _, err) = run_with(&["export", "--case", &case, "--out", path(&bundle)]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = civicflow(&["verify-bundle", path(&bundle)]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run_with(&["rebuild"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("rebuilt"), "{out}");
    assert!(instance.join("readmodels").exists());

    // Importing again into the now non-empty database is refused, and changes nothing.
    let (code, _, err) = run_with(&["import-log", "--in", path(&export)]);
    assert_eq!(code, 2);
    assert!(err.contains("not empty"), "{err}");

    // And back: exported from PostgreSQL, imported into a new sled store, the same head and
    // the same file byte for byte.
    let again = scratch.path().join("again.cflog");
    let (code, _, err) = run_with(&["export-log", "--out", path(&again)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(&again).expect("read"),
        std::fs::read(&export).expect("read")
    );
    let back = scratch.path().join("back");
    let (code, _, err) = civicflow(&["import-log", "--data", path(&back), "--in", path(&again)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(head_of(&["head", "--data", path(&back)]), sled_head);
    cluster.drop_store(&url);
}

#[test]
fn init_founds_a_shared_store_once() {
    let cluster = Cluster::shared();
    let url = cluster.fresh_store_url();
    let scratch = TempDir::new("pg-init");
    let data = scratch.path().join("instance");
    let args = [
        "init",
        "--data",
        path(&data),
        "--store",
        &url,
        "--community",
        "riverside",
        "--name",
        "Riverside",
        "--admin",
        "ada",
    ];
    let (code, out, err) = civicflow(&args);
    assert_eq!(code, 0, "{out}{err}");
    let founded: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(founded["unit_id"], "riverside");
    assert!(err.contains("--store"), "the hint names the store: {err}");
    // The database holds it now: a second init is refused, naming the store.
    let (code, _, err) = civicflow(&args);
    assert_eq!(code, 2);
    assert!(err.contains("is not empty"), "{err}");
    let (code, out, err) = civicflow(&["verify", "--data", path(&data), "--store", &url]);
    assert_eq!(code, 0, "{out}{err}");
    cluster.drop_store(&url);
}

/// Runs `civicflow verify` on `url` and expects exit code 2 with `expected` in the message,
/// on one line, and no panic.
fn refused(data: &Path, url: &str, expected: &str) {
    let (code, out, err) = civicflow(&["verify", "--data", path(data), "--store", url]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains(expected), "expected {expected:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one clear message: {err}");
}

#[test]
fn a_bad_url_a_refused_connection_a_missing_permission_and_a_newer_schema_each_say_so() {
    let cluster = Cluster::shared();
    let scratch = TempDir::new("pg-start-errors");
    let data = scratch.path();

    refused(data, "postgres://", "name the");
    refused(data, "mysql://root@127.0.0.1/db", "starts with postgres://");
    refused(
        data,
        &format!(
            "postgres://postgres@127.0.0.1:{}/postgres?schema=Bad-Name",
            cluster.port()
        ),
        "schema",
    );
    // Nothing listens on this port (a listener bound and closed again).
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    refused(
        data,
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        "cannot connect to PostgreSQL",
    );
    refused(
        data,
        &format!(
            "postgres://postgres@127.0.0.1:{}/no_such_database",
            cluster.port()
        ),
        "refused the connection",
    );

    // A user who may connect but not create the store's schema.
    let role = format!("limited_{}", std::process::id());
    cluster.sql(&format!("CREATE ROLE {role} LOGIN"));
    refused(
        data,
        &format!(
            "postgres://{role}@127.0.0.1:{}/postgres?schema=s_{role}",
            cluster.port()
        ),
        "lacks a permission",
    );

    // A schema a newer civicflow made.
    let url = cluster.fresh_store_url();
    let (code, _, err) = civicflow(&["verify", "--data", path(data), "--store", &url]);
    assert_eq!(code, 0, "{err}");
    let schema = url.rsplit("schema=").next().expect("a schema");
    cluster.sql(&format!(
        "UPDATE \"{schema}\".meta SET value = '99' WHERE key = 'schema_version'"
    ));
    refused(data, &url, "made by a newer civicflow");
    cluster.drop_store(&url);

    // The password never shows in a message.
    let (_, _, err) = civicflow(&[
        "verify",
        "--data",
        path(data),
        "--store",
        &format!("postgres://postgres:sekrit@127.0.0.1:{port}/postgres"),
    ]);
    assert!(!err.contains("sekrit"), "{err}");
}
