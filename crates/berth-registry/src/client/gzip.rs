//! Gzip on every core, pigz-style: the input is cut into chunks of [`CHUNK`] bytes, each
//! deflated on its own thread with the previous chunk's last 32 KiB as its dictionary and
//! ended with a sync flush (byte-aligned, not final), and the pieces are emitted in order
//! between one gzip header and one trailer (an empty final block, the CRC-32 of the whole
//! input combined from the chunks' CRCs, and its length). The result is a single gzip
//! member (RFC 1952), compressing about as well as a one-thread deflate of the same level.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Bytes per chunk.
pub const CHUNK: usize = 1 << 20;

/// The deflate window: the dictionary each chunk gets from the one before.
const WINDOW: usize = 32 * 1024;

/// The gzip header: deflate, no flags, no mtime, OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// An empty final block with fixed codes (BFINAL=1, BTYPE=01, end-of-block).
const LAST_BLOCK: [u8; 2] = [0x03, 0x00];

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

/// One chunk as raw deflate, primed with `dict`, ended by a sync flush; with its CRC.
fn deflate_chunk(chunk: &[u8], dict: &[u8], level: u32) -> io::Result<(Vec<u8>, Crc)> {
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(chunk.len() / 2 + 4096);
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&chunk[consumed..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // The flush is complete when all input is in and room for output was left over.
        if c.total_in() as usize == chunk.len() && out.len() < out.capacity() {
            break;
        }
        if status == Status::StreamEnd {
            break;
        }
    }
    let mut crc = Crc::new();
    crc.update(chunk);
    Ok((out, crc))
}

type Piece = JoinHandle<io::Result<(Vec<u8>, Crc)>>;

impl ParallelGzip {
    /// Compresses `src` at `level` (0-9) on `workers` threads.
    pub fn new<R: Read + Send + 'static>(mut src: R, workers: usize, level: u32) -> ParallelGzip {
        let workers = workers.max(1);
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(workers + 1);
        std::thread::spawn(move || {
            let mut inflight: VecDeque<Piece> = VecDeque::new();
            let mut total = Crc::new();
            // Joins the oldest piece and sends it on; false when the reader is gone.
            let emit = |h: Piece, total: &mut Crc| -> bool {
                let piece = h
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("gzip worker panicked")));
                match piece {
                    Ok((bytes, crc)) => {
                        total.combine(&crc);
                        tx.send(Ok(bytes)).is_ok()
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        false
                    }
                }
            };
            let mut dict: Vec<u8> = Vec::new();
            let mut first = true;
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
                buf.truncate(n);
                let next_dict = buf[buf.len().saturating_sub(WINDOW)..].to_vec();
                let d = std::mem::replace(&mut dict, next_dict);
                inflight.push_back(std::thread::spawn(move || deflate_chunk(&buf, &d, level)));
                if first {
                    first = false;
                    if tx.send(Ok(HEADER.to_vec())).is_err() {
                        return;
                    }
                }
                if inflight.len() > workers {
                    if let Some(h) = inflight.pop_front() {
                        if !emit(h, &mut total) {
                            return;
                        }
                    }
                }
            }
            if first && tx.send(Ok(HEADER.to_vec())).is_err() {
                return;
            }
            while let Some(h) = inflight.pop_front() {
                if !emit(h, &mut total) {
                    return;
                }
            }
            let mut trailer = LAST_BLOCK.to_vec();
            trailer.extend_from_slice(&total.sum().to_le_bytes());
            trailer.extend_from_slice(&total.amount().to_le_bytes());
            let _ = tx.send(Ok(trailer));
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

    fn gzip(input: &[u8], workers: usize) -> Vec<u8> {
        let mut gz = Vec::new();
        ParallelGzip::new(io::Cursor::new(input.to_vec()), workers, 1)
            .read_to_end(&mut gz)
            .unwrap();
        gz
    }

    #[test]
    fn one_member_that_decodes_to_the_input() {
        // Text-like data repeating across chunk borders, so the dictionaries matter.
        let text: Vec<u8> = (0..(CHUNK * 3 + 12345))
            .map(|i| b"the quick brown fox jumps over the lazy dog "[(i * 7 / 5) % 44])
            .collect();
        for input in [
            Vec::new(),
            vec![42u8],
            text[..CHUNK - 1].to_vec(),
            text.clone(),
        ] {
            for workers in [1, 2] {
                let gz = gzip(&input, workers);
                // A single-member decoder reads all of it (and checks CRC and length).
                let mut back = Vec::new();
                let mut d = flate2::read::GzDecoder::new(&gz[..]);
                d.read_to_end(&mut back).unwrap();
                assert_eq!(back, input);
            }
        }
        // Chunks use the previous chunk as dictionary: about as small as one deflate.
        let mut one = flate2::write::GzEncoder::new(Vec::new(), Compression::new(1));
        std::io::Write::write_all(&mut one, &text).unwrap();
        let one = one.finish().unwrap();
        let ours = gzip(&text, 2);
        assert!(
            ours.len() < one.len() * 11 / 10,
            "{} vs {}",
            ours.len(),
            one.len()
        );
    }
}
