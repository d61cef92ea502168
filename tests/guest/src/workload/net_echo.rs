//! `workload=net-echo`: send every received frame back with the MAC addresses
//! swapped, until a frame of ethertype 0x88b5 whose payload starts with `STOP`.

use super::Env;
use crate::inet::MacFmt;
use crate::println;
use crate::virtio::net::Net;
use crate::virtio::DEVICE_NET;

const STOP_ETHERTYPE: [u8; 2] = [0x88, 0xb5];

pub fn run(env: &Env) {
    let Some(slot) = env.devices(DEVICE_NET).next() else {
        crate::fatal!("net-echo: no virtio-net device");
    };
    let mut net = Net::new(slot);
    println!("net-echo: ready mac={}", MacFmt(net.mac()));
    let mut frame = [0u8; 2048];
    let mut echoed: u64 = 0;
    loop {
        let len = net.recv(&mut frame);
        let f = &mut frame[..len];
        if len < 14 {
            continue;
        }
        if f[12..14] == STOP_ETHERTYPE && f[14..].starts_with(b"STOP") {
            break;
        }
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&f[..6]);
        f.copy_within(6..12, 0);
        f[6..12].copy_from_slice(&dst);
        net.send(f);
        echoed += 1;
    }
    println!("net-echo: stopped frames={}", echoed);
}
