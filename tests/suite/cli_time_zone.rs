//! `--time-zone NAME`: `civicflow serve` counts working time and writes every time in that
//! zone, the tools on a stopped store write theirs in it, a store keeps the first zone it is
//! given (and the tools use it by default, refusing another), and an unknown name is refused
//! before anything is touched. With `TZDIR` on an empty directory (a host without tzdata)
//! the zone still comes from the database bundled into the binary.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::cli::{civicflow, path};
use crate::common::serve::{Launch, ServeProcess};
use crate::common::{socket, TempDir};
use civicflow::core::calendar::Zone;
use civicflow::core::domain::workflow::DefinitionRegistry;
use civicflow::core::engine;
use civicflow::core::SledLog;

/// Runs the command with `TZDIR` set to `tzdir`: exit code, stdout, stderr.
fn civicflow_with_tzdir(tzdir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_civicflow"))
        .args(args)
        .env("TZDIR", tzdir)
        .env_remove("CIVICFLOW_MASTER_KEY")
        .output()
        .expect("the civicflow binary runs");
    (
        output.status.code().expect("exited normally"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_time_zone_is_refused_by_every_command_naming_it() {
    let scratch = TempDir::new("zone-unknown");
    let data = path(scratch.path());
    let case = "0196a000-0000-7000-8000-000000000000";
    for args in [
        vec!["serve", "--data", data, "--addr", "127.0.0.1:0"],
        vec!["audit", "--data", data, case],
        vec!["rebuild", "--data", data],
        vec!["token", "list", "--data", data],
        vec!["token", "revoke", "--data", data, "0123456789abcdef"],
    ] {
        for zone in ["Mars/Olympus_Mons", "+08:00", "localtime"] {
            let mut full = args.clone();
            full.extend(["--time-zone", zone]);
            let (code, _, err) = civicflow(&full);
            assert_eq!(code, 2, "{full:?}: {err}");
            assert!(
                err.contains("--time-zone")
                    && err.contains(&format!(
                        "`{zone}` is not a time zone in the time zone database: give an IANA name"
                    )),
                "{full:?}: {err}"
            );
            assert!(!err.contains("panicked"), "{full:?}: {err}");
        }
    }
    assert!(!scratch.path().exists(), "a refused zone creates no store");
}

#[test]
fn the_tools_write_times_in_the_zone_given_also_without_the_hosts_database() {
    let scratch = TempDir::new("zone-tools");
    let run = crate::common::cli::demo_store(scratch.path());
    let data = path(scratch.path());
    let case = run.escalated_case.to_string();
    let empty = TempDir::new("zone-tools-no-tzdata");
    std::fs::create_dir_all(empty.path()).expect("an empty TZDIR");

    // Europe/Berlin: summer time (+02:00) in April 2026, when the demo ran.
    let berlin = Zone::named("Europe/Berlin").expect("a zone");
    let log = SledLog::open(scratch.path().join("log")).expect("open");
    let expected = engine::audit_log(
        &log,
        &DefinitionRegistry::built_in(),
        &berlin,
        run.escalated_case,
    )
    .expect("audit");
    log.close().expect("close");
    let args = [
        "audit",
        "--data",
        data,
        &case,
        "--json",
        "--time-zone",
        "Europe/Berlin",
    ];
    let (code, json, err) = civicflow(&args);
    assert_eq!(code, 0, "{err}");
    let printed: Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(printed, civicflow::http::audit::to_json(&expected));
    for step in printed["steps"].as_array().expect("steps") {
        let at = step["recorded_at"].as_str().expect("a time");
        assert!(at.ends_with("+02:00"), "{at}");
    }
    // A host without tzdata: the same answer, from the bundled database.
    let (code, bundled, err) = civicflow_with_tzdir(empty.path(), &args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(bundled, json);
    // As text, and by default in Asia/Shanghai.
    let (code, text, err) = civicflow(&[
        "audit",
        "--data",
        data,
        &case,
        "--time-zone",
        "Europe/Berlin",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(text.trim_end(), expected.to_string());
    assert!(
        text.contains("+02:00") && !text.contains("+08:00"),
        "{text}"
    );
    let (code, text, err) = civicflow(&["audit", "--data", data, &case]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains("+08:00") && !text.contains("+02:00"),
        "{text}"
    );

    // Tokens: issued now (whatever the date, Asia/Kolkata is +05:30 all year).
    let (code, out, err) = civicflow(&[
        "token",
        "create",
        "--data",
        data,
        "--actor",
        "li.grid1",
        "--role",
        "grid_worker",
        "--unit",
        "grid-1",
        "--time-zone",
        "Asia/Kolkata",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("issued"), "{out}");
    let (code, list, err) = civicflow_with_tzdir(
        empty.path(),
        &[
            "token",
            "list",
            "--data",
            data,
            "--time-zone",
            "Asia/Kolkata",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let row = list.lines().nth(1).expect("one token");
    assert!(row.contains("+05:30") && !row.contains("+08:00"), "{list}");

    // Issuing the token opened the store's engine with Asia/Kolkata, the first zone the
    // store was given: the store recorded it, and keeps it. The tools then use it by default
    // and refuse another (its read models' months and years are counted in it).
    let (code, text, err) = civicflow(&["audit", "--data", data, &case]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains("+05:30") && !text.contains("+08:00"),
        "{text}"
    );
    let (code, _, err) = civicflow(&["rebuild", "--data", data, "--time-zone", "America/New_York"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Asia/Kolkata"), "{err}");
    let (code, out, err) = civicflow(&["rebuild", "--data", data]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rebuilt"), "{out}");
}

#[tokio::test]
async fn serve_answers_in_the_zone_given_also_without_the_hosts_database() {
    let dir = TempDir::new("zone-serve");
    let data = dir.path().join("data");
    let empty = TempDir::new("zone-serve-no-tzdata");
    std::fs::create_dir_all(empty.path()).expect("an empty TZDIR");
    let tzdir = empty.path().to_str().expect("utf-8").to_owned();
    let mut server = ServeProcess::start(
        &data,
        Launch {
            demo: true,
            env: vec![("TZDIR", &tzdir)],
            args: vec!["--time-zone", "Asia/Kolkata"],
            ..Launch::default()
        },
    );
    server.wait_ready(Duration::from_secs(60)).await;
    let text = std::fs::read_to_string(data.join("demo-tokens.json")).expect("demo tokens");
    let tokens: Value = serde_json::from_str(&text).expect("JSON");
    let admin = tokens
        .as_array()
        .expect("a list")
        .iter()
        .find(|t| t["role"] == "community_admin")
        .and_then(|t| t["token"].as_str())
        .expect("the community administrator's token")
        .to_owned();
    let response = socket::request(
        server.addr(),
        "GET",
        "/api/v1/cases",
        &[("authorization".to_owned(), format!("Bearer {admin}"))],
        None,
    )
    .await
    .expect("answered");
    assert_eq!(response.status, 200);
    let board: Value = serde_json::from_slice(&response.body).expect("JSON");
    let items = board["items"].as_array().expect("items");
    assert!(!items.is_empty(), "{board}");
    for item in items {
        for field in ["opened_at", "updated_at"] {
            let at = item[field].as_str().expect("a time");
            assert!(at.ends_with("+05:30"), "{field}: {at}");
        }
    }
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
}
