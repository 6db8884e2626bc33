//! docs/ARCHITECTURE.md's crate map is the workspace's: the dependency edges it lists
//! between workspace crates are exactly those `cargo metadata` reports (normal
//! dependencies), so the map cannot drift from the code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

type Edges = BTreeMap<String, BTreeSet<String>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The edges written between `<!-- crate-map -->` markers: `crate -> dep, dep`.
fn documented() -> Edges {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).expect("read doc");
    let marker = "<!-- crate-map -->";
    let start = doc.find(marker).expect("crate-map marker") + marker.len();
    let end = doc.find("<!-- /crate-map -->").expect("end marker");
    let mut edges = Edges::new();
    for line in doc[start..end].lines() {
        let Some((from, to)) = line.split_once("->") else {
            continue;
        };
        let deps = to
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .collect();
        assert!(
            edges.insert(from.trim().to_owned(), deps).is_none(),
            "{line}: listed twice"
        );
    }
    edges
}

/// The workspace's edges from `cargo metadata`.
fn actual() -> Edges {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata json");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str())
                .filter(|d| names.contains(*d))
                .map(str::to_owned)
                .collect();
            (p["name"].as_str().expect("name").to_owned(), deps)
        })
        .collect()
}

#[test]
fn the_documented_crate_map_is_the_workspaces() {
    let (doc, real) = (documented(), actual());
    assert_eq!(
        doc, real,
        "docs/ARCHITECTURE.md's crate map (left) differs from cargo metadata (right)"
    );
    // The server library stays free of the load generator and the terminal UI.
    let server = &real["roomcast-server"];
    assert!(!server.contains("roomcast-bench") && !server.contains("roomcast-monitor"));
}
