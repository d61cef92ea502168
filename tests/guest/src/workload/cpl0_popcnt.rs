//! `workload=cpl0-popcnt`: run `popcnt` in kernel mode. Hosts with hardware
//! virtualization print `cpl0-popcnt: ok result=8`; on PVM hosts the instruction
//! cannot be emulated and the VMM must stop the guest with a clear report.

use super::Env;

pub fn run(_env: &Env) {
    let result = crate::cpl0::cpl0_popcnt(0xf0f0);
    if result == 8 {
        crate::println!("cpl0-popcnt: ok result={}", result);
    } else {
        crate::fatal!("cpl0-popcnt: popcnt(0xf0f0) gave {}", result);
    }
}
