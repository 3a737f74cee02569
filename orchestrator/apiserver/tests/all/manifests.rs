//! Every example manifest in `manifests/` is accepted by the API as written.

use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::harness::TestServer;
use crate::on_both_stores;

fn yaml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

fn documents() -> Vec<(String, Value)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests");
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            if !v.is_null() {
                docs.push((f.display().to_string(), v));
            }
        }
    }
    // Namespaces before what lives in them.
    docs.sort_by_key(|(_, v)| v["kind"] != "Namespace");
    docs
}

on_both_stores!(every_example_manifest_is_accepted);

async fn every_example_manifest_is_accepted(s: TestServer) {
    let docs = documents();
    let mut kinds: Vec<String> = Vec::new();
    for (file, doc) in docs {
        let r = skiff_api::registry::by_api_version_kind(
            doc["apiVersion"].as_str().unwrap(),
            doc["kind"].as_str().unwrap(),
        )
        .unwrap_or_else(|| panic!("{file}: kind not served"));
        let ns = doc["metadata"]["namespace"].as_str().unwrap_or("default");
        let (st, body) = s.post(&r.collection_path(Some(ns)), doc.clone()).await;
        assert_eq!(st, StatusCode::CREATED, "{file}: {body}");
        kinds.push(r.kind.to_string());
    }
    for r in skiff_api::registry::all() {
        assert!(
            kinds.iter().any(|k| k == r.kind),
            "no example manifest for {}",
            r.kind
        );
    }
}
