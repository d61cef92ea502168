//! The NBD server's life cycle: binding, refusing what it should, many clients, limits,
//! adding and removing exports, and shutdown. Uses a small raw client over std sockets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use blockstore::nbd::proto::*;
use blockstore::nbd::{MemExport, NbdError, NbdServer};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("reprise-nbds-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// Just enough of a client: greeting, `NBD_OPT_GO`, requests, simple replies.
struct Client {
    s: Box<dyn Conn>,
    cookie: u64,
}

impl Client {
    fn unix(path: &Path) -> Client {
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client::greet(Box::new(s))
    }

    fn tcp(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client::greet(Box::new(s))
    }

    fn greet(mut s: Box<dyn Conn>) -> Client {
        let mut hello = [0u8; 18];
        s.read_exact(&mut hello).unwrap();
        assert_eq!(&hello[..16], b"NBDMAGICIHAVEOPT");
        s.write_all(&(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES).to_be_bytes())
            .unwrap();
        Client { s, cookie: 0 }
    }

    fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.s.read_exact(&mut b).unwrap();
        u32::from_be_bytes(b)
    }

    /// `NBD_OPT_GO`: the export size, or the error reply type.
    fn go(&mut self, name: &str) -> Result<u64, u32> {
        let mut m = Vec::new();
        m.extend_from_slice(&IHAVEOPT.to_be_bytes());
        m.extend_from_slice(&OPT_GO.to_be_bytes());
        m.extend_from_slice(&(name.len() as u32 + 6).to_be_bytes());
        m.extend_from_slice(&(name.len() as u32).to_be_bytes());
        m.extend_from_slice(name.as_bytes());
        m.extend_from_slice(&0u16.to_be_bytes());
        self.s.write_all(&m).unwrap();
        let mut size = None;
        loop {
            let mut head = [0u8; 20];
            self.s.read_exact(&mut head).unwrap();
            assert_eq!(head[..8], OPTION_REPLY_MAGIC.to_be_bytes());
            let kind = u32::from_be_bytes(head[12..16].try_into().unwrap());
            let len = u32::from_be_bytes(head[16..20].try_into().unwrap());
            let mut data = vec![0; len as usize];
            self.s.read_exact(&mut data).unwrap();
            match kind {
                REP_ACK => return Ok(size.unwrap()),
                REP_INFO if data[..2] == INFO_EXPORT.to_be_bytes() => {
                    size = Some(u64::from_be_bytes(data[2..10].try_into().unwrap()))
                }
                REP_INFO => {}
                err => return Err(err),
            }
        }
    }

    fn request(&mut self, kind: u16, offset: u64, data: &[u8], reply_len: usize) -> (u32, Vec<u8>) {
        self.cookie += 1;
        let req = Request {
            flags: 0,
            kind,
            cookie: self.cookie,
            offset,
            length: if kind == CMD_READ {
                reply_len as u32
            } else {
                data.len() as u32
            },
        };
        self.s.write_all(&req.encode()).unwrap();
        self.s.write_all(data).unwrap();
        assert_eq!(self.u32(), SIMPLE_REPLY_MAGIC);
        let error = self.u32();
        let mut cookie = [0u8; 8];
        self.s.read_exact(&mut cookie).unwrap();
        assert_eq!(u64::from_be_bytes(cookie), self.cookie);
        let mut out = Vec::new();
        if error == 0 {
            out.resize(reply_len, 0);
            self.s.read_exact(&mut out).unwrap();
        }
        (error, out)
    }

    /// A read that reports a broken connection instead of panicking.
    fn try_read(&mut self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.cookie += 1;
        let req = Request {
            flags: 0,
            kind: CMD_READ,
            cookie: self.cookie,
            offset,
            length: len as u32,
        };
        self.s.write_all(&req.encode())?;
        let mut head = [0u8; 16];
        self.s.read_exact(&mut head)?;
        assert_eq!(head[..4], SIMPLE_REPLY_MAGIC.to_be_bytes());
        assert_eq!(head[4..8], [0; 4]);
        let mut out = vec![0; len];
        self.s.read_exact(&mut out)?;
        Ok(out)
    }

    fn read(&mut self, offset: u64, len: usize) -> Vec<u8> {
        let (err, data) = self.request(CMD_READ, offset, &[], len);
        assert_eq!(err, 0);
        data
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        assert_eq!(self.request(CMD_WRITE, offset, data, 0).0, 0);
    }

    /// Waits (up to `limit`) for the server to close the connection.
    fn closed_within(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        let mut b = [0u8; 64];
        while start.elapsed() < limit {
            match self.s.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
        false
    }
}

fn mem(size: usize) -> Arc<Mutex<MemExport>> {
    Arc::new(Mutex::new(MemExport::new(size)))
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    cond()
}

#[test]
fn refuses_remote_addresses_unless_allowed() {
    for addr in ["0.0.0.0:0", "10.1.2.3:10809", "[::]:0"] {
        let addr: SocketAddr = addr.parse().unwrap();
        let err = NbdServer::builder()
            .export("a", mem(512))
            .tcp(addr)
            .start()
            .unwrap_err();
        assert!(matches!(err, NbdError::RemoteNotAllowed { .. }), "{err}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
    // Loopback, including the IPv4-mapped form, is fine.
    let s = NbdServer::builder()
        .export("a", mem(512))
        .tcp("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap();
    s.shutdown();
    let s = NbdServer::builder()
        .export("a", mem(512))
        .tcp("0.0.0.0:0".parse().unwrap())
        .allow_remote(true)
        .start()
        .unwrap();
    let port = s.tcp_addrs()[0].port();
    let mut c = Client::tcp(SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(c.go("a"), Ok(512));
    drop(c);
    s.shutdown();
}

#[test]
fn setup_errors_are_clear() {
    let err = NbdServer::builder()
        .export("a", mem(512))
        .unix_socket("/nonexistent-reprise-dir/nbd.sock")
        .start()
        .unwrap_err();
    assert!(matches!(err, NbdError::BindUnix { .. }));
    assert!(
        err.to_string()
            .contains("/nonexistent-reprise-dir/nbd.sock"),
        "{err}"
    );

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = NbdServer::builder()
        .export("a", mem(512))
        .tcp(addr)
        .start()
        .unwrap_err();
    assert!(matches!(err, NbdError::BindTcp { .. }));
    assert!(err.to_string().contains(&addr.to_string()), "{err}");

    let err = NbdServer::builder()
        .export("a", mem(512))
        .start()
        .unwrap_err();
    assert!(matches!(err, NbdError::NoListeners));

    let tcp = "127.0.0.1:0".parse().unwrap();
    let err = NbdServer::builder()
        .export("a", mem(512))
        .export("a", mem(512))
        .tcp(tcp)
        .start()
        .unwrap_err();
    assert!(matches!(err, NbdError::DuplicateExport(n) if n == "a"));
    let err = NbdServer::builder()
        .export("a", mem(512))
        .default_export("b")
        .tcp(tcp)
        .start()
        .unwrap_err();
    assert!(matches!(err, NbdError::UnknownDefaultExport(_)));
    let err = NbdServer::builder()
        .export("a\0b", mem(512))
        .tcp(tcp)
        .start()
        .unwrap_err();
    assert!(matches!(err, NbdError::InvalidExportName { .. }));
}

#[test]
fn socket_files_are_managed() {
    let dir = TempDir::new("files");
    let path = dir.path("nbd.sock");

    // Created on start, removed on shutdown and on drop.
    let s = NbdServer::builder()
        .export("a", mem(512))
        .unix_socket(&path)
        .start()
        .unwrap();
    assert!(path.exists());
    assert_eq!(s.unix_sockets(), std::slice::from_ref(&path));
    s.shutdown();
    assert!(!path.exists());
    {
        let _s = NbdServer::builder()
            .export("a", mem(512))
            .unix_socket(&path)
            .start()
            .unwrap();
        assert!(path.exists());
    }
    assert!(!path.exists());

    // A stale socket (nobody listening) is replaced.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let s = NbdServer::builder()
        .export("a", mem(512))
        .unix_socket(&path)
        .start()
        .unwrap();
    // A live one is not.
    let err = NbdServer::builder()
        .export("a", mem(512))
        .unix_socket(&path)
        .start()
        .unwrap_err();
    assert!(err.to_string().contains("listening"), "{err}");
    let mut c = Client::unix(&path);
    assert_eq!(c.go("a"), Ok(512));
    drop(c);
    s.shutdown();

    // Nor is a regular file, which stays untouched.
    std::fs::write(&path, b"keep me").unwrap();
    let err = NbdServer::builder()
        .export("a", mem(512))
        .unix_socket(&path)
        .start()
        .unwrap_err();
    assert!(matches!(err, NbdError::BindUnix { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");

    // If one listener fails, the sockets bound before it are removed again.
    let other = dir.path("other.sock");
    assert!(NbdServer::builder()
        .export("a", mem(512))
        .unix_socket(&other)
        .unix_socket(&path)
        .start()
        .is_err());
    assert!(!other.exists());
}

#[test]
fn shutdown_ends_idle_clients_promptly() {
    let dir = TempDir::new("shutdown");
    let path = dir.path("nbd.sock");
    let s = NbdServer::builder()
        .export("a", mem(1 << 20))
        .unix_socket(&path)
        .tcp("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap();
    let addr = s.tcp_addrs()[0];
    // Idle in transmission, over both transports, and idle in the handshake.
    let mut unix_idle = Client::unix(&path);
    assert_eq!(unix_idle.go("a"), Ok(1 << 20));
    let mut tcp_idle = Client::tcp(addr);
    assert_eq!(tcp_idle.go("a"), Ok(1 << 20));
    let mut greeting_only = Client::tcp(addr);
    assert!(wait_until(Duration::from_secs(5), || s.connection_count() == 3));

    let start = Instant::now();
    s.shutdown();
    // Connections in the middle of nothing end without waiting for the grace period.
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    assert!(unix_idle.closed_within(Duration::from_secs(2)));
    assert!(tcp_idle.closed_within(Duration::from_secs(2)));
    assert!(greeting_only.closed_within(Duration::from_secs(2)));
    assert!(!path.exists());
}

#[test]
fn shutdown_during_traffic() {
    let s = NbdServer::builder()
        .export("a", mem(8 << 20))
        .tcp("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap();
    let addr = s.tcp_addrs()[0];
    let busy: Vec<_> = (0..4)
        .map(|_| {
            let mut c = Client::tcp(addr);
            assert_eq!(c.go("a"), Ok(8 << 20));
            thread::spawn(move || {
                let mut served = 0u64;
                while c.try_read(0, 1 << 20).is_ok() {
                    served += 1;
                }
                served
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    s.shutdown();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    for t in busy {
        assert!(t.join().unwrap() > 0);
    }
}

#[test]
fn many_clients_at_once() {
    const CLIENTS: usize = 16;
    const REGION: usize = 64 * 1024;
    let dir = TempDir::new("many");
    let path = dir.path("nbd.sock");
    let disk = mem(CLIENTS * REGION);
    let s = Arc::new(
        NbdServer::builder()
            .export("disk", disk.clone())
            .unix_socket(&path)
            .tcp("127.0.0.1:0".parse().unwrap())
            .start()
            .unwrap(),
    );
    let addr = s.tcp_addrs()[0];
    let all_connected = Arc::new(Barrier::new(CLIENTS + 1));
    let checked = Arc::new(Barrier::new(CLIENTS + 1));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let path = path.clone();
            let (all_connected, checked) = (all_connected.clone(), checked.clone());
            thread::spawn(move || {
                let mut c = if i % 2 == 0 {
                    Client::unix(&path)
                } else {
                    Client::tcp(addr)
                };
                assert_eq!(c.go("disk"), Ok((CLIENTS * REGION) as u64));
                all_connected.wait();
                checked.wait();
                let data = vec![i as u8 + 1; REGION];
                let offset = (i * REGION) as u64;
                for _ in 0..5 {
                    c.write(offset, &data);
                    assert_eq!(c.read(offset, REGION), data);
                }
            })
        })
        .collect();
    all_connected.wait();
    assert_eq!(s.connection_count(), CLIENTS);
    checked.wait();
    for t in threads {
        t.join().unwrap();
    }
    let data = disk.lock().unwrap().data().to_vec();
    for (i, region) in data.chunks(REGION).enumerate() {
        assert!(region.iter().all(|&b| b == i as u8 + 1), "region {i}");
    }
    assert!(wait_until(Duration::from_secs(5), || s.connection_count() == 0));
    Arc::into_inner(s).unwrap().shutdown();
}

#[test]
fn connection_limit() {
    let s = NbdServer::builder()
        .export("a", mem(4096))
        .tcp("127.0.0.1:0".parse().unwrap())
        .max_connections(2)
        .start()
        .unwrap();
    let addr = s.tcp_addrs()[0];
    let mut a = Client::tcp(addr);
    let _b = Client::tcp(addr);
    assert!(wait_until(Duration::from_secs(5), || s.connection_count() == 2));
    // The third is hung up on before the greeting.
    let mut third = TcpStream::connect(addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 18];
    assert!(matches!(third.read(&mut buf), Ok(0) | Err(_)));
    // Once one leaves, there is room again.
    assert_eq!(a.go("a"), Ok(4096));
    drop(a);
    assert!(wait_until(Duration::from_secs(5), || s.connection_count() == 1));
    let mut c = Client::tcp(addr);
    assert_eq!(c.go("a"), Ok(4096));
    s.shutdown();
}

#[test]
fn slow_handshake_times_out() {
    let s = NbdServer::builder()
        .export("a", mem(4096))
        .tcp("127.0.0.1:0".parse().unwrap())
        .handshake_timeout(Some(Duration::from_millis(200)))
        .start()
        .unwrap();
    let mut c = Client::tcp(s.tcp_addrs()[0]);
    let start = Instant::now();
    assert!(c.closed_within(Duration::from_secs(5)));
    assert!(start.elapsed() >= Duration::from_millis(150));
    // Trickling bytes does not stretch the handshake past its deadline.
    let mut c = Client::tcp(s.tcp_addrs()[0]);
    let start = Instant::now();
    let mut option = Vec::new();
    option.extend_from_slice(&IHAVEOPT.to_be_bytes());
    option.extend_from_slice(&OPT_LIST.to_be_bytes());
    option.extend_from_slice(&0u32.to_be_bytes());
    let mut cut_off = false;
    for byte in option.iter().cycle().take(200) {
        if c.s.write_all(&[*byte]).is_err() {
            cut_off = true;
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(cut_off || c.closed_within(Duration::from_secs(1)));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // Past the handshake the timeout no longer applies.
    let mut c = Client::tcp(s.tcp_addrs()[0]);
    assert_eq!(c.go("a"), Ok(4096));
    thread::sleep(Duration::from_millis(400));
    assert_eq!(c.read(0, 512), vec![0; 512]);
    s.shutdown();
}

#[test]
fn exports_change_while_running() {
    let s = NbdServer::builder()
        .export("a", mem(4096))
        .tcp("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap();
    let addr = s.tcp_addrs()[0];
    let mut old = Client::tcp(addr);
    assert_eq!(old.go("a"), Ok(4096));

    s.add_export("b", mem(8192)).unwrap();
    assert_eq!(s.export_names(), ["a", "b"]);
    assert!(s.remove_export("a").is_some());
    assert_eq!(s.export_names(), ["b"]);

    let mut c = Client::tcp(addr);
    assert_eq!(c.go("a"), Err(REP_ERR_UNKNOWN));
    assert_eq!(c.go("b"), Ok(8192));
    // The client that had "a" keeps it.
    old.write(0, &[3; 512]);
    assert_eq!(old.read(0, 512), vec![3; 512]);
    assert!(s.add_export("bad\0name", mem(512)).is_err());
    s.shutdown();
}
