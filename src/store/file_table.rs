//! The feature cache's manifest in memory and on disk: the content hash of each stored row,
//! and the folder's files (relative path, size, mtime, content hash, row), column by
//! column and sorted by path. A million files are a few flat arrays, not a million strings
//! in hash maps: a warm start reads them with a copy and matches the scanned folder (sorted
//! the same way) in one merge, where parsing the JSON manifest of format 2 and hashing a
//! million paths took seconds (README, "Large folders").
//!
//! On disk the manifest is one byte string, each column after the other in a fixed order,
//! its length fixed by the three counts the header gives (rows, files, bytes of paths), so
//! reading it is slicing it; `decode` checks what the checksum cannot: that the paths are
//! UTF-8, strictly sorted, and that each file's row holds the file's content.

/// A content hash as the store keeps it: the 32 bytes of BLAKE3, not 64 hex digits.
pub type Digest = [u8; 32];

/// The row of a file whose content has no row (it failed to decode, or is not extracted yet).
pub const NO_ROW: u32 = u32::MAX;

/// The value of each hex digit, 16 for any other byte.
const NIBBLES: [u8; 256] = {
    let mut table = [16u8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// The 32 bytes of a content hash given in hex; `None` for anything else. (A warm start
/// reads a million of them: `blake3::Hash::from_hex` took 12 % of it.)
pub fn digest_of(hex: &str) -> Option<Digest> {
    let hex: &[u8; 64] = hex.as_bytes().try_into().ok()?;
    let mut digest = [0u8; 32];
    let mut invalid = 0;
    for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
        let (high, low) = (NIBBLES[pair[0] as usize], NIBBLES[pair[1] as usize]);
        invalid |= high | low;
        *byte = high << 4 | low;
    }
    (invalid < 16).then_some(digest)
}

/// The hex digits of a content hash (what `scan::content_hash` gives).
pub fn hex_of(digest: &Digest) -> String {
    blake3::Hash::from_bytes(*digest).to_hex().to_string()
}

/// The folder's files, sorted by relative path (byte order, as `scan` sorts them).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FileTable {
    names: String,
    /// Where each path ends in `names`.
    ends: Vec<usize>,
    sizes: Vec<u64>,
    mtimes: Vec<u128>,
    hashes: Vec<Digest>,
    /// The store row holding each file's content, or `NO_ROW` (not known when the table
    /// was made; the store's hash map then says).
    rows: Vec<u32>,
}

/// One file of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileEntry<'a> {
    pub rel: &'a str,
    pub size: u64,
    pub mtime_ns: u128,
    pub hash: &'a Digest,
    pub row: u32,
}

/// Bytes per file in the encoded columns: row, size, mtime, hash, end of path.
const FILE_BYTES: usize = 4 + 8 + 16 + 32 + 8;

/// What `decode` found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The byte string is not as long as the counts say.
    Size,
    /// A path is not UTF-8, or the paths are not strictly sorted.
    Paths,
    /// A file's row is outside the rows or holds another content.
    Rows,
}

