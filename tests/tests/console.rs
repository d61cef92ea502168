//! The serial console's input and output sockets: bytes a client types reach the guest's
//! UART (interrupt driven) and the guest's answers come back.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use reprise_tests::*;
use serde_json::json;

fn spawn_console(scratch: &Scratch, serial: serde_json::Value) -> Reprise {
    let cfg = json!({
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
        "boot-source": {"kernel_image_path": guest_elf(), "boot_args": "workload=console"},
        "serial": serial,
    });
    let path = write_config(scratch, &cfg);
    Reprise::spawn(
        &["--config-file", path.to_str().expect("utf-8")],
        None,
        scratch.path("serial.log"),
    )
}

#[test]
fn input_socket_feeds_the_uart_and_output_goes_to_a_file() {
    require_kvm();
    let scratch = Scratch::new("console-in");
    let input = scratch.path("in.sock");
    let mut vm = spawn_console(
        &scratch,
        json!({"output": format!("file:{}", scratch.path("serial.log").display()),
               "input": format!("socket:{}", input.display())}),
    );
    vm.wait_serial("console: ready", Duration::from_secs(30));
    let mut client = connect_unix(&input);
    client.write_all(b"hello reprise\n").expect("type");
    vm.wait_serial("console: hello reprise\n", Duration::from_secs(10));
    // More than the 64-byte receive FIFO in one go: nothing is lost.
    let long: String = (0..100)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    client
        .write_all(format!("{long}\nquit\n").as_bytes())
        .expect("type");
    let serial = vm.wait_serial("console: bye", Duration::from_secs(10));
    assert!(serial.contains(&format!("console: {long}\n")), "{serial}");
    assert!(vm.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn socket_console_carries_output_and_input() {
    require_kvm();
    let scratch = Scratch::new("console-sock");
    let sock = scratch.path("console.sock");
    let spec = format!("socket:{}", sock.display());
    let mut vm = spawn_console(&scratch, json!({"output": spec, "input": spec}));
    let client = connect_unix(&sock);
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut writer = client.try_clone().expect("clone");
    let mut reader = BufReader::new(client);
    // Output written before the client connected is not kept; type until the guest answers.
    let mut line = String::new();
    writer.write_all(b"ping\n").expect("type");
    loop {
        line.clear();
        reader.read_line(&mut line).expect("read console");
        if line == "console: ping\n" {
            break;
        }
    }
    writer.write_all(b"quit\n").expect("type");
    loop {
        line.clear();
        reader.read_line(&mut line).expect("read console");
        if line == "console: bye\n" {
            break;
        }
    }
    assert!(vm.wait_exit(Duration::from_secs(10)).success());
}
