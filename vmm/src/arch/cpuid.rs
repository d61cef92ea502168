//! CPUID as the guest sees it: KVM's supported set, normalised per vCPU.

use std::sync::OnceLock;

use kvm_bindings::{
    kvm_cpuid_entry2, CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::Kvm;

/// Hypervisor leaf that reports the TSC and LAPIC bus frequencies (kHz).
pub const TSC_FREQ_LEAF: u32 = 0x4000_0010;
/// LAPIC bus frequency KVM emulates, in kHz (1 GHz).
pub const LAPIC_BUS_KHZ: u32 = 1_000_000;

static SUPPORTED: OnceLock<Result<CpuId, kvm_ioctls::Error>> = OnceLock::new();

/// KVM's supported CPUID (`KVM_GET_SUPPORTED_CPUID`), fetched once per process.
pub fn supported() -> Result<CpuId, kvm_ioctls::Error> {
    SUPPORTED
        .get_or_init(|| Kvm::new()?.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES))
        .clone()
}

/// Starts fetching [`supported`] on a background thread, so that starting a VM does not
/// wait for the ioctl (about 0.3 ms).
pub fn prefetch_supported() {
    let spawned = std::thread::Builder::new()
        .name("cpuid-prefetch".into())
        .spawn(|| {
            let _ = supported();
        });
    if let Err(e) = spawned {
        log::debug!("CPUID prefetch thread: {e}");
    }
}

fn set_entry(cpuid: &mut CpuId, entry: kvm_cpuid_entry2) -> Result<(), vmm_sys_util::fam::Error> {
    if let Some(e) = cpuid
        .as_mut_slice()
        .iter_mut()
        .find(|e| e.function == entry.function && e.index == entry.index)
    {
        *e = entry;
        return Ok(());
    }
    cpuid.push(entry)
}

/// Adjusts `cpuid` for vCPU `index` of `count`: APIC IDs, topology, the hypervisor bit and the
/// hypervisor leaves, including the TSC frequency leaf when `tsc_khz` is known.
pub fn normalize(
    cpuid: &mut CpuId,
    index: u8,
    count: u8,
    tsc_khz: Option<u32>,
) -> Result<(), vmm_sys_util::fam::Error> {
    let mut max_hv_leaf = 0;
    for e in cpuid.as_mut_slice() {
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x0000_ffff) | (u32::from(index) << 24) | (u32::from(count) << 16);
                e.ecx |= 1 << 31; // running under a hypervisor
                if count > 1 {
                    e.edx |= 1 << 28; // HTT: several logical processors
                }
            }
            0xb | 0x1f => {
                e.edx = u32::from(index); // x2APIC ID
                e.flags |= KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
            }
            0x4000_0000 => max_hv_leaf = e.eax,
            _ => {}
        }
    }
    if let Some(khz) = tsc_khz {
        let mut signature = [0u32; 3];
        for (i, chunk) in b"KVMKVMKVM\0\0\0".chunks(4).enumerate() {
            signature[i] = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        set_entry(
            cpuid,
            kvm_cpuid_entry2 {
                function: 0x4000_0000,
                eax: max_hv_leaf.max(TSC_FREQ_LEAF),
                ebx: signature[0],
                ecx: signature[1],
                edx: signature[2],
                ..Default::default()
            },
        )?;
        set_entry(
            cpuid,
            kvm_cpuid_entry2 {
                function: TSC_FREQ_LEAF,
                eax: khz,
                ebx: LAPIC_BUS_KHZ,
                ..Default::default()
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_apic_id_and_tsc_leaf() {
        let mut cpuid = CpuId::new(0).unwrap();
        cpuid
            .push(kvm_cpuid_entry2 {
                function: 1,
                ebx: 0xff00_1234,
                ..Default::default()
            })
            .unwrap();
        normalize(&mut cpuid, 3, 4, Some(2_700_000)).unwrap();
        let e1 = cpuid.as_slice().iter().find(|e| e.function == 1).unwrap();
        assert_eq!(e1.ebx >> 24, 3);
        assert_eq!((e1.ebx >> 16) & 0xff, 4);
        assert_eq!(e1.ebx & 0xffff, 0x1234);
        assert_ne!(e1.ecx & (1 << 31), 0);
        let hv = cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == 0x4000_0000)
            .unwrap();
        assert_eq!(hv.eax, TSC_FREQ_LEAF);
        let tsc = cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == TSC_FREQ_LEAF)
            .unwrap();
        assert_eq!(tsc.eax, 2_700_000);
    }
}
