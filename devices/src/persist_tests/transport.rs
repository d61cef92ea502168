//! The virtio-mmio transport across a snapshot: register contents mid-initialisation and
//! mid-operation, and refusal of corrupted states.

use std::sync::{Arc, Mutex};

use super::block::{block_vm, disk_image, raw, restore_block_vm, QUEUE_BASE};
use super::driver::{self, all_registers, negotiate, setup_queue, w};
use super::{expect_refused, round_trip};
use crate::persist::Persist;
use crate::virtio::interrupt::{VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING};
use crate::virtio::test_utils::{
    copy_memory, counting_interrupt, guest_memory, TestQueue, MEM_SIZE,
};
use crate::virtio::{status, Block, BlockArgs, MmioTransport, MmioTransportArgs};

#[test]
fn transport_restored_mid_initialisation_reads_and_continues_like_the_original() {
    let mem = guest_memory();
    let image = disk_image();
    let block = Arc::new(Mutex::new(Block::new(raw(&image)).unwrap()));
    let (irq, _) = counting_interrupt();
    let mut t = MmioTransport::new(block.clone(), mem.clone(), irq);
    let tq = TestQueue::new(&mem, QUEUE_BASE, 16);
    // Features accepted; queue 0 half programmed; selectors away from zero; a config
    // interrupt pending; a rejected access counted.
    negotiate(&mut t);
    w(&mut t, driver::QUEUE_SEL, 0);
    w(&mut t, 0x38, 8);
    w(&mut t, 0x80, tq.desc_addr() as u32);
    w(&mut t, 0x14, 1);
    w(&mut t, 0x24, 1);
    t.interrupt().signal(VIRTIO_MMIO_INT_CONFIG).unwrap();
    w(&mut t, 0x000, 0);
    assert_eq!(t.bad_accesses(), 1);

    let mem2 = copy_memory(&mem);
    let block2 = round_trip(
        &*block.lock().unwrap(),
        BlockArgs {
            backend: raw(&image),
        },
    );
    let block2 = Arc::new(Mutex::new(block2));
    let (irq2, irqs2) = counting_interrupt();
    let mut t2 = round_trip(
        &t,
        MmioTransportArgs {
            device: block2.clone(),
            mem: mem2.clone(),
            interrupt: irq2,
        },
    );
    assert_eq!(irqs2.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(!block2.lock().unwrap().is_activated());
    assert_eq!(all_registers(&mut t2, 1), all_registers(&mut t, 1));
    assert_eq!(t2.save(), t.save());

    // The driver finishes on both; both end up activated with the same queue.
    for (transport, memory) in [(&mut t, &mem), (&mut t2, &mem2)] {
        let tq = TestQueue::new(memory, QUEUE_BASE, 16);
        w(transport, driver::INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
        setup_queue(transport, 0, &tq);
        driver::driver_ok(transport);
    }
    assert_eq!(t2.save(), t.save());
    assert_eq!(all_registers(&mut t2, 1), all_registers(&mut t, 1));
}

#[test]
fn activated_transport_answers_registers_like_the_original() {
    let mem = guest_memory();
    let image = disk_image();
    let tq = TestQueue::new(&mem, QUEUE_BASE, 16);
    let mut vm = block_vm(&mem, &tq, raw(&image));
    vm.transport
        .interrupt()
        .signal(VIRTIO_MMIO_INT_VRING)
        .unwrap();
    w(&mut vm.transport, 0x24, 1);
    let mem2 = copy_memory(&mem);
    let mut vm2 = restore_block_vm(&vm, &mem2, raw(&image));
    assert!(vm2.block.lock().unwrap().is_activated());
    assert_eq!(
        all_registers(&mut vm2.transport, 1),
        all_registers(&mut vm.transport, 1)
    );
    assert_eq!(
        driver::r(&mut vm2.transport, driver::INTERRUPT_STATUS),
        VIRTIO_MMIO_INT_VRING
    );
    // A reset through the restored transport resets the restored device.
    w(&mut vm2.transport, driver::STATUS, 0);
    assert!(!vm2.block.lock().unwrap().is_activated());
    assert_eq!(driver::r(&mut vm2.transport, driver::INTERRUPT_STATUS), 0);
}

#[test]
fn transport_refuses_corrupted_states() {
    let mem = guest_memory();
    let image = disk_image();
    let tq = TestQueue::new(&mem, QUEUE_BASE, 16);
    let vm = block_vm(&mem, &tq, raw(&image));
    let device_state = vm.block.lock().unwrap().save();
    let good = vm.transport.save();
    let args = || {
        let block = Block::restore(
            BlockArgs {
                backend: raw(&image),
            },
            &device_state,
        )
        .unwrap();
        let block = Arc::new(Mutex::new(block));
        let (irq, _) = counting_interrupt();
        let args = MmioTransportArgs {
            device: block.clone(),
            mem: mem.clone(),
            interrupt: irq,
        };
        (args, block)
    };
    let component = "virtio-mmio[virtio-blk]";
    let refuse = |state: &crate::virtio::MmioTransportState, field: &str| {
        let (args, block) = args();
        expect_refused::<MmioTransport>(args, state, component, field);
        assert!(
            !block.lock().unwrap().is_activated(),
            "a refused restore must not resume the device"
        );
    };

    let mut s = good.clone();
    s.queues[0].size = 3;
    refuse(&s, "queues[0].size");

    let mut s = good.clone();
    s.queues[0].size = 512;
    refuse(&s, "queues[0].size");

    let mut s = good.clone();
    s.queues[0].next_avail = 2;
    s.queues[0].next_used = 5;
    refuse(&s, "queues[0].next_used");

    let mut s = good.clone();
    s.driver_features |= 1 << 40;
    refuse(&s, "driver_features");

    let mut s = good.clone();
    s.driver_features = 0;
    refuse(&s, "driver_features");

    let mut s = good.clone();
    s.queues[0].desc_table = MEM_SIZE as u64;
    refuse(&s, "queues[0].desc_table");

    let mut s = good.clone();
    s.queues[0].used_ring += 2;
    refuse(&s, "queues[0].used_ring");

    let mut s = good.clone();
    s.queues[0].max_size = 512;
    refuse(&s, "queues[0].max_size");

    let mut s = good.clone();
    s.queues[0].event_idx = true;
    refuse(&s, "queues[0].event_idx");

    let mut s = good.clone();
    s.queues.push(s.queues[0].clone());
    refuse(&s, "queues");

    let mut s = good.clone();
    s.device_type = 1;
    refuse(&s, "device_type");

    let mut s = good.clone();
    s.device_features |= 1 << 3;
    refuse(&s, "device_features");

    let mut s = good.clone();
    s.activated = false;
    refuse(&s, "activated");

    let mut s = good.clone();
    s.status &= !status::FEATURES_OK;
    refuse(&s, "status");

    let mut s = good.clone();
    s.interrupt_status = 4;
    refuse(&s, "interrupt_status");

    let mut s = good.clone();
    s.config_generation = 9;
    refuse(&s, "config_generation");

    // A transport that was never activated cannot have used its queues.
    let (irq, _) = counting_interrupt();
    let fresh = Arc::new(Mutex::new(Block::new(raw(&image)).unwrap()));
    let mut s = MmioTransport::new(fresh, mem.clone(), irq).save();
    s.queues[0].next_avail = 1;
    let block = Block::restore(
        BlockArgs {
            backend: raw(&image),
        },
        &Block::new(raw(&image)).unwrap().save(),
    )
    .unwrap();
    let (irq, _) = counting_interrupt();
    expect_refused::<MmioTransport>(
        MmioTransportArgs {
            device: Arc::new(Mutex::new(block)),
            mem: mem.clone(),
            interrupt: irq,
        },
        &s,
        component,
        "queues[0].next_avail",
    );

    // The untouched state still restores.
    let (args, block) = args();
    MmioTransport::restore(args, &good).unwrap();
    assert!(block.lock().unwrap().is_activated());
}
