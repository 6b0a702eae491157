//! The entropy-coding primitives of the DC-only decoder: Huffman tables with a direct
//! lookup, and a bit reader over de-stuffed scan data.

/// Lookahead of the fast Huffman tables, in bits.
const FAST_BITS: u32 = 10;

/// One Huffman table (T.81 Annex C), with a direct lookup for codes up to `FAST_BITS`.
pub(super) struct Huffman {
    /// Indexed by the next `FAST_BITS` bits: the code length (0 = longer code) and symbol.
    fast: Vec<(u8, u8)>,
    /// For AC tables, indexed the same way: bits to skip (code plus magnitude) in the low
    /// byte and positions to advance in the block above it (0 = end of block); 0 = slow path.
    skip: Vec<u16>,
    /// For the canonical slow path: largest code of each length (-1 = none), and the index
    /// in `symbols` of that length's first code minus the code itself.
    max_code: [i32; 17],
    offset: [i32; 17],
    symbols: Vec<u8>,
}

impl Huffman {
    pub(super) fn new(counts: &[u8; 16], symbols: &[u8]) -> Option<Self> {
        let mut fast = vec![(0u8, 0u8); 1 << FAST_BITS];
        let (mut max_code, mut offset) = ([-1i32; 17], [0i32; 17]);
        let (mut code, mut index) = (0i32, 0usize);
        for len in 1..=16 {
            let count = counts[len - 1] as usize;
            offset[len] = index as i32 - code;
            for _ in 0..count {
                let symbol = *symbols.get(index)?;
                if len as u32 <= FAST_BITS {
                    let shift = FAST_BITS - len as u32;
                    let first = (code as usize) << shift;
                    fast.get_mut(first..first + (1 << shift))?
                        .fill((len as u8, symbol));
                }
                code += 1;
                index += 1;
            }
            if count > 0 {
                max_code[len] = code - 1;
            }
            if code > 1 << len {
                return None; // over-subscribed lengths
            }
            code <<= 1;
        }
        let skip = fast
            .iter()
            .map(|&(len, symbol)| {
                let (run, size) = (symbol as u16 >> 4, symbol as u16 & 15);
                let advance = match (run, size) {
                    (_, 1..) => run + 1,
                    (15, 0) => 16,
                    _ => 0,
                };
                // Over-long magnitudes take the slow path, which refuses them.
                if len == 0 || size > 10 {
                    0
                } else {
                    (len as u16 + size) | advance << 8
                }
            })
            .collect();
        Some(Self {
            fast,
            skip,
            max_code,
            offset,
            symbols: symbols.to_vec(),
        })
    }

    /// Decodes one symbol, returning it with its code length.
    #[inline]
    pub(super) fn decode(&self, bits: &Bits) -> Option<(u32, u8)> {
        let (len, symbol) = self.fast[bits.peek(FAST_BITS) as usize];
        if len > 0 {
            return Some((len as u32, symbol));
        }
        let word = bits.peek(16) as i32;
        for len in FAST_BITS as usize + 1..=16 {
            let code = word >> (16 - len);
            if code <= self.max_code[len] {
                let symbol = *self.symbols.get((self.offset[len] + code) as usize)?;
                return Some((len as u32, symbol));
            }
        }
        None
    }
}

/// A bit reader over entropy-coded data with the byte stuffing already removed. The next
/// bits sit MSB-first in a 64-bit register, so a peek is a shift, not a memory load (the
/// decode is one long chain of dependent peeks and table lookups).
pub(super) struct Bits {
    /// The data, then `PAD` zero bytes so that 8-byte loads near the end stay in bounds.
    data: Vec<u8>,
    /// Next byte to load into `buf`.
    next: usize,
    buf: u64,
    /// Valid bits at the top of `buf`.
    count: u32,
}

const PAD: usize = 8;

impl Bits {
    pub(super) fn new(mut data: Vec<u8>) -> Self {
        data.extend_from_slice(&[0; PAD]);
        Self {
            data,
            next: 0,
            buf: 0,
            count: 0,
        }
    }

    /// Tops the register up to at least 56 bits. Loading 8 bytes and OR-ing them in below
    /// the valid bits is branch-free; the partial byte it also brings is loaded again,
    /// identically, next time. Past the end it reads the zero padding.
    #[inline]
    pub(super) fn refill(&mut self) {
        let at = self.next.min(self.data.len() - PAD);
        let word = u64::from_be_bytes(self.data[at..at + 8].try_into().expect("8 bytes"));
        self.buf |= word >> self.count;
        let bytes = (63 - self.count) / 8;
        self.next += bytes as usize;
        self.count += bytes * 8;
    }

    /// The next `n` (1..=32) bits, MSB first, without consuming them; `refill` first.
    #[inline]
    pub(super) fn peek(&self, n: u32) -> u32 {
        (self.buf >> (64 - n)) as u32
    }

    #[inline]
    pub(super) fn skip(&mut self, n: u32) {
        self.buf <<= n;
        self.count -= n;
    }

    /// `n` (0..=16) bits as a signed coefficient (T.81 F.2.2.1, EXTEND).
    #[inline]
    pub(super) fn signed(&mut self, n: u32) -> i32 {
        if n == 0 {
            return 0;
        }
        let v = self.peek(n) as i32;
        self.skip(n);
        if v < 1 << (n - 1) {
            v - (1 << n) + 1
        } else {
            v
        }
    }

    /// Whether more bits were consumed than the data holds (a truncated stream).
    pub(super) fn overrun(&self) -> bool {
        self.next * 8 > (self.data.len() - PAD) * 8 + self.count as usize
    }
}

/// Reads past the 63 AC coefficients of one block (T.81 F.2.2.2) without their values.
#[inline]
pub(super) fn skip_ac(bits: &mut Bits, table: &Huffman) -> Option<()> {
    let mut k = 1;
    while k < 64 {
        // One refill leaves at least 56 bits: enough for two symbols of up to 26 bits
        // (a 16-bit code plus a 10-bit magnitude), so the refill runs every other symbol.
        bits.refill();
        for _ in 0..2 {
            let entry = table.skip[bits.peek(FAST_BITS) as usize];
            let advance = if entry != 0 {
                bits.skip(u32::from(entry & 0xFF));
                (entry >> 8) as usize
            } else {
                let (len, symbol) = table.decode(bits)?;
                let (run, size) = ((symbol >> 4) as usize, (symbol & 15) as u32);
                if size > 10 {
                    return None; // AC magnitudes have at most 10 bits in 8-bit JPEG
                }
                bits.skip(len + size);
                match (run, size) {
                    (_, 1..) => run + 1,
                    (15, 0) => 16,
                    _ => 0,
                }
            };
            if advance == 0 {
                return Some(()); // end of block
            }
            k += advance;
            if k >= 64 {
                break;
            }
        }
    }
    (k == 64).then_some(())
}
