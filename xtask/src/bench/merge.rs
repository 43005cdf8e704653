//! A run given `--only` measures some sections: they replace theirs in the
//! benchmarks.json already in the output directory, whose other sections
//! (and the `meta` of the run that measured them) stay as recorded.

use std::path::Path;

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

/// A run given `--only`: the sections it measured (each with its run's
/// `meta` as `run`) replace theirs in the benchmarks.json already in `out`,
/// whose other sections, errors and `meta` stay as recorded.
pub(super) fn merge(
    out: &Path,
    new: &Value,
    meta: &Value,
    errors: &[String],
    only: &[String],
) -> Result<Value> {
    let path = out.join("benchmarks.json");
    let mut doc = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str::<Value>(&text)
            .with_context(|| format!("cannot parse {}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({ "meta": meta }),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut kept: Vec<Value> = doc["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            let text = e.as_str().unwrap_or_default();
            !only.iter().any(|s| text.starts_with(&format!("{s}:")))
        })
        .collect();
    kept.extend(errors.iter().map(|e| json!(e)));
    for name in only {
        if let Some(mut section) = new.get(name.as_str()).filter(|v| !v.is_null()).cloned() {
            section["run"] = meta.clone();
            doc[name.as_str()] = section;
        }
    }
    doc["errors"] = json!(kept);
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_run_replaces_its_sections_and_keeps_the_others() {
        let dir = std::env::temp_dir().join(format!("alb-bench-merge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let old = json!({
            "meta": {"date": "old"},
            "cost": {"floor": 30},
            "soak": {"seed": 1},
            "errors": ["soak: interrupted", "scale: failed"],
        });
        std::fs::write(dir.join("benchmarks.json"), old.to_string()).expect("write");
        let new = json!({"soak": {"seed": 2}, "balance": {"ignored": true}});
        let meta = json!({"date": "new"});
        let only = ["soak".to_owned()];
        let doc = merge(&dir, &new, &meta, &["soak: x".to_owned()], &only).expect("merged");
        assert_eq!(doc["meta"]["date"], "old", "the full run's meta stays");
        assert_eq!(doc["cost"]["floor"], 30, "a section not run stays");
        assert_eq!(doc["soak"]["seed"], 2, "the section run replaces its own");
        assert_eq!(doc["soak"]["run"]["date"], "new", "and records its run");
        assert!(doc["balance"].is_null(), "only the sections asked for");
        assert_eq!(doc["errors"], json!(["scale: failed", "soak: x"]));
        std::fs::remove_dir_all(&dir).expect("cleanup");
        let fresh = merge(&dir, &new, &meta, &[], &only).expect("no file yet");
        assert_eq!(
            (fresh["meta"]["date"].as_str(), fresh["soak"]["seed"].as_u64()),
            (Some("new"), Some(2))
        );
    }
}
