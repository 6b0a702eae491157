//! Writes synthetic clustered embeddings (`snowscope::rng::Clustered`: a few thousand
//! Gaussian clusters of varying spread around a shared direction, unit rows, 0.5 % isolated
//! rows) as a `.npy` with its `.paths.txt`, for measuring the neighbour search at scale
//! (dev-time; README, "Large folders"):
//!
//! ```sh
//! cargo run --release --example clustered_npy -- 300000 /tmp/x300k.npy
//! /usr/bin/time -v target/release/snowscope rank --features /tmp/x300k.npy \
//!     --paths /tmp/x300k.paths.txt --verbose
//! ```
//!
//! Optional arguments after the output: dimension (1280), clusters (3000), seed (18). The
//! rows are made a block at a time and streamed to the file, so a million rows need a few
//! MB, not 5 GB. Byte-for-byte reproducible.

use rayon::prelude::*;
use snowscope::rng::Clustered;
use std::io::Write;

const BLOCK: usize = 8192;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: clustered_npy ROWS OUT.npy [DIM] [CLUSTERS] [SEED]";
    let (Some(rows), Some(out)) = (args.first(), args.get(1)) else {
        anyhow::bail!(usage);
    };
    let number = |i: usize, default: u64| -> anyhow::Result<u64> {
        args.get(i)
            .map_or(Ok(default), |v| v.parse())
            .map_err(|e| anyhow::anyhow!("argument {}: {e}; {usage}", i + 1))
    };
    let rows = rows.parse::<usize>()?;
    let (dim, clusters, seed) = (
        number(2, 1280)? as usize,
        number(3, 3000)? as usize,
        number(4, 18)?,
    );
    let embeddings = Clustered::new(dim, clusters, seed);
    let out = std::path::Path::new(out);
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    file.write_all(&snowscope::npy::header(rows, dim))?;
    let mut names = String::new();
    for start in (0..rows).step_by(BLOCK) {
        let end = (start + BLOCK).min(rows);
        let mut block = vec![0.0f32; (end - start) * dim];
        let labels: Vec<Option<usize>> = block
            .par_chunks_mut(dim)
            .enumerate()
            .map(|(o, row)| embeddings.row((start + o) as u64, row))
            .collect();
        for (o, label) in labels.iter().enumerate() {
            let i = start + o;
            names += &match label {
                Some(c) => format!("c{c:04}/img{i:07}.jpg\n"),
                None => format!("isolated/img{i:07}.jpg\n"),
            };
        }
        let bytes: Vec<u8> = block.iter().flat_map(|v| v.to_le_bytes()).collect();
        file.write_all(&bytes)?;
    }
    file.flush()?;
    let paths = out.with_extension("paths.txt");
    std::fs::write(&paths, names)?;
    eprintln!(
        "wrote {rows} x {dim} ({clusters} clusters, seed {seed}) to {} and {}",
        out.display(),
        paths.display()
    );
    Ok(())
}