impl FileTable {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.names[start..self.ends[i]]
    }

    pub fn get(&self, i: usize) -> FileEntry<'_> {
        FileEntry {
            rel: self.name(i),
            size: self.sizes[i],
            mtime_ns: self.mtimes[i],
            hash: &self.hashes[i],
            row: self.rows[i],
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = FileEntry<'_>> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Appends a file; the caller keeps the paths sorted and distinct.
    pub fn push(&mut self, rel: &str, size: u64, mtime_ns: u128, hash: Digest, row: u32) {
        self.names.push_str(rel);
        self.ends.push(self.names.len());
        self.sizes.push(size);
        self.mtimes.push(mtime_ns);
        self.hashes.push(hash);
        self.rows.push(row);
    }

    /// The index of the file `rel`, looked for at `*cursor` first and then by bisection;
    /// the cursor moves past it. Asked in sorted order, as a scan lists a folder, a whole
    /// folder is matched in one merge.
    pub fn find(&self, rel: &str, cursor: &mut usize) -> Option<usize> {
        let at = *cursor;
        let found = match (at < self.len()).then(|| self.name(at).cmp(rel)) {
            Some(std::cmp::Ordering::Equal) => Ok(at),
            // Where the merge would go next: one step ahead, else bisect.
            Some(std::cmp::Ordering::Less) if at + 1 < self.len() && self.name(at + 1) == rel => {
                Ok(at + 1)
            }
            _ => self.bisect(rel),
        };
        match found {
            Ok(i) => {
                *cursor = i + 1;
                Some(i)
            }
            Err(i) => {
                *cursor = i;
                None
            }
        }
    }

    fn bisect(&self, rel: &str) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.name(mid).cmp(rel) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// The file rows with each row renumbered by `renumber` (`NO_ROW` where it gives none).
    pub fn renumbered(&self, renumber: impl Fn(&Digest) -> Option<u32>) -> Self {
        let mut table = self.clone();
        for (row, hash) in table.rows.iter_mut().zip(&table.hashes) {
            *row = renumber(hash).unwrap_or(NO_ROW);
        }
        table
    }

    /// Bytes of all paths together (the third count of `encode`).
    pub fn names_len(&self) -> usize {
        self.names.len()
    }

    /// The manifest as one byte string: the rows' hashes, then the files' rows, sizes,
    /// mtimes, hashes, path ends and paths, each little-endian.
    pub fn encode(&self, row_hashes: &[Digest]) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(row_hashes.len() * 32 + self.len() * FILE_BYTES + self.names.len());
        row_hashes.iter().for_each(|h| out.extend_from_slice(h));
        self.rows.iter().for_each(|r| out.extend(r.to_le_bytes()));
        self.sizes.iter().for_each(|s| out.extend(s.to_le_bytes()));
        self.mtimes.iter().for_each(|t| out.extend(t.to_le_bytes()));
        self.hashes.iter().for_each(|h| out.extend_from_slice(h));
        self.ends
            .iter()
            .for_each(|&e| out.extend((e as u64).to_le_bytes()));
        out.extend_from_slice(self.names.as_bytes());
        out
    }

    /// The row hashes and the table `encode` wrote for `rows` rows, `files` files and
    /// `names_len` bytes of paths.
    pub fn decode(
        bytes: &[u8],
        rows: usize,
        files: usize,
        names_len: usize,
    ) -> Result<(Vec<Digest>, Self), Malformed> {
        let want = rows
            .checked_mul(32)
            .zip(files.checked_mul(FILE_BYTES))
            .and_then(|(a, b)| a.checked_add(b)?.checked_add(names_len));
        if want != Some(bytes.len()) {
            return Err(Malformed::Size);
        }
        let mut rest = bytes;
        let mut take = |n: usize| {
            let (head, tail) = rest.split_at(n);
            rest = tail;
            head
        };
        let digests = |b: &[u8]| -> Vec<Digest> {
            b.chunks_exact(32)
                .map(|c| c.try_into().expect("32 bytes"))
                .collect()
        };
        let row_hashes = digests(take(rows * 32));
        let file_rows: Vec<u32> = take(files * 4)
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let u64s = |b: &[u8]| -> Vec<u64> {
            b.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect()
        };
        let sizes = u64s(take(files * 8));
        let mtimes = take(files * 16)
            .chunks_exact(16)
            .map(|c| u128::from_le_bytes(c.try_into().expect("16 bytes")))
            .collect();
        let hashes = digests(take(files * 32));
        let ends: Vec<usize> = u64s(take(files * 8))
            .into_iter()
            .map(|e| usize::try_from(e).unwrap_or(usize::MAX))
            .collect();
        let names = std::str::from_utf8(take(names_len)).map_err(|_| Malformed::Paths)?;
        let mut start = 0;
        for &end in &ends {
            if end < start || end > names.len() || !names.is_char_boundary(end) {
                return Err(Malformed::Paths);
            }
            start = end;
        }
        if start != names.len() {
            return Err(Malformed::Paths);
        }
        let table = FileTable {
            names: names.to_string(),
            ends,
            sizes,
            mtimes,
            hashes,
            rows: file_rows,
        };
        // Sorted and distinct, so that `find` finds every file; each row holds its
        // file's content, so that a row read by a file's stamp is that file's.
        if (1..table.len()).any(|i| table.name(i - 1) >= table.name(i)) {
            return Err(Malformed::Paths);
        }
        let row_holds = |(row, hash): (&u32, &Digest)| {
            *row == NO_ROW || row_hashes.get(*row as usize) == Some(hash)
        };
        if !table.rows.iter().zip(&table.hashes).all(row_holds) {
            return Err(Malformed::Rows);
        }
        Ok((row_hashes, table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(names: &[&str]) -> FileTable {
        let mut t = FileTable::default();
        for (i, n) in names.iter().enumerate() {
            t.push(n, i as u64, 10 + i as u128, [i as u8; 32], i as u32);
        }
        t
    }

    #[test]
    fn find_merges_in_order_and_bisects_out_of_order() {
        let t = table(&["a", "b/c", "b/d", "é"]);
        let mut cursor = 0;
        let found: Vec<_> = ["a", "b/c", "b/cc", "b/d", "é", "z"]
            .iter()
            .map(|n| t.find(n, &mut cursor))
            .collect();
        assert_eq!(found, [Some(0), Some(1), None, Some(2), Some(3), None]);
        let mut cursor = 0;
        assert_eq!(t.find("b/d", &mut cursor), Some(2));
        assert_eq!(t.find("a", &mut cursor), Some(0), "back to the start");
        assert_eq!(t.get(3).rel, "é");
    }

    #[test]
    fn encode_decode_round_trip_and_checks() {
        let t = table(&["a.png", "b/ü.png", "c.jpg"]);
        let rows: Vec<Digest> = (0..3).map(|i| [i as u8; 32]).collect();
        let bytes = t.encode(&rows);
        let (back_rows, back) = FileTable::decode(&bytes, 3, 3, t.names_len()).unwrap();
        assert_eq!((back_rows, &back), (rows.clone(), &t));
        assert_eq!(
            FileTable::decode(&bytes[1..], 3, 3, t.names_len()),
            Err(Malformed::Size)
        );
        // Unsorted paths, a path end inside a character, a row holding another content.
        let unsorted = table(&["b", "a"]).encode(&rows[..2]);
        assert_eq!(FileTable::decode(&unsorted, 2, 2, 2), Err(Malformed::Paths));
        let mut inside = bytes.clone();
        let first_end = bytes.len() - t.names_len() - 3 * 8;
        inside[first_end..first_end + 8].copy_from_slice(&8u64.to_le_bytes());
        assert_eq!(
            FileTable::decode(&inside, 3, 3, t.names_len()),
            Err(Malformed::Paths)
        );
        let mut wrong_row = bytes.clone();
        wrong_row[3 * 32..3 * 32 + 4].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(
            FileTable::decode(&wrong_row, 3, 3, t.names_len()),
            Err(Malformed::Rows)
        );
    }

    #[test]
    fn hex_round_trip() {
        let hex = blake3::hash(b"x").to_hex().to_string();
        assert_eq!(hex_of(&digest_of(&hex).unwrap()), hex);
        assert_eq!(digest_of("h1"), None);
        assert_eq!(digest_of(&hex.to_uppercase()), digest_of(&hex));
        assert_eq!(digest_of(&format!("g{}", &hex[1..])), None);
    }
}
