//! Baseline JPEG decoded at 1/8 scale from the DC coefficients alone.
//!
//! At 1/8 scale every 8x8 block becomes one pixel whose value is the block mean, which is
//! the DC coefficient (ITU-T T.81 A.3.3: the 1x1 inverse DCT is `DC / 8`). The AC
//! coefficients still have to be read past, since the entropy-coded data has no block
//! boundaries, but their values are never needed: one table lookup gives a symbol's code
//! length plus its magnitude bits and how far it moves in the block, and the decoder skips
//! them without dequantising, inverse-transforming or upsampling anything. That makes a
//! camera-sized photo about twice as fast as a general decoder at 1/8 scale
//! (`cargo bench --bench decode`).
//!
//! Only what this path can do exactly is accepted: 8-bit baseline or extended sequential
//! Huffman JPEG, one or three components, in one interleaved scan (or one component).
//! Anything else (progressive, arithmetic coding, CMYK, 12-bit, several scans, a
//! malformed stream) returns `None`, and the caller uses the general decoder.

use image::RgbImage;

mod entropy;

use entropy::{Bits, Huffman, skip_ac};

#[derive(Clone, Copy, Default)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    quant: usize,
    dc_table: usize,
    ac_table: usize,
}

/// What the markers before the scan declared.
#[derive(Default)]
struct Header {
    width: usize,
    height: usize,
    components: Vec<Component>,
    /// DC quantiser of each table (the only entry a DC-only decode needs).
    quant_dc: [Option<u16>; 4],
    dc: [Option<Huffman>; 4],
    ac: [Option<Huffman>; 4],
    restart_interval: usize,
    /// Adobe APP14 colour transform flag: `Some(0)` means the components are RGB.
    adobe_transform: Option<u8>,
}

/// Decodes `bytes` at 1/8 scale (`ceil(w/8) x ceil(h/8)`), or `None` when the file is not
/// a JPEG this decoder handles exactly (see the module documentation).
pub fn decode_eighth(bytes: &[u8]) -> Option<RgbImage> {
    let frame = read_header(bytes)?;
    if !frame.sequential {
        return None;
    }
    let scan = Scan::new(frame.scan_header, &frame.header)?;
    let mut planes: Vec<Vec<i32>> = scan
        .components
        .iter()
        .map(|c| vec![0; scan.mcus_x * c.h * scan.mcus_y * c.v])
        .collect();
    let done = scan.walk(frame.data, &frame.header, |ci, index, dc| {
        planes[ci][index] = dc
    });
    (done == scan.mcus()).then(|| to_rgb(&frame.header, &scan.components, &planes, scan.mcus_x))
}

/// What is missing from a truncated JPEG: `Missing::Fraction` (of the blocks present)
/// when the data ends before the end-of-image marker and before the last block,
/// `Missing::Unknown` when the blocks cannot be counted (progressive and other multi-scan
/// files), `None` when nothing is missing or the file is not a JPEG this can read.
///
/// It reads the entropy-coded data without decoding pixels, so a few kilobytes cut from a
/// file whose header claims 16000 x 16000 pixels are recognised in microseconds, before
/// any decoder allocates a buffer for the size the header claims.
pub fn missing_data(bytes: &[u8]) -> Option<Missing> {
    let frame = read_header(bytes)?;
    // Entropy-coded data stuffs every 0xFF with 0x00, so 0xFF 0xD9 after the first scan
    // starts can only be the end-of-image marker.
    if frame.data.windows(2).any(|w| w == [0xFF, 0xD9]) {
        return None;
    }
    if !frame.sequential {
        return Some(Missing::Unknown);
    }
    let Some(scan) = Scan::new(frame.scan_header, &frame.header) else {
        return Some(Missing::Unknown);
    };
    let done = scan.walk(frame.data, &frame.header, |_, _, _| {});
    // Every block is there and only the end marker is missing: the image is whole.
    (done < scan.mcus()).then(|| Missing::Fraction(done as f64 / scan.mcus() as f64))
}

/// What `missing_data` found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Missing {
    /// This fraction (0.0..1.0) of the image's blocks is present.
    Fraction(f64),
    /// The end-of-image marker is missing; how much data is present is not known.
    Unknown,
}

