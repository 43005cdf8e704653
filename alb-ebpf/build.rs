use which::which;

/// Rebuild when bpf-linker changes: the BPF object is linked by it, and a
/// new linker (or LLVM) can change the BTF it emits.
fn main() {
    if let Ok(bpf_linker) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", bpf_linker.display());
    }
}
