//! Applies a layer tar (plain, gzip or zstd) into a directory, or tars a directory, and prints
//! timings; used by `bench/oci-apply.sh`.
//!
//! ```text
//! oci-apply apply LAYER DIR      # DIR must exist (empty)
//! oci-apply diff UPPER OUT.tar   # overlay upper dir -> layer tar
//! oci-apply tar DIR OUT.tar      # whole dir -> tar
//! ```

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Instant;

use berth_oci::layer::{apply_layer, diff_upper, write_dir_tar, ApplyOptions, DiffOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        return Err("usage: oci-apply apply LAYER DIR | diff UPPER OUT | tar DIR OUT".into());
    }
    let start = Instant::now();
    match args[1].as_str() {
        "apply" => {
            let f = File::open(&args[2])?;
            let r = apply_layer(f, Path::new(&args[3]), &ApplyOptions::default())?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "applied {} entries, {:?}, {} bytes read, {} bytes of tar in {:.3}s ({:.1} MB/s of tar, {:.1} MB/s read)",
                r.entries,
                r.compression,
                r.compressed_size,
                r.size,
                secs,
                r.size as f64 / secs / 1e6,
                r.compressed_size as f64 / secs / 1e6
            );
            println!("diff_id {}", r.diff_id);
            println!("blob    {}", r.compressed_digest);
        }
        cmd @ ("diff" | "tar") => {
            let out = BufWriter::with_capacity(1 << 20, File::create(&args[3])?);
            let opts = DiffOptions::default();
            let s = if cmd == "diff" {
                diff_upper(Path::new(&args[2]), out, &opts)?
            } else {
                write_dir_tar(Path::new(&args[2]), out, &opts)?
            };
            let secs = start.elapsed().as_secs_f64();
            println!(
                "wrote {} entries, {} bytes in {:.3}s ({:.1} MB/s)",
                s.entries,
                s.size,
                secs,
                s.size as f64 / secs / 1e6
            );
            println!("diff_id {}", s.diff_id);
        }
        other => return Err(format!("unknown command {other:?}").into()),
    }
    Ok(())
}
