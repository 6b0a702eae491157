//! Cache-line-aligned scratch buffers for the CPU kernels and the maps between them.

/// 64 bytes on a 64-byte boundary: one cache line, the unit of [`Lines`].
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Values whose every bit pattern is one (so zeroed bytes can be read as them).
pub(crate) trait Plain: Copy {}
impl Plain for f32 {}
impl Plain for u16 {}

/// A growable buffer of values that starts on a cache line, so that every 64-byte vector
/// of a map (16 channels; the channel counts are multiples of 16) lies in one line. A
/// large `Vec<f32>` starts 16 bytes past a page (the allocator's header), and then every
/// vector straddles two lines: the depthwise kernel ran 4-30 % slower on such maps
/// (`cargo bench --bench kernels`, 56 x 56 x 144: 184 against 142 us).
pub(crate) struct Lines<T> {
    lines: Vec<Line>,
    values: std::marker::PhantomData<T>,
}

impl<T> Default for Lines<T> {
    fn default() -> Self {
        Self {
            lines: Vec::new(),
            values: std::marker::PhantomData,
        }
    }
}

impl<T: Plain> Lines<T> {
    /// The first `len` values, growing the buffer when needed (what it held is kept).
    pub(crate) fn sized(&mut self, len: usize) -> &mut [T] {
        let lines = (len * size_of::<T>()).div_ceil(size_of::<Line>());
        if self.lines.len() < lines {
            self.lines.resize(lines, Line([0; 64]));
        }
        // SAFETY: the lines hold at least `len` values' bytes, all initialised, aligned
        // for any `T` of at most 64-byte alignment; every bit pattern is a `T` (`Plain`).
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), len) }
    }

    /// The first `len` values, which the buffer must hold.
    pub(crate) fn get(&self, len: usize) -> &[T] {
        assert!(
            len * size_of::<T>() <= self.lines.len() * size_of::<Line>(),
            "the buffer holds {len} values"
        );
        // SAFETY: as in `sized`; the assert bounds the slice.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), len) }
    }
}
