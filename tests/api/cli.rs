//! The binary as an operator uses it.

use std::process::Command;

fn lethe(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lethe"))
        .args(args)
        .env_remove("LETHE_DATABASE_URL")
        .env_remove("LETHE_SECRET_KEY")
        .current_dir(dir)
        .output()
        .expect("run lethe")
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["tenant", "--help"],
        vec!["tenant", "create", "--help"],
        vec!["tenant", "list", "--help"],
        vec!["api-key", "--help"],
        vec!["api-key", "create", "--help"],
        vec!["api-key", "revoke", "--help"],
        vec!["audit", "verify", "--help"],
    ] {
        let out = lethe(&args, dir.path());
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn offline_tenant_and_key_creation_on_the_default_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = lethe(
        &[
            "tenant",
            "create",
            "--name",
            "Acme",
            "--contact-email",
            "dpo@acme.example",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tenant = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        dir.path().join("lethe.db").exists(),
        "the default database is ./lethe.db"
    );
    let out = lethe(&["api-key", "create", "--tenant", &tenant], dir.path());
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap();
    assert!(key.trim().starts_with("lethe_sk_"));
    let list = lethe(&["tenant", "list"], dir.path());
    assert!(String::from_utf8_lossy(&list.stdout).contains(&tenant));
    // The key is not stored in the clear anywhere in the database file.
    let db = std::fs::read(dir.path().join("lethe.db")).unwrap();
    let needle = key.trim().as_bytes();
    assert!(!db.windows(needle.len()).any(|w| w == needle));
}

#[test]
fn a_privacy_contact_tenant_needs_a_contact() {
    let dir = tempfile::tempdir().unwrap();
    let out = lethe(&["tenant", "create", "--name", "Acme"], dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--contact-email"));
}

#[test]
fn a_bad_setting_stops_start_up_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lethe"))
        .arg("serve")
        .env("LETHE_BIND", "not-an-address")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LETHE_BIND"));
}

#[test]
fn readme_documents_every_setting() {
    let readme = std::fs::read_to_string(crate::helpers::repo_file("README.md")).unwrap();
    for (name, _, _) in lethe::config::SETTINGS {
        assert!(readme.contains(&format!("`{name}`")), "README lacks {name}");
    }
}
