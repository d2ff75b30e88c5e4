//! Gzip on every core: the input is cut into chunks, each compressed as an independent gzip
//! member on its own thread, and the members are emitted in order. Concatenated members are
//! one valid gzip stream (RFC 1952), which every layer reader accepts.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use flate2::write::GzEncoder;
use flate2::Compression;

/// Bytes per gzip member.
pub const CHUNK: usize = 4 << 20;

/// A reader yielding the gzip of its source, compressed in parallel.
pub struct ParallelGzip {
    rx: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl std::fmt::Debug for ParallelGzip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelGzip").finish_non_exhaustive()
    }
}

fn read_full(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn compress(chunk: Vec<u8>, level: u32) -> io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = GzEncoder::new(Vec::with_capacity(chunk.len() / 2), Compression::new(level));
    enc.write_all(&chunk)?;
    enc.finish()
}

impl ParallelGzip {
    /// Compresses `src` at `level` (0-9) on `workers` threads.
    pub fn new<R: Read + Send + 'static>(mut src: R, workers: usize, level: u32) -> ParallelGzip {
        let workers = workers.max(1);
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(workers + 1);
        std::thread::spawn(move || {
            let mut inflight: VecDeque<JoinHandle<io::Result<Vec<u8>>>> = VecDeque::new();
            let join = |h: JoinHandle<io::Result<Vec<u8>>>| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("gzip worker panicked")))
            };
            let mut empty_input = true;
            loop {
                let mut buf = vec![0u8; CHUNK];
                let n = match read_full(&mut src, &mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                if n == 0 {
                    break;
                }
                empty_input = false;
                buf.truncate(n);
                inflight.push_back(std::thread::spawn(move || compress(buf, level)));
                if inflight.len() > workers {
                    if let Some(h) = inflight.pop_front() {
                        if tx.send(join(h)).is_err() {
                            return;
                        }
                    }
                }
            }
            if empty_input {
                // The gzip of nothing is still one member.
                let _ = tx.send(compress(Vec::new(), level));
            }
            while let Some(h) = inflight.pop_front() {
                if tx.send(join(h)).is_err() {
                    return;
                }
            }
        });
        ParallelGzip {
            rx,
            current: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl Read for ParallelGzip {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_decode_to_the_input() {
        let input: Vec<u8> = (0..(CHUNK * 2 + 12345)).map(|i| (i % 251) as u8).collect();
        let mut gz = Vec::new();
        ParallelGzip::new(io::Cursor::new(input.clone()), 2, 1)
            .read_to_end(&mut gz)
            .unwrap();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, input);
        let mut gz = Vec::new();
        ParallelGzip::new(io::empty(), 2, 1)
            .read_to_end(&mut gz)
            .unwrap();
        assert!(!gz.is_empty());
    }
}

#[cfg(test)]
mod throughput {
    use super::*;

    /// `GZIP_BENCH_FILE=... cargo test --release -p berth-registry gzip_throughput -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn gzip_throughput() {
        let Some(path) = std::env::var_os("GZIP_BENCH_FILE") else {
            return;
        };
        let data = std::fs::read(path).unwrap();
        for (workers, level) in [(1, 1), (2, 1), (2, 6)] {
            let t = std::time::Instant::now();
            let mut out = Vec::new();
            ParallelGzip::new(io::Cursor::new(data.clone()), workers, level)
                .read_to_end(&mut out)
                .unwrap();
            let s = t.elapsed().as_secs_f64();
            println!(
                "workers {workers} level {level}: {:.0} MB/s, ratio {:.2}",
                data.len() as f64 / 1e6 / s,
                out.len() as f64 / data.len() as f64
            );
        }
    }
}
