//! The files in `deploy/` against the binary they run: every flag they pass exists, the
//! container's command is a valid configuration, and the systemd unit passes
//! `systemd-analyze verify` where that tool exists (the test says so when it does not).
//! Not run here: a container build (no container engine on this machine).

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn serve_help() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["serve", "--help"])
        .output()
        .expect("run roomcast serve --help");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `--flags` of a command line.
fn flags(line: &str) -> Vec<String> {
    line.split(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_systemd_unit_uses_real_flags_and_verifies() {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/roomcast.service"))
        .expect("read the unit");
    let exec: String = unit
        .split("ExecStart=")
        .nth(1)
        .expect("an ExecStart")
        .lines()
        .take_while(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let help = serve_help();
    let used = flags(&exec);
    assert!(used.len() >= 5, "{exec}");
    for flag in used {
        assert!(
            help.contains(&flag),
            "the unit passes {flag}, which serve does not take"
        );
    }
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "DynamicUser=yes",
    ] {
        assert!(unit.contains(hardening), "{hardening}");
    }
    let analyze = match Command::new("systemd-analyze").arg("--version").output() {
        Ok(o) if o.status.success() => "systemd-analyze",
        _ => {
            println!("SKIPPED systemd-analyze verify: systemd-analyze is not installed");
            return;
        }
    };
    // Verify the unit with ExecStart pointing at the binary under test.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("roomcast.service");
    let unit = unit.replace("/usr/local/bin/roomcast", env!("CARGO_BIN_EXE_roomcast"));
    std::fs::write(&path, unit).expect("write unit");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        !stderr.contains("roomcast.service:"),
        "warnings about the unit: {stderr}"
    );
}

#[test]
fn the_container_command_is_a_valid_configuration() {
    let file = std::fs::read_to_string(repo().join("deploy/container/Containerfile"))
        .expect("read the Containerfile");
    for directive in [
        "FROM ",
        "USER roomcast",
        "ENTRYPOINT",
        "CMD",
        "STOPSIGNAL SIGTERM",
    ] {
        assert!(file.contains(directive), "{directive}");
    }
    let cmd = file
        .lines()
        .find(|l| l.starts_with("CMD "))
        .expect("a CMD line");
    let args: Vec<String> =
        serde_json::from_str(cmd.trim_start_matches("CMD ")).expect("CMD in exec (JSON) form");
    assert_eq!(args.first().map(String::as_str), Some("serve"));
    let dir = tempfile::tempdir().expect("temp dir");
    let args: Vec<String> = args[1..]
        .iter()
        .map(|a| {
            if a == "/data" {
                dir.path().display().to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    // The image's environment, with the secret file it expects.
    let env_line = file
        .lines()
        .find(|l| l.starts_with("ENV ROOMCAST_JWT_SECRET_FILE="))
        .expect("the image names its JWT secret file");
    let secret = dir.path().join("jwt-secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").expect("write secret");
    assert!(env_line.contains("/run/secrets/"), "{env_line}");
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .arg("check-config")
        .args(&args)
        .env_remove("ROOMCAST_DEV")
        .env("ROOMCAST_JWT_SECRET_FILE", &secret)
        .output()
        .expect("run check-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
