//! NumPy `.npy` files (format 1.0) for 2-D float matrices, so features move to and from
//! numpy, FAISS and other tools.

use std::io::{Read, Seek};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("cannot access {path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error(
        "{path} is not a supported .npy matrix: {why} (need a 2-D little-endian float32/float64 C-order array)"
    )]
    Format { path: String, why: FormatError },
}

/// What is wrong with a file that is not a matrix snowscope reads.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("missing the NUMPY magic")]
    NoMagic,
    #[error("unsupported version {0}")]
    Version(u8),
    #[error("truncated header")]
    TruncatedHeader,
    #[error("no descr")]
    NoDescr,
    #[error("dtype {0}")]
    Dtype(String),
    #[error("Fortran order")]
    FortranOrder,
    #[error("no shape")]
    NoShape,
    #[error("bad shape")]
    BadShape,
    #[error("bad shape value '{0}'")]
    BadShapeValue(String),
    #[error("{0}-D array")]
    Dimensions(usize),
    #[error("{bytes} data bytes for shape ({rows}, {cols})")]
    DataSize {
        bytes: usize,
        rows: usize,
        cols: usize,
    },
}

/// The header of a row-major `rows` x `cols` f32 matrix (the data follows it), for
/// writers that stream their rows.
pub fn header(rows: usize, cols: usize) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + header length (2) + header + newline, padded to 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes
}

/// Writes a row-major `rows` x `cols` f32 matrix.
pub fn write(path: &Path, data: &[f32], rows: usize, cols: usize) -> Result<(), NpyError> {
    assert_eq!(data.len(), rows * cols, "matrix size");
    let mut bytes = header(rows, cols);
    bytes.reserve(data.len() * 4);
    bytes.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    crate::store::write_atomic(path, &bytes).map_err(|cause| NpyError::Io {
        path: path.display().to_string(),
        cause,
    })
}

/// Reads a 2-D float32 or float64 matrix as f32: (data, rows, cols). The values are read
/// straight into the matrix, a block at a time: the file's bytes are never held whole
/// beside it (at a million 1280-d rows each copy is 5 GB).
pub fn read(path: &Path) -> Result<(Vec<f32>, usize, usize), NpyError> {
    let name = path.display().to_string();
    let io = |cause| NpyError::Io {
        path: name.clone(),
        cause,
    };
    let format = |why| NpyError::Format {
        path: name.clone(),
        why,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    // Version 2 and 3 headers may be longer than 64 KB in principle; 1 MB is plenty for
    // any 2-D shape.
    let mut head = Vec::new();
    (&mut file)
        .take(1 << 20)
        .read_to_end(&mut head)
        .map_err(io)?;
    let (start, rows, cols, width) = parse_header(&head).map_err(format)?;
    let values = rows.checked_mul(cols);
    let wanted = values.and_then(|v| v.checked_mul(width));
    let body = size.saturating_sub(start as u64);
    let (Some(values), Some(true)) = (values, wanted.map(|w| w as u64 == body)) else {
        return Err(format(FormatError::DataSize {
            bytes: body as usize,
            rows,
            cols,
        }));
    };
    let mut data = Vec::with_capacity(values);
    let mut block = vec![0u8; 1 << 20];
    file.seek(std::io::SeekFrom::Start(start as u64))
        .map_err(io)?;
    let mut left = body as usize;
    while left > 0 {
        let take = left.min(block.len());
        file.read_exact(&mut block[..take]).map_err(io)?;
        decode(&block[..take], width, &mut data);
        left -= take;
    }
    Ok((data, rows, cols))
}

/// Appends the little-endian values of `bytes` (`width` 4 or 8) as f32.
fn decode(bytes: &[u8], width: usize, out: &mut Vec<f32>) {
    if width == 4 {
        out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    } else {
        out.extend(
            bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32),
        );
    }
}

/// A whole file's matrix.
#[cfg(test)]
fn parse(bytes: &[u8]) -> Result<(Vec<f32>, usize, usize), FormatError> {
    let (start, rows, cols, width) = parse_header(bytes)?;
    let body = &bytes[start..];
    if body.len() != rows * cols * width {
        return Err(FormatError::DataSize {
            bytes: body.len(),
            rows,
            cols,
        });
    }
    let mut data = Vec::new();
    decode(body, width, &mut data);
    Ok((data, rows, cols))
}

/// (where the data starts, rows, cols, bytes per value) from the start of a file.
fn parse_header(bytes: &[u8]) -> Result<(usize, usize, usize, usize), FormatError> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(FormatError::NoMagic);
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(FormatError::Version(v)),
    };
    let header = bytes
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or(FormatError::TruncatedHeader)?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        Some(header[at..].trim_start_matches([':', ' ']))
    };
    let descr = field("descr").ok_or(FormatError::NoDescr)?;
    let width = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        let dtype = descr.split(',').next().unwrap_or("?");
        return Err(FormatError::Dtype(dtype.to_string()));
    };
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(FormatError::FortranOrder);
    }
    let shape = field("shape").ok_or(FormatError::NoShape)?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or(FormatError::BadShape)?;
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| FormatError::BadShapeValue(s.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let [rows, cols] = dims[..] else {
        return Err(FormatError::Dimensions(dims.len()));
    };
    Ok((start + len, rows, cols, width))
}

#[cfg(test)]
impl FormatError {
    /// Whether the message contains `words`.
    fn contains(&self, words: &str) -> bool {
        self.to_string().contains(words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npy");
        write(&path, &[1.0, 2.0, 3.0, 4.5, 5.0, 6.0], 2, 3).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((bytes.len() - 24) % 64, 0, "header is 64-byte aligned");
        assert_eq!(
            read(&path).unwrap(),
            (vec![1.0, 2.0, 3.0, 4.5, 5.0, 6.0], 2, 3)
        );
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(parse(b"not numpy at all").is_err());
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        let h = "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 1), }\n";
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(&[0; 8]);
        assert!(parse(&b).unwrap_err().contains("dtype"));
    }

    #[test]
    fn a_truncated_or_padded_file_is_refused_before_reading_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npy");
        write(&path, &[1.0; 6], 2, 3).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for wrong in [
            &bytes[..bytes.len() - 4],
            &[&bytes[..], &[0u8; 4]].concat()[..],
        ] {
            std::fs::write(&path, wrong).unwrap();
            let err = read(&path).unwrap_err().to_string();
            assert!(err.contains("data bytes for shape (2, 3)"), "{err}");
        }
        // A shape whose size overflows is refused, not allocated.
        let mut huge = header(usize::MAX / 2, 3);
        huge.extend_from_slice(&[0; 8]);
        std::fs::write(&path, huge).unwrap();
        assert!(read(&path).is_err());
    }
}