/// A JPEG's markers up to its first scan.
struct Frame<'a> {
    header: Header,
    /// Baseline or extended sequential Huffman (the only kind `Scan` reads).
    sequential: bool,
    /// The start-of-scan segment and the data after it.
    scan_header: &'a [u8],
    data: &'a [u8],
}

fn read_header(bytes: &[u8]) -> Option<Frame<'_>> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut header = Header::default();
    let mut sequential = false;
    let mut at = 2;
    loop {
        // Markers may be preceded by fill bytes (0xFF).
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        while *bytes.get(at)? == 0xFF {
            at += 1;
        }
        let marker = *bytes.get(at)?;
        at += 1;
        if marker == 0xD9 {
            return None; // end of image before any scan
        }
        let len = u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]) as usize;
        let segment = bytes.get(at + 2..at + len.checked_sub(2)? + 2)?;
        at += len;
        match marker {
            0xC0 | 0xC1 => {
                read_frame(segment, &mut header)?;
                sequential = true;
            }
            // Other frame types: progressive, lossless, arithmetic coding, hierarchical.
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => sequential = false,
            0xC4 => read_huffman(segment, &mut header)?,
            0xDB => read_quant(segment, &mut header)?,
            0xDD => {
                header.restart_interval =
                    u16::from_be_bytes([*segment.first()?, *segment.get(1)?]) as usize
            }
            0xEE if segment.starts_with(b"Adobe") => {
                header.adobe_transform = segment.get(11).copied()
            }
            0xDA => {
                return Some(Frame {
                    header,
                    sequential,
                    scan_header: segment,
                    data: bytes.get(at..)?,
                });
            }
            _ => {} // APPn, COM and the like
        }
    }
}

fn read_frame(segment: &[u8], header: &mut Header) -> Option<()> {
    let &[precision, h1, h0, w1, w0, count, ..] = segment else {
        return None;
    };
    header.height = u16::from_be_bytes([h1, h0]) as usize;
    header.width = u16::from_be_bytes([w1, w0]) as usize;
    let side_ok = |side: usize| (1..=super::MAX_SIDE as usize).contains(&side);
    if precision != 8 || !side_ok(header.width) || !side_ok(header.height) {
        return None; // DNL-defined heights, decompression bombs
    }
    if !matches!(count, 1 | 3) {
        return None;
    }
    header.components = segment
        .get(6..6 + 3 * count as usize)?
        .chunks_exact(3)
        .map(|c| {
            let (h, v) = ((c[1] >> 4) as usize, (c[1] & 15) as usize);
            ((1..=4).contains(&h) && (1..=4).contains(&v) && c[2] < 4).then_some(Component {
                id: c[0],
                h,
                v,
                quant: c[2] as usize,
                ..Default::default()
            })
        })
        .collect::<Option<_>>()?;
    Some(())
}

fn read_huffman(mut segment: &[u8], header: &mut Header) -> Option<()> {
    while !segment.is_empty() {
        let class_and_id = segment[0];
        let counts: &[u8; 16] = segment.get(1..17)?.try_into().ok()?;
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        let table = Huffman::new(counts, segment.get(17..17 + total)?)?;
        let id = (class_and_id & 15) as usize;
        match class_and_id >> 4 {
            0 => *header.dc.get_mut(id)? = Some(table),
            1 => *header.ac.get_mut(id)? = Some(table),
            _ => return None,
        }
        segment = &segment[17 + total..];
    }
    Some(())
}

fn read_quant(mut segment: &[u8], header: &mut Header) -> Option<()> {
    while !segment.is_empty() {
        let (precision, id) = (segment[0] >> 4, (segment[0] & 15) as usize);
        let (dc, size) = match precision {
            0 => (*segment.get(1)? as u16, 65),
            1 => (
                u16::from_be_bytes([*segment.get(1)?, *segment.get(2)?]),
                129,
            ),
            _ => return None,
        };
        *header.quant_dc.get_mut(id)? = Some(dc);
        segment = segment.get(size..)?;
    }
    Some(())
}

