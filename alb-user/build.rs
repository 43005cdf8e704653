use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

/// Builds `alb-ebpf` for the BPF target with the pinned nightly and embeds it
/// through `OUT_DIR` (aya-template's model). `AYA_BUILD_SKIP=1` skips it for
/// `cargo check` on machines without bpf-linker.
fn main() -> anyhow::Result<()> {
    let cargo_metadata::Metadata { packages, .. } =
        cargo_metadata::MetadataCommand::new().no_deps().exec().context("MetadataCommand::exec")?;
    let ebpf_package = packages
        .into_iter()
        .find(|cargo_metadata::Package { name, .. }| name.as_str() == "alb-ebpf")
        .ok_or_else(|| anyhow!("alb-ebpf package not found"))?;
    let cargo_metadata::Package { name, manifest_path, .. } = ebpf_package;
    let ebpf_package = aya_build::Package {
        name: name.as_str(),
        root_dir: manifest_path
            .parent()
            .ok_or_else(|| anyhow!("no parent for {manifest_path}"))?
            .as_str(),
        ..Default::default()
    };
    // aya-build watches alb-ebpf; the decisions it compiles in live in alb-common.
    let common = std::path::Path::new(ebpf_package.root_dir).with_file_name("alb-common");
    println!("cargo:rerun-if-changed={}", common.display());
    aya_build::build_ebpf([ebpf_package], Toolchain::default())
}
