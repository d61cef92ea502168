//! The gdb stub, driven by the real `gdb` in batch mode against the test guest's ELF:
//! attaching to a running VM, breakpoints and stepping in kernel-mode code, a clone that
//! waits for the debugger and is walked to the kv crash with `monitor` commands, and a
//! stub that survives bad debuggers.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use replay::capture::reader::{find_buffers, CaptureReader, Query};
use replay::EventKind;
use reprise_tests::*;
use reprise_tools::demo_replay::record_kv_crash;
use reprise_tools::vmm_process::Vmm;
use serde_json::json;

/// Runs gdb on the guest ELF, connected to `remote`, with `commands`; returns everything
/// it printed. Fails the test if gdb does not finish in time.
fn gdb(remote: &str, commands: &[&str]) -> String {
    let mut cmd = Command::new("gdb");
    cmd.args([
        "-nx",
        "-batch",
        "-ex",
        "set pagination off",
        "-ex",
        "set confirm off",
    ])
    .args(["-ex", "set remotetimeout 30"])
    .args(["-ex", &format!("file {}", guest_elf().display())])
    .args(["-ex", &format!("target remote {remote}")]);
    for c in commands {
        cmd.args(["-ex", c]);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gdb (install it: apt-get install gdb)");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().expect("wait gdb").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    let _ = child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out);
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut out);
    println!("---- gdb ----\n{out}-------------");
    out
}

/// The symbols of the guest ELF, from `nm`.
fn symbol(name: &str) -> u64 {
    let out = Command::new("nm")
        .arg(guest_elf())
        .output()
        .expect("run nm");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            let (addr, _, n) = (w.next()?, w.next()?, w.next()?);
            (n == name).then(|| u64::from_str_radix(addr, 16).ok())?
        })
        .unwrap_or_else(|| panic!("symbol {name} not in the guest ELF"))
}

/// The address of the symbol whose (mangled) name contains `part`.
fn symbol_containing(part: &str) -> u64 {
    let out = Command::new("nm")
        .arg(guest_elf())
        .output()
        .expect("run nm");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            let (addr, kind, n) = (w.next()?, w.next()?, w.next()?);
            let _ = kind;
            n.contains(part)
                .then(|| u64::from_str_radix(addr, 16).ok())?
        })
        .unwrap_or_else(|| panic!("no symbol named like {part} in the guest ELF"))
}

/// `len` bytes of the guest image at virtual address `addr`, from its program headers.
fn image_bytes(addr: u64, len: usize) -> Vec<u8> {
    let elf = std::fs::read(guest_elf()).expect("read the guest ELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().expect("8 bytes"));
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let kind = u32::from_le_bytes(elf[ph..ph + 4].try_into().expect("4 bytes"));
        let (offset, vaddr, filesz) = (u64_at(ph + 8), u64_at(ph + 16), u64_at(ph + 32));
        if kind == 1 && addr >= vaddr && addr + len as u64 <= vaddr + filesz {
            let at = (offset + addr - vaddr) as usize;
            return elf[at..at + len].to_vec();
        }
    }
    panic!("{addr:#x} is not in a loaded segment of the guest ELF");
}

/// The bytes gdb's `x/Nxb` printed, in order.
fn examined_bytes(out: &str) -> Vec<u8> {
    out.lines()
        .filter(|l| l.starts_with("0x") && l.contains(":\t"))
        .flat_map(|l| l.split(":\t").nth(1).unwrap_or("").split('\t'))
        .filter_map(|w| u8::from_str_radix(w.trim().trim_start_matches("0x"), 16).ok())
        .collect()
}

/// The value of each `print` (`$N = VALUE`) in order.
fn printed(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with('$'))
        .filter_map(|l| l.split_once(" = ").map(|(_, v)| v.trim().to_string()))
        .collect()
}