/// The entropy-coded data of one restart interval, byte stuffing removed; returns it and
/// where the next interval starts (after an RST marker), or `None` for the end of the scan.
fn next_interval(data: &[u8]) -> (Vec<u8>, Option<usize>) {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        match data[i..].iter().position(|&b| b == 0xFF) {
            None => {
                out.extend_from_slice(&data[i..]);
                break;
            }
            Some(p) => {
                out.extend_from_slice(&data[i..i + p]);
                i += p;
                match data.get(i + 1) {
                    Some(0x00) => {
                        out.push(0xFF);
                        i += 2;
                    }
                    Some(0xFF) => i += 1, // fill byte before a marker
                    Some(0xD0..=0xD7) => return (out, Some(i + 2)),
                    _ => return (out, None),
                }
            }
        }
    }
    (out, None)
}

/// One interleaved scan of every component: its geometry in MCUs.
struct Scan {
    components: Vec<Component>,
    mcus_x: usize,
    mcus_y: usize,
}

impl Scan {
    fn new(segment: &[u8], header: &Header) -> Option<Self> {
        let count = *segment.first()? as usize;
        if count != header.components.len() {
            return None; // one scan per component: not handled here
        }
        let mut components = header.components.clone();
        for (i, c) in segment.get(1..1 + 2 * count)?.chunks_exact(2).enumerate() {
            let component = components.get_mut(i).filter(|comp| comp.id == c[0])?;
            component.dc_table = (c[1] >> 4) as usize;
            component.ac_table = (c[1] & 15) as usize;
            header.dc.get(component.dc_table)?.as_ref()?;
            header.ac.get(component.ac_table)?.as_ref()?;
            header.quant_dc.get(component.quant)?.as_ref()?;
        }
        let &[start, end, _approx] = segment.get(1 + 2 * count..4 + 2 * count)? else {
            return None;
        };
        if start != 0 || end != 63 {
            return None;
        }
        if count == 1 {
            // A single component is not interleaved: its MCU is one block, whatever its
            // factors.
            components[0].h = 1;
            components[0].v = 1;
        }
        let h_max = components.iter().map(|c| c.h).max()?;
        let v_max = components.iter().map(|c| c.v).max()?;
        Some(Self {
            mcus_x: header.width.div_ceil(8 * h_max),
            mcus_y: header.height.div_ceil(8 * v_max),
            components,
        })
    }

    fn mcus(&self) -> usize {
        self.mcus_x * self.mcus_y
    }

    /// Reads the scan's `data`, handing every block's DC value to `store` (component,
    /// index on the component's padded block grid, value); returns how many MCUs were
    /// read whole before the data ended or stopped making sense.
    fn walk(
        &self,
        data: &[u8],
        header: &Header,
        mut store: impl FnMut(usize, usize, i32),
    ) -> usize {
        let mut predictors = vec![0i32; self.components.len()];
        let interval = if header.restart_interval > 0 {
            header.restart_interval
        } else {
            usize::MAX
        };
        let (bytes, mut next) = next_interval(data);
        let mut bits = Bits::new(bytes);
        for mcu in 0..self.mcus() {
            if mcu > 0 && mcu % interval == 0 {
                // Restart: byte-aligned fresh data, predictors back to zero.
                let Some(base) = next else { return mcu };
                let Some(rest) = data.get(base..) else {
                    return mcu;
                };
                let (bytes, after) = next_interval(rest);
                next = after.map(|a| base + a);
                bits = Bits::new(bytes);
                predictors.fill(0);
            }
            let (mx, my) = (mcu % self.mcus_x, mcu / self.mcus_x);
            for (ci, c) in self.components.iter().enumerate() {
                let stride = self.mcus_x * c.h;
                for v in 0..c.v {
                    for h in 0..c.h {
                        let Some(dc) = read_block(&mut bits, header, c, &mut predictors[ci]) else {
                            return mcu;
                        };
                        store(ci, (my * c.v + v) * stride + mx * c.h + h, dc);
                    }
                }
            }
            if bits.overrun() {
                return mcu;
            }
        }
        self.mcus()
    }
}

/// Reads one block: its DC difference (added to the component's predictor, which it
/// returns) and past its AC coefficients.
#[inline]
fn read_block(bits: &mut Bits, header: &Header, c: &Component, predictor: &mut i32) -> Option<i32> {
    let dc_table = header.dc[c.dc_table].as_ref()?;
    let ac_table = header.ac[c.ac_table].as_ref()?;
    bits.refill();
    let (len, size) = dc_table.decode(bits)?;
    bits.skip(len);
    if size > 11 {
        return None;
    }
    // Wrapping: a hostile stream could push a sum of differences past i32.
    *predictor = predictor.wrapping_add(bits.signed(size as u32));
    skip_ac(bits, ac_table)?;
    Some(*predictor)
}

