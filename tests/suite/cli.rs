//! The `civicflow` command on real stores: exit codes and messages of `verify` and `head`, and
//! of `serve` refusing its flags (connection flags, plain HTTP off loopback, TLS files).
//!
//! Guards against a verify that says "intact" about a damaged store, or fails without saying
//! where (the damage itself, made under sled's checksums, is `sled::broken_chain`).

use crate::common::TempDir;
use crate::http_tls::TestCert;
use civicflow::core::EventStore as _;
use std::path::Path;
use std::process::Command;

use civicflow::core::{
    Actor, AppendRequest, CorrelationId, EventType, ExpectedVersion, NewEvent, SledLog, StreamId,
    Timestamp,
};

/// Runs the command; its exit code, stdout and stderr.
pub(crate) fn civicflow(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_civicflow"))
        .args(args)
        .output()
        .expect("the civicflow binary runs");
    (
        output.status.code().expect("exited normally"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A stopped store at `path` with three events in `case-1`, each appended alone; its head.
pub(crate) fn fill(path: &Path) -> String {
    let log = SledLog::open(path).expect("open");
    for i in 0..3 {
        let request = AppendRequest::to_stream(
            StreamId::new("case-1").expect("valid"),
            ExpectedVersion::Any,
            vec![NewEvent::new(
                EventType::new("NoteAdded").expect("valid"),
                1,
                format!("note {i}").into_bytes(),
            )],
            Actor::parse("w", "grid_worker", "grid-1").expect("valid"),
            CorrelationId::new_v7(Timestamp::EPOCH),
        );
        log.append(request).expect("append").expect("no conflict");
    }
    let head = log.head().expect("not empty");
    log.close().expect("close");
    format!("{} {}", head.position, head.hash)
}

#[test]
fn verify_and_head_report_an_intact_store() {
    let scratch = TempDir::new("cli-intact");
    let head = fill(scratch.path());
    let data = scratch.path().to_str().expect("utf-8 path");
    let (code, out, _) = civicflow(&["verify", "--data", data]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("log intact: 3 events"), "{out}");
    let (code, out, _) = civicflow(&["verify", "--data", data, "--stream", "case-1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("stream case-1 intact: 3 events"), "{out}");
    let (code, out, _) = civicflow(&["head", "--data", data]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), head);
}

#[test]
fn a_missing_store_is_a_clear_error() {
    let scratch = TempDir::new("cli-missing");
    let (code, _, err) = civicflow(&["verify", "--data", scratch.path().to_str().expect("utf-8")]);
    assert_eq!(code, 2);
    assert!(err.contains("no store at"), "{err}");
    assert!(!scratch.path().exists(), "verify must not create a store");
}

#[test]
fn serve_refuses_bad_connection_flags_naming_the_flag_and_why() {
    let scratch = TempDir::new("cli-serve-flags");
    let data = scratch.path().to_str().expect("utf-8");
    for (args, expected) in [
        (
            vec!["--trusted-proxy", "10.0.0.0/33"],
            "'10.0.0.0/33' is not an IP address or a network (ADDRESS/PREFIX, e.g. 10.0.0.0/8): the prefix is longer than the address",
        ),
        (
            vec!["--trusted-proxy", "proxy.local"],
            "the address is not an IPv4 or IPv6 address",
        ),
        (vec!["--max-connections", "0"], "--max-connections"),
        (vec!["--header-timeout", "0"], "--header-timeout"),
        (vec!["--address-rate-limit", "0"], "--address-rate-limit"),
    ] {
        let mut full = vec!["serve", "--data", data, "--addr", "127.0.0.1:0"];
        full.extend(&args);
        let (code, _, err) = civicflow(&full);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert!(
        !scratch.path().exists(),
        "a refused flag must not create a store"
    );
}

#[test]
fn serve_refuses_plain_http_off_loopback_without_the_flag_saying_why() {
    let scratch = TempDir::new("cli-serve-plain-http");
    let data = scratch.path().to_str().expect("utf-8");
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let (code, _, err) = civicflow(&["serve", "--data", data, "--addr", addr]);
        assert_eq!(code, 2, "{addr}: {err}");
        assert!(
            err.contains("refusing to listen on")
                && err.contains("unencrypted")
                && err.contains("--insecure-http")
                && err.contains("--tls-cert FILE --tls-key FILE")
                && err.contains("reverse proxy"),
            "{addr}: {err}"
        );
    }
    assert!(!scratch.path().exists(), "a refused start creates no store");
}

#[test]
fn serve_refuses_unusable_tls_files_naming_the_file_and_what_is_wrong() {
    let scratch = TempDir::new("cli-serve-tls");
    let data = scratch.path().join("data");
    let certs = scratch.path().join("certs");
    let one = TestCert::new(&certs, "one");
    let two = TestCert::new(&certs, "two");
    let garbage = certs.join("garbage.pem");
    std::fs::write(&garbage, "not PEM at all\n").expect("write");
    let missing = certs.join("missing.crt");
    let path = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let [one_cert, one_key, two_key, garbage, missing] = [
        path(&one.cert_file),
        path(&one.key_file),
        path(&two.key_file),
        path(&garbage),
        path(&missing),
    ];
    for (args, expected) in [
        (
            vec!["--tls-cert", &missing, "--tls-key", &one_key],
            vec!["cannot serve TLS: cannot read", "missing.crt"],
        ),
        (
            vec!["--tls-cert", &garbage, "--tls-key", &one_key],
            vec!["garbage.pem holds no certificate"],
        ),
        (
            vec!["--tls-cert", &one_cert, "--tls-key", &garbage],
            vec!["garbage.pem holds no private key"],
        ),
        (
            vec!["--tls-cert", &one_key, "--tls-key", &one_cert],
            vec!["one.key holds no certificate", "swapped"],
        ),
        (
            vec!["--tls-cert", &one_cert, "--tls-key", &two_key],
            vec!["two.key does not belong to the certificate in", "one.crt"],
        ),
        (vec!["--tls-cert", &one_cert], vec!["--tls-key"]),
        (vec!["--tls-key", &one_key], vec!["--tls-cert"]),
        (
            vec![
                "--tls-cert",
                &one_cert,
                "--tls-key",
                &one_key,
                "--insecure-http",
            ],
            vec!["--insecure-http", "cannot be used with"],
        ),
    ] {
        let mut full = vec![
            "serve",
            "--data",
            data.to_str().expect("utf-8"),
            "--addr",
            "0.0.0.0:0",
        ];
        full.extend(&args);
        let (code, _, err) = civicflow(&full);
        assert_eq!(code, 2, "{args:?}: {err}");
        for words in expected {
            assert!(err.contains(words), "{args:?}: {err:?} lacks {words:?}");
        }
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert!(!data.exists(), "a refused start creates no store");
}

/// The binary's allocator returns freed memory after 250 ms, as `.cargo/config.toml` compiles
/// into jemalloc (a rebuild's peak depends on it: docs/benchmarks.md, "Memory the allocator
/// keeps"). jemalloc prints its settings at exit when asked through its environment variable.
/// Guards against a build that lost the setting (the file moved, the variable renamed).
#[test]
fn the_allocator_returns_freed_memory_within_a_quarter_second() {
    let output = Command::new(env!("CARGO_BIN_EXE_civicflow"))
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .expect("the civicflow binary runs");
    assert!(output.status.success());
    let stats = String::from_utf8_lossy(&output.stderr);
    for setting in [
        "opt.dirty_decay_ms: 250 ",
        "opt.muzzy_decay_ms: 250 ",
        "opt.background_thread: true",
    ] {
        assert!(
            stats.contains(setting),
            "jemalloc's settings lack {setting:?}:\n{stats}"
        );
    }
}
