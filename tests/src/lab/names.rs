//! How the lab names what it creates: its namespaces by prefix (and which
//! namespaces belong to a lab), the MACs of its devices, and where its logs
//! go.

use std::path::PathBuf;

/// The server namespace of the lab with prefix `prefix`.
pub fn srv_ns(prefix: &str) -> String {
    format!("{prefix}-srv")
}

/// The switch namespace of the lab with prefix `prefix`.
pub fn sw_ns(prefix: &str) -> String {
    format!("{prefix}-sw")
}

/// The namespace of client `n` (1-based) of the lab with prefix `prefix`.
pub fn client_ns(prefix: &str, n: usize) -> String {
    format!("{prefix}-c{n}")
}

/// The namespace of VM `n` (1-based) of the lab with prefix `prefix`.
pub fn vm_ns(prefix: &str, n: usize) -> String {
    format!("{prefix}-v{n}")
}

/// A locally administered MAC whose last two octets read as the decimal
/// number `n` (veth17 -> ..:00:17, veth101 -> ..:01:01).
pub(super) fn lab_mac(kind: u8, n: usize) -> String {
    format!("02:a1:{kind:02x}:00:{:02}:{:02}", n / 100 % 100, n % 100)
}

pub(super) fn log_root() -> PathBuf {
    std::env::temp_dir().join("alb-lab")
}

pub(super) fn log_dir(prefix: &str) -> PathBuf {
    log_root().join(prefix)
}

pub(super) fn is_lab_ns(prefix: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let numbered = |kind: char| {
        rest.strip_prefix(kind)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    // `bond`: the slaves' namespace of the bench's layout experiment.
    rest == "srv" || rest == "sw" || rest == "bond" || numbered('c') || numbered('v')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_read_as_the_device_number() {
        assert_eq!(lab_mac(0xb0, 17), "02:a1:b0:00:00:17");
        assert_eq!(lab_mac(0xb1, 18), "02:a1:b1:00:00:18");
        assert_eq!(lab_mac(0xb0, 101), "02:a1:b0:00:01:01");
        assert_eq!(lab_mac(0xc0, 1), "02:a1:c0:00:00:01");
    }

    #[test]
    fn lab_namespaces_are_recognised_by_prefix() {
        assert!(is_lab_ns("alb-lab", "alb-lab-srv"));
        assert!(is_lab_ns("alb-lab", "alb-lab-sw"));
        assert!(is_lab_ns("alb-lab", "alb-lab-c12"));
        assert!(is_lab_ns("alb-lab", "alb-lab-v2"));
        assert!(is_lab_ns("alb-lab", "alb-lab-bond"), "the bench layout experiment's slaves");
        assert!(!is_lab_ns("alb-lab", "alb-lab-c"));
        assert!(!is_lab_ns("alb-lab", "alb-lab-cx"));
        assert!(!is_lab_ns("alb-lab", "alb-lab2-srv"));
        assert!(!is_lab_ns("alb", "alb-lab-srv"));
    }
}