/// Block means (`DC * q / 8 + 128`) to RGB pixels. Subsampled chroma is interpolated
/// bilinearly between block centres, which for 2x subsampling is libjpeg's "fancy"
/// triangle upsampling (weights 3/4 and 1/4).
fn to_rgb(
    header: &Header,
    components: &[Component],
    planes: &[Vec<i32>],
    mcus_x: usize,
) -> RgbImage {
    let (w, h) = (header.width.div_ceil(8), header.height.div_ceil(8));
    let h_max = components.iter().map(|c| c.h).max().unwrap_or(1);
    let v_max = components.iter().map(|c| c.v).max().unwrap_or(1);
    let levels: Vec<Vec<u8>> = components
        .iter()
        .zip(planes)
        .map(|(c, plane)| {
            let q = header.quant_dc[c.quant].unwrap_or(1) as i32;
            let stride = mcus_x * c.h;
            // The component's own size in blocks (the grid beyond it is MCU padding).
            let cw = (header.width * c.h).div_ceil(h_max).div_ceil(8);
            let ch = (header.height * c.v).div_ceil(v_max).div_ceil(8);
            let level = |bx: usize, by: usize| {
                let dc = plane[by * stride + bx].saturating_mul(q);
                ((dc.saturating_add(4) >> 3) + 128).clamp(0, 255)
            };
            let xs = taps(w, cw, c.h, h_max);
            let ys = taps(h, ch, c.v, v_max);
            let mut out = Vec::with_capacity(w * h);
            for &(y0, y1, wy) in &ys {
                out.extend(xs.iter().map(|&(x0, x1, wx)| {
                    let top = level(x0, y0) * (4 - wx) + level(x1, y0) * wx;
                    let bottom = level(x0, y1) * (4 - wx) + level(x1, y1) * wx;
                    ((top * (4 - wy) + bottom * wy + 8) >> 4) as u8
                }));
            }
            out
        })
        .collect();
    let rgb_components =
        header.adobe_transform == Some(0) || components.iter().map(|c| c.id).eq(*b"RGB");
    let pixels: Vec<u8> = match levels.as_slice() {
        [l] => l.iter().flat_map(|&v| [v, v, v]).collect(),
        [a, b, c] if rgb_components => (0..w * h).flat_map(|i| [a[i], b[i], c[i]]).collect(),
        [y, cb, cr] => (0..w * h)
            .flat_map(|i| ycbcr_to_rgb(y[i], cb[i], cr[i]))
            .collect(),
        _ => unreachable!("one or three components were checked at the frame header"),
    };
    RgbImage::from_raw(w as u32, h as u32, pixels).expect("w x h x 3 values")
}

/// For each of `out` output positions, the two source blocks (of `len`) around its centre
/// and the second one's weight in quarters, when the component has `factor` of `max`
/// blocks per output block: the centre of output `o` lies at `(o + 1/2) factor / max - 1/2`.
fn taps(out: usize, len: usize, factor: usize, max: usize) -> Vec<(usize, usize, i32)> {
    (0..out)
        .map(|o| {
            // In quarters of a block, offset by half a block so it stays non-negative.
            let quarters = ((4 * o + 2) * factor / max + 2).saturating_sub(4);
            let (first, weight) = (quarters / 4, (quarters % 4) as i32);
            let last = len.saturating_sub(1);
            (first.min(last), (first + 1).min(last), weight)
        })
        .collect()
}

/// JFIF YCbCr to RGB in 16-bit fixed point (the constants are T.871's, times 65536).
#[inline]
fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let (y, cb, cr) = ((y as i32) << 16, cb as i32 - 128, cr as i32 - 128);
    let px = |v: i32| ((v + (1 << 15)) >> 16).clamp(0, 255) as u8;
    [
        px(y + 91_881 * cr),
        px(y - 22_554 * cb - 46_802 * cr),
        px(y + 116_130 * cb),
    ]
}

#[cfg(test)]
mod tests;
