//! Any bytes, as a frame leaving the master or reaching a slave: the
//! decisions never panic and stay consistent with the frame
//! (`alb_common::invariants`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| alb_common::invariants::check(data));
