//! `civicflow serve --workflows DIR` on the real binary: the definitions of DIR are published
//! into the store at start, so that after a restart without the directory the workflow and
//! its cases are still known; the same file again changes nothing; a changed file with the
//! same version, or a file the core refuses, stops the start naming the file and the key.
//!
//! Guards against definitions that live only in files (a store reopened without them could not
//! read its cases) and against a changed definition slipping in under an old version.

use std::time::Duration;

use serde_json::Value;

use crate::common::serve::{Launch, ServeProcess};
use crate::common::{socket, TempDir};

const LIGHTING: &str = r#"
id = "street-lighting"
version = 1
name = "路灯报修 street lighting"
public = true
initial_stage = "reported"
contact_roles = ["grid_worker"]

[open]
roles = ["resident", "grid_worker"]
scope = "any"

[[stages]]
id = "reported"
name = "已报修 reported"

[[stages]]
id = "repaired"
name = "已修复 repaired"
terminal = true

[[actions]]
id = "repair"
name = "修复 repair"
from = ["reported"]
to = "repaired"
roles = ["grid_worker"]
scope = "subtree"
"#;

fn admin_token(data: &std::path::Path) -> String {
    let text = std::fs::read_to_string(data.join("demo-tokens.json")).expect("demo tokens");
    let tokens: Value = serde_json::from_str(&text).expect("JSON");
    tokens
        .as_array()
        .expect("a list")
        .iter()
        .find(|t| t["role"] == "community_admin")
        .and_then(|t| t["token"].as_str())
        .expect("the administrator's token")
        .to_owned()
}

async fn versions(server: &ServeProcess, token: &str) -> (u16, Value) {
    let response = socket::request(
        server.addr(),
        "GET",
        "/api/v1/workflows/street-lighting/versions",
        &[("authorization".to_owned(), format!("Bearer {token}"))],
        None,
    )
    .await
    .expect("answered");
    let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, body)
}

#[tokio::test]
async fn serve_publishes_a_directory_of_definitions_that_outlive_it() {
    let dir = TempDir::new("cli-workflows");
    let data = dir.path().join("data");
    let files = dir.path().join("workflows");
    std::fs::create_dir_all(&files).expect("a directory");
    std::fs::write(files.join("street-lighting.toml"), LIGHTING).expect("written");
    let files_arg = files.to_str().expect("utf-8").to_owned();

    let mut server = ServeProcess::start(
        &data,
        Launch {
            demo: true,
            args: vec!["--workflows", &files_arg],
            ..Launch::default()
        },
    );
    server.wait_ready(Duration::from_secs(60)).await;
    let token = admin_token(&data);
    let (status, body) = versions(&server, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["versions"][0]["origin"], "published", "{body}");
    assert_eq!(
        body["versions"][0]["published_by"]["actor"], "system",
        "{body}"
    );
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("workflow street-lighting@1 from") && stderr.contains("published"),
        "{stderr}"
    );

    // The same directory again: nothing to publish.
    let mut server = ServeProcess::start(
        &data,
        Launch {
            args: vec!["--workflows", &files_arg],
            ..Launch::default()
        },
    );
    server.wait_ready(Duration::from_secs(60)).await;
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("in the store already"), "{stderr}");

    // Without the directory: the store knows the workflow from its log.
    std::fs::remove_dir_all(&files).expect("removed");
    let mut server = ServeProcess::start(&data, Launch::default());
    server.wait_ready(Duration::from_secs(60)).await;
    let (status, body) = versions(&server, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["versions"].as_array().map(Vec::len), Some(1), "{body}");
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");

    // A changed file under the same version, and a file that does not validate: the start
    // stops, naming the file and the key.
    std::fs::create_dir_all(&files).expect("a directory");
    std::fs::write(
        files.join("street-lighting.toml"),
        LIGHTING.replace("已修复 repaired", "修好了 repaired"),
    )
    .expect("written");
    let server = ServeProcess::start(
        &data,
        Launch {
            args: vec!["--workflows", &files_arg],
            ..Launch::default()
        },
    );
    let (status, stderr) = server.wait_exit(Duration::from_secs(60));
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("street-lighting.toml") && stderr.contains("version"),
        "{stderr}"
    );
    std::fs::write(
        files.join("street-lighting.toml"),
        LIGHTING.replace("version = 1", "version = 2").replace(
            "roles = [\"grid_worker\"]\nscope",
            "roles = [\"night_watch\"]\nscope",
        ),
    )
    .expect("written");
    let server = ServeProcess::start(
        &data,
        Launch {
            args: vec!["--workflows", &files_arg],
            ..Launch::default()
        },
    );
    let (status, stderr) = server.wait_exit(Duration::from_secs(60));
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("street-lighting.toml") && stderr.contains("actions.repair.roles"),
        "{stderr}"
    );
}
