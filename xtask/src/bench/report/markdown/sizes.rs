//! The size of each program (noise-free, beside the times of figure 1):
//! translated instructions, JIT bytes and the verifier's processed
//! instructions of a freshly loaded object, as `albbench cost` read them
//! with `BPF_OBJ_GET_INFO_BY_FD`, and the gate's baseline.

use std::fmt::Write as _;

use serde_json::Value;

use crate::bench::report::{arr, f, num};

/// tests/insn-baseline.json, the gate's baseline (tests/tests/insns.rs).
const BASELINE: &str = include_str!("../../../../../tests/insn-baseline.json");

pub(super) fn sizes_md(md: &mut String, doc: &Value) {
    let programs = arr(&doc["cost"]["programs"]);
    if programs.is_empty() {
        return;
    }
    let baseline: Value = serde_json::from_str(BASELINE).unwrap_or(Value::Null);
    let _ = writeln!(
        md,
        "**Program sizes** (`BPF_OBJ_GET_INFO_BY_FD` of the object measured above: translated \
         instructions = `xlated_prog_len / 8`, after the verifier's rewrites; JIT bytes = \
         `jited_prog_len`; helper calls = calls of kernel helpers left in the translated \
         program, after the verifier inlined what it could; verified = `verified_insns`, the \
         instructions the verifier processed over every path it explored). Unlike times, these do not depend on the machine's load. \
         The test `tests/tests/insns.rs` (run by `cargo xtask test`) fails when a program grows \
         more than {}% over the baseline in tests/insn-baseline.json (taken on Linux {}).\n",
        baseline["margin_percent"],
        baseline["kernel"].as_str().unwrap_or("?"),
    );
    let _ = writeln!(
        md,
        "| program | translated insns | baseline | JIT bytes | baseline | helper calls | verified insns |\n\
         |---|---|---|---|---|---|---|"
    );
    for p in programs {
        let name = p["name"].as_str().unwrap_or("?");
        let old = arr(&baseline["programs"]).iter().find(|b| b["name"] == name);
        let base = |key: &str| old.map_or_else(|| "—".to_owned(), |b| num(f(&b[key]), 0));
        let _ = writeln!(
            md,
            "| `{name}` | {} | {} | {} | {} | {} | {} |",
            num(f(&p["xlated_insns"]), 0),
            base("xlated_insns"),
            num(f(&p["jited_bytes"]), 0),
            base("jited_bytes"),
            num(f(&p["helper_calls"]), 0),
            if p["verified_insns"].is_null() {
                "n/a".to_owned()
            } else {
                num(f(&p["verified_insns"]), 0)
            },
        );
    }
    md.push('\n');
}
