//! Fault injection for tests of registry clients (this crate's and the engine's): a TCP
//! proxy on loopback that refuses the first connections with a 503 and cuts an answer
//! half-way. Not for production use.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Starts a proxy on `127.0.0.1:0` in front of `target` that answers its first
/// `fail_first` connections with a 503, and cuts the first server answer longer than `cut`
/// bytes after `cut` bytes (both directions shut). Returns the proxy's address; its threads
/// live as long as the test process.
pub fn flaky_proxy(
    target: SocketAddr,
    fail_first: usize,
    cut: Option<usize>,
) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let seen = Arc::new(AtomicUsize::new(0));
    let cut_done = Arc::new(AtomicBool::new(cut.is_none()));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { return };
            let n = seen.fetch_add(1, Ordering::SeqCst);
            if n < fail_first {
                let mut buf = [0u8; 4096];
                let _ = client.read(&mut buf);
                let _ = client.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
            let Ok(server) = TcpStream::connect(target) else {
                continue;
            };
            let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || {
                let _ = io::copy(&mut c_read, &mut s_write);
                let _ = s_write.shutdown(Shutdown::Write);
            });
            let cut_done = cut_done.clone();
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                let mut sent = 0usize;
                loop {
                    let k = match s_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => k,
                    };
                    if let Some(limit) = cut {
                        if sent + k > limit && !cut_done.swap(true, Ordering::SeqCst) {
                            let _ = c_write.write_all(&buf[..limit - sent]);
                            let _ = c_write.shutdown(Shutdown::Both);
                            let _ = s_read.shutdown(Shutdown::Both);
                            return;
                        }
                    }
                    if c_write.write_all(&buf[..k]).is_err() {
                        break;
                    }
                    sent += k;
                }
                let _ = c_write.shutdown(Shutdown::Write);
            });
        }
    });
    Ok(addr)
}