fn hex(v: &str) -> u64 {
    u64::from_str_radix(v.trim_start_matches("0x"), 16)
        .unwrap_or_else(|_| panic!("{v:?} is not hex"))
}

/// `info registers` lines as (name, value).
fn registers(out: &str) -> Vec<(String, u64)> {
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (name, value) = (w.next()?, w.next()?);
            value
                .strip_prefix("0x")
                .and_then(|v| u64::from_str_radix(v, 16).ok())
                .map(|v| (name.to_string(), v))
        })
        .collect()
}

/// A VM running the `ticks` workload with the API and a gdb socket.
fn ticking_vm(scratch: &Scratch) -> (Reprise, PathBuf) {
    require_kvm();
    let api = scratch.path("api.sock");
    let gdb_sock = scratch.path("gdb.sock");
    let mut vm = Reprise::spawn(
        &[
            "--api-sock",
            api.to_str().expect("utf-8"),
            "--gdb-socket",
            gdb_sock.to_str().expect("utf-8"),
        ],
        Some(api.clone()),
        scratch.path("serial.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !api.exists() {
        assert!(Instant::now() < deadline, "no API socket: {}", vm.stderr());
        std::thread::sleep(Duration::from_millis(5));
    }
    vm.boot_guest(
        64,
        "workload=ticks ticks.hz=200 ticks.every=20",
        json!([]),
        None,
    );
    vm.wait_serial("ticks: n=40", Duration::from_secs(30));
    (vm, gdb_sock)
}

fn host_is_pvm() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

fn ticks_seen(vm: &Reprise) -> usize {
    lines_with(&vm.serial(), "ticks: n=").len()
}

/// Waits until the guest has printed more tick lines than `before` (it runs).
fn runs_on(vm: &mut Reprise, before: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ticks_seen(vm) <= before {
        assert!(
            Instant::now() < deadline,
            "the guest did not run on after the debugger left.\nstderr:\n{}",
            vm.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(vm.state(), "Running");
}

#[test]
fn gdb_attaches_to_a_running_vm_reads_registers_and_memory_and_breaks_in_kernel_code() {
    let scratch = Scratch::new("gdb-attach");
    let (mut vm, sock) = ticking_vm(&scratch);
    let remote = sock.to_str().expect("utf-8");

    // Registers: the API's view of the paused VM is what gdb shows.
    vm.api_ok("PATCH", "/vm", json!({"state": "Paused"}));
    let (status, api_regs) = vm.api("GET", "/vm/vcpus", None);
    assert_eq!(status, 200, "{api_regs:?}");
    let api_regs = api_regs.expect("registers")[0].clone();
    let names = [
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15", "rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs", "cr0", "cr3",
        "cr4", "efer",
    ];
    let isr_stubs = symbol("isr_stubs");
    let out = gdb(
        remote,
        &[
            &format!("info registers {}", names.join(" ")),
            "x/16xb isr_stubs",
            "x/4xb 0x7ff000000000",
            "detach",
        ],
    );
    let shown = registers(&out);
    for name in names {
        let api_name = if name == "eflags" { "rflags" } else { name };
        let expected = api_regs[api_name]
            .as_u64()
            .unwrap_or_else(|| panic!("{api_name} missing in {api_regs}"));
        let got = shown
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("gdb showed no {name}:\n{out}"))
            .1;
        assert_eq!(got, expected, "{name}: gdb {got:#x}, API {expected:#x}");
    }
    assert_eq!(examined_bytes(&out), image_bytes(isr_stubs, 16), "{out}");
    assert!(
        out.contains("Cannot access memory at address 0x7ff000000000"),
        "{out}"
    );
    // Detaching resumed the VM (it was paused before gdb came; detach lets it run).
    let before = ticks_seen(&vm);
    runs_on(&mut vm, before);

    // A hardware breakpoint on the interrupt entry (kernel mode), a step, and on.
    let irq_entry = symbol("irq_entry");
    let out = gdb(
        remote,
        &[
            "hbreak irq_entry",
            "continue",
            "print/x $pc",
            "print/x $rax & 0xff",
            "x/2i $pc",
            "stepi",
            "print/x $pc",
            "continue",
            "print/x $pc",
            "delete",
            "detach",
        ],
    );
    println!("{}", vm.stderr());
    let values = printed(&out);
    assert_eq!(values.len(), 4, "{out}");
    assert_eq!(
        hex(&values[0]),
        irq_entry,
        "stopped at the breakpoint:\n{out}"
    );
    assert_eq!(hex(&values[1]), 0x20, "the timer's vector is in al:\n{out}");
    // The second instruction's address, as gdb disassembled it (`x/2i`: the line after
    // the one marked `=>`).
    let next = out
        .lines()
        .skip_while(|l| !l.starts_with("=> "))
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .map(|w| hex(w.trim_end_matches(':')))
        .unwrap_or_else(|| panic!("no second instruction in:\n{out}"));
    assert_eq!(hex(&values[2]), next, "stepi moved one instruction:\n{out}");
    assert_eq!(
        hex(&values[3]),
        irq_entry,
        "the next interrupt hit it again:\n{out}"
    );
    assert!(out.contains("Breakpoint 1"), "{out}");
    let before = ticks_seen(&vm);
    runs_on(&mut vm, before);

    // A write watchpoint on the timer's interrupt counter, which the kernel-mode entry
    // increments: each hit shows the next count. PVM hosts cannot trap it and say so; the
    // breakpoint then stops the guest instead.
    let counter = symbol_containing("IRQ_COUNTS") + 0x20 * 8;
    let pvm = host_is_pvm();
    let watch = format!("watch *(long *){counter:#x}");
    let commands: Vec<&str> = if pvm {
        vec![
            &watch,
            "hbreak irq_entry",
            "continue",
            "print/x $pc",
            "delete",
            "detach",
        ]
    } else {
        vec![&watch, "continue", "continue", "delete", "detach"]
    };
    let out = gdb(remote, &commands);
    assert!(out.contains("Hardware watchpoint 1"), "{out}");
    if pvm {
        assert!(out.contains("will not fire on this host (PVM)"), "{out}");
        assert_eq!(
            printed(&out).last().map(|v| hex(v)),
            Some(irq_entry),
            "{out}"
        );
    } else {
        let news: Vec<u64> = out
            .lines()
            .filter_map(|l| l.strip_prefix("New value = "))
            .filter_map(|v| v.trim().parse().ok())
            .collect();
        assert_eq!(news.len(), 2, "{out}");
        assert_eq!(news[1], news[0] + 1, "{out}");
    }
    let before = ticks_seen(&vm);
    runs_on(&mut vm, before);
}

#[test]
fn bad_debuggers_never_wedge_the_vm() {
    let scratch = Scratch::new("gdb-bad");
    let (mut vm, sock) = ticking_vm(&scratch);

    // Garbage on the socket.
    {
        let mut s = connect_unix(&sock);
        s.write_all(b"hello\x03$zz#00+-+$qSupported#00$m0,ffffffffffff#00")
            .expect("write garbage");
        std::thread::sleep(Duration::from_millis(300));
    }
    let before = ticks_seen(&vm);
    runs_on(&mut vm, before);

    // A second debugger while one is attached is turned away; the first one vanishing
    // (mid-stop: attaching stopped the VM) leaves the VM running.
    let first = connect_unix(&sock);
    std::thread::sleep(Duration::from_millis(300));
    let mut second = connect_unix(&sock);
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    assert_eq!(
        second.read(&mut buf).unwrap_or(0),
        0,
        "the second debugger was closed"
    );
    let (_, status) = vm.api("GET", "/debugger", None);
    assert_eq!(status.expect("status")["attached"], true);
    assert_eq!(vm.state(), "Paused", "attaching stopped the VM");
    drop(first);
    let before = ticks_seen(&vm);
    runs_on(&mut vm, before);

    // Through the API on the running VM: a second server is refused, a TCP one is not
    // possible next to it, and the real gdb, killed while stopped at a breakpoint, leaves
    // the VM running with its breakpoint gone.
    let (code, body) = vm.api(
        "PUT",
        "/debugger",
        Some(json!({"tcp_address": "127.0.0.1:0"})),
    );
    assert_eq!(code, 409, "{body:?}");
    let out = gdb(
        sock.to_str().expect("utf-8"),
        &["hbreak irq_entry", "continue", "shell kill -9 $PPID"],
    );
    assert!(out.contains("Breakpoint 1"), "{out}");
    let before = ticks_seen(&vm);
    runs_on(&mut vm, before);
    let (_, status) = vm.api("GET", "/debugger", None);
    assert_eq!(status.expect("status")["attached"], false);
}

#[test]
fn the_debugger_server_starts_through_the_api_on_a_running_vm() {
    require_kvm();
    let scratch = Scratch::new("gdb-api");
    let mut vm = Reprise::with_api(&scratch);
    vm.boot_guest(
        64,
        "workload=ticks ticks.hz=200 ticks.every=20",
        json!([]),
        None,
    );
    vm.wait_serial("ticks: n=20", Duration::from_secs(30));
    for bad in [json!({}), json!({"tcp_address": "not-an-address"})] {
        let (code, body) = vm.api("PUT", "/debugger", Some(bad.clone()));
        assert_eq!(code, 400, "{bad} -> {body:?}");
    }
    let (code, body) = vm.api(
        "PUT",
        "/debugger",
        Some(json!({"tcp_address": "127.0.0.1:0"})),
    );
    assert_eq!(code, 200, "{body:?}");
    let listening = body.expect("status")["listening"]
        .as_str()
        .expect("listening")
        .to_string();
    let out = gdb(
        &listening,
        &["info threads", "print/x $pc", "monitor help", "detach"],
    );
    assert!(out.contains("Thread 1"), "{out}");
    assert!(out.contains("run-until event K"), "{out}");
    assert_eq!(printed(&out).len(), 1, "{out}");
    let before = ticks_seen(&vm);
    runs_on(&mut vm, before);

    // `kill` stops the VM for good.
    let out = gdb(&listening, &["kill"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while vm.state() != "Stopped" {
        assert!(
            Instant::now() < deadline,
            "kill did not stop the VM:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The input index of the request with `seq` among a replay's inputs from snapshot `id`.
fn input_index(capture: &Path, id: &str, seq: u64) -> u64 {
    let buffer = find_buffers(capture).expect("buffers").remove(0);
    let reader = CaptureReader::open(&buffer).expect("open capture");
    let mut index = None;
    for r in reader.events(&Query::default()).expect("events").flatten() {
        match &r.event.kind {
            EventKind::SnapshotTaken { id: s } if s == id => index = Some(0u64),
            EventKind::NetRx { .. } | EventKind::SerialIn { .. } => {
                if let Some(i) = index.as_mut() {
                    if r.event.seq == seq {
                        return *i;
                    }
                    *i += 1;
                }
            }
            _ => {}
        }
    }
    panic!("request seq {seq} is not after snapshot {id}");
}

#[test]
fn a_clone_waits_for_gdb_which_walks_it_to_the_kv_crash_and_restarts_it() {
    require_kvm();
    require_device("/dev/net/tun", "TUN/TAP");
    let scratch = Scratch::new("gdb-clone");
    let rec = record_kv_crash(&scratch.path(""), Path::new(guest_elf()), "gdbc", 1200, 250)
        .unwrap_or_else(|e| panic!("recording the kv service: {e}"));
    let (crash_seq, crash_ns, _) = rec.crash.clone();

    let gdb_sock = scratch.path("clone-gdb.sock");
    let mut cmd = Command::new(reprise_bin());
    cmd.arg("--gdb-socket").arg(&gdb_sock);
    let clone = Vmm::spawn(cmd, scratch.path("clone.sock"), "clone").expect("clone VMM");
    let serial = scratch.path("clone-serial.log");
    clone
        .call(
            "PUT",
            "/replay",
            json!({
                "capture_dir": rec.capture,
                "snapshot_dir": rec.store,
                "before": format!("{crash_ns}ns"),
                "speed": "max",
                "wait_for_debugger": true,
                "serial_output": format!("file:{}", serial.display()),
            }),
        )
        .expect("PUT /replay");
    // It waits: paused, nothing delivered.
    std::thread::sleep(Duration::from_millis(500));
    let status = clone.get("/replay").expect("status");
    assert_eq!(status["position"], 0, "{status}");
    assert_eq!(clone.get("/").expect("info")["state"], "Paused");
    let snapshot = status["snapshot"].as_str().expect("snapshot").to_string();
    let k = input_index(&rec.capture, &snapshot, crash_seq);
    let first = rec.snapshots[0].clone();
    let read_record = symbol_containing("read_record");
    assert_ne!(first, snapshot, "the recording has several snapshots");

    let out = gdb(
        gdb_sock.to_str().expect("utf-8"),
        &[
            &format!("monitor run-until event {k}"),
            "continue",
            "monitor status",
            // User-mode code: neither a step nor a breakpoint can trap on PVM; both say so.
            "stepi",
            &format!("break *{read_record:#x}"),
            "continue",
            "print/x $rax & 0xff",
            "x/2xb $pc-2",
            "info symbol $pc",
            "monitor last 1",
            "monitor snapshots",
            &format!("monitor restart {first}"),
            "maint flush register-cache",
            "print/x $pc",
            "monitor status",
            "monitor run-until event 3",
            "continue",
            "monitor status",
            "detach",
        ],
    );
    // Held before the crashing request: it is the next input.
    assert!(
        out.contains(&format!("position: {k} of")),
        "run-until stopped at input {k}:\n{out}"
    );
    assert!(out.contains(&format!("seq {crash_seq}")), "{out}");
    if host_is_pvm() {
        assert!(out.contains("it was not stepped"), "{out}");
        assert!(out.contains("so it will not be hit"), "{out}");
    }
    // Then the guest crashed: its reset is held for inspection, at the i8042 write.
    assert!(out.contains("SIGABRT"), "{out}");
    assert!(out.contains("the guest asked for a reset"), "{out}");
    let values = printed(&out);
    assert_eq!(values[0], "0xfe", "al holds the reset command:\n{out}");
    let out_insn = examined_bytes(&out);
    assert!(
        out_insn.ends_with(&[0xe6, 0x64]) || out_insn.ends_with(&[0xee]),
        "the instruction before the stop is the port write to 0x64: {out_insn:x?}\n{out}"
    );
    assert!(
        out.contains("kv"),
        "stopped in the kv service's code:\n{out}"
    );
    let serial_text = std::fs::read_to_string(&serial).unwrap_or_default();
    assert!(
        serial_text.contains("reprise-guest: FATAL kv: panic"),
        "{serial_text}"
    );
    // The snapshots listed are the capture's, the clone's own marked.
    assert!(out.contains(&format!("* {snapshot}")), "{out}");
    assert!(out.contains(&format!("  {first}")), "{out}");
    // Restarted from the first snapshot with gdb still connected, and driven again.
    assert!(
        out.contains(&format!("restarted from snapshot {first}")),
        "{out}"
    );
    assert!(out.contains(&format!("from snapshot {first}")), "{out}");
    assert!(out.contains("position: 3 of"), "{out}");
    let status = clone.get("/replay").expect("status");
    assert_eq!(status["snapshot"], first.as_str(), "{status}");
}
