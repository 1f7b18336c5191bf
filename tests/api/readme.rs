//! The README walkthrough works verbatim against a live server.

use crate::common::*;

#[tokio::test]
async fn readme_walkthrough_runs_verbatim() {
    let s = Server::start().await;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = readme.split("<!-- walkthrough").nth(1).expect("walkthrough marker");
    let block = after.split("```sh\n").nth(1).unwrap().split("\n```").next().unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", block])
        .current_dir(work.path())
        .env("KG_URL", &s.base)
        .env("KG_PASS", &s.admin_password)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with(r#"{"valid":true,"code":"VALID""#), "{}", lines[0]);
    assert!(
        lines[1].contains(r#""used_count":1"#) && lines[1].contains(r#""code":"VALID""#),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with(r#"{"valid":false,"code":"REVOKED""#),
        "{}",
        lines[2]
    );
}
