//! kitty's graphics protocol with direct placement: every kitty since 0.20 draws it,
//! unlike the Unicode placeholders (`U=1`, kitty >= 0.28) that ratatui-image's kitty
//! protocol uses, which kitty 0.26 (Debian 12) rejects with a parse error.
//!
//! An image is sent once as PNG under its own id (`a=t`), then placed at a cell
//! (`a=p`, without moving the cursor) and taken off the screen (`a=d,d=i`) as the selection
//! changes. The terminal keeps the image, so showing it again costs a placement (some 40
//! bytes) instead of the picture. Images are not part of ratatui's cells: [`Screen`]
//! places them after each frame, from the list the view computes (`view::preview::kitty`).
//!
//! Every command carries `q=2` (no replies), since a reply would arrive as typed keys.

use super::preview::PreviewError;
use image::DynamicImage;
use ratatui::crossterm::{cursor::MoveTo, queue};
use ratatui::layout::{Position, Size};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

/// An encoded picture: its id, its size in cells and the commands that send it.
#[derive(Debug, Clone)]
pub struct KittyImage {
    pub id: u32,
    pub cells: Size,
    transmit: String,
}

/// Base64 characters per chunk: the protocol's limit.
const CHUNK: usize = 4096;
/// Images the terminal is asked to keep; older ones are freed.
const STORED: usize = 32;

/// Ids unique to this process (a program before it in the same window may have left images
/// behind under small ids).
fn next_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = (std::process::id() & 0x7fff) << 16;
    base + 1 + (NEXT.fetch_add(1, Ordering::Relaxed) & 0xffff)
}

impl KittyImage {
    /// Encodes `img` (already scaled to `cells`) as PNG under a fresh id.
    pub fn encode(img: &DynamicImage, cells: Size) -> Result<KittyImage, PreviewError> {
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| PreviewError::Encode(e.to_string()))?;
        let id = next_id();
        let payload = base64_simd::STANDARD.encode_to_string(&png);
        let chunks: Vec<&str> = payload
            .as_bytes()
            .chunks(CHUNK)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        let mut transmit = String::with_capacity(payload.len() + chunks.len() * 16 + 32);
        for (i, chunk) in chunks.iter().enumerate() {
            let more = u8::from(i + 1 < chunks.len());
            // Only the first chunk carries the keys; the rest may carry only `m`.
            if i == 0 {
                transmit += &format!("\x1b_Ga=t,f=100,i={id},q=2,m={more};{chunk}\x1b\\");
            } else {
                transmit += &format!("\x1b_Gm={more};{chunk}\x1b\\");
            }
        }
        Ok(KittyImage {
            id,
            cells,
            transmit,
        })
    }

    /// Bytes that sending the picture costs.
    pub fn transmit_len(&self) -> usize {
        self.transmit.len()
    }
}

fn place(id: u32, cells: Size) -> String {
    format!(
        "\x1b_Ga=p,i={id},p=1,c={},r={},C=1,q=2\x1b\\",
        cells.width, cells.height
    )
}

/// Takes the image off the screen; with `free`, the terminal forgets it too.
fn delete(id: u32, free: bool) -> String {
    let d = if free { 'I' } else { 'i' };
    format!("\x1b_Ga=d,d={d},i={id},q=2\x1b\\")
}

/// What the terminal shows and holds, so that each frame sends only the difference.
#[derive(Debug, Default)]
pub struct Screen {
    /// Placements on screen: where, and which image.
    shown: Vec<(Position, u32)>,
    /// Images the terminal holds, oldest first.
    stored: VecDeque<u32>,
}

impl Screen {
    /// Makes the screen show exactly `wanted` (top-left cell, image): takes off placements
    /// that are no longer wanted, sends images the terminal does not hold, places the new
    /// ones, and frees the oldest images beyond [`STORED`].
    pub fn sync(
        &mut self,
        out: &mut impl Write,
        wanted: &[(Position, &KittyImage)],
    ) -> std::io::Result<()> {
        let wanted_ids: Vec<(Position, u32)> = wanted.iter().map(|(p, k)| (*p, k.id)).collect();
        for &(pos, id) in &self.shown {
            if !wanted_ids.contains(&(pos, id)) {
                out.write_all(delete(id, false).as_bytes())?;
            }
        }
        for &(pos, image) in wanted {
            if self.shown.contains(&(pos, image.id)) {
                continue;
            }
            if !self.stored.contains(&image.id) {
                out.write_all(image.transmit.as_bytes())?;
            }
            self.stored.retain(|&i| i != image.id);
            self.stored.push_back(image.id);
            queue!(out, MoveTo(pos.x, pos.y))?;
            out.write_all(place(image.id, image.cells).as_bytes())?;
        }
        self.shown = wanted_ids;
        while self.stored.len() > STORED {
            let Some(old) = self
                .stored
                .iter()
                .position(|id| !self.shown.iter().any(|s| s.1 == *id))
            else {
                break;
            };
            if let Some(id) = self.stored.remove(old) {
                out.write_all(delete(id, true).as_bytes())?;
            }
        }
        Ok(())
    }

    /// Frees every image this program sent: when leaving, and when the screen was cleared
    /// (a resize redraws everything, and clearing the screen takes kitty's placements with
    /// it), so the next `sync` starts afresh.
    pub fn release(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        for id in self.stored.drain(..) {
            out.write_all(delete(id, true).as_bytes())?;
        }
        self.shown.clear();
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn picture(w: u32) -> KittyImage {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(w, 20, Rgb([200, 30, 30])));
        KittyImage::encode(&img, Size::new(4, 2)).unwrap()
    }

    fn sync(screen: &mut Screen, wanted: &[(Position, &KittyImage)]) -> String {
        let mut out = Vec::new();
        screen.sync(&mut out, wanted).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_image_is_sent_once_placed_without_moving_the_cursor_and_taken_off() {
        let (a, b) = (picture(30), picture(40));
        let (left, right) = (Position::new(2, 3), Position::new(20, 3));
        let mut screen = Screen::default();
        let first = sync(&mut screen, &[(left, &a), (right, &b)]);
        assert!(first.contains(&format!("a=t,f=100,i={},q=2,m=0;iVBOR", a.id)));
        assert!(first.contains(&format!(
            "\x1b[4;3H\x1b_Ga=p,i={},p=1,c=4,r=2,C=1,q=2",
            a.id
        )));
        assert!(first.contains(&format!("\x1b[4;21H\x1b_Ga=p,i={}", b.id)));
        // The same frame again sends nothing.
        assert_eq!(sync(&mut screen, &[(left, &a), (right, &b)]), "");
        // Swapping them: two deletions and two placements, no picture data.
        let swapped = sync(&mut screen, &[(left, &b), (right, &a)]);
        assert!(!swapped.contains("a=t"), "{swapped:?}");
        assert_eq!(swapped.matches("a=d,d=i,").count(), 2);
        assert_eq!(swapped.matches("a=p,").count(), 2);
        // Nothing wanted: both taken off, data kept.
        let off = sync(&mut screen, &[]);
        assert_eq!(off.matches("a=d,d=i,").count(), 2);
        // Leaving frees both.
        let mut out = Vec::new();
        screen.release(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap().matches("a=d,d=I,").count(),
            2
        );
    }

    #[test]
    fn large_pictures_are_chunked_and_old_ones_freed() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(300, 300, |x, y| {
            Rgb([
                (x * 7 % 256) as u8,
                (y * 13 % 256) as u8,
                ((x ^ y) % 256) as u8,
            ])
        }));
        let big = KittyImage::encode(&img, Size::new(30, 15)).unwrap();
        let chunks = big.transmit.matches("\x1b_G").count();
        assert!(chunks > 1);
        assert_eq!(big.transmit.matches("m=1;").count(), chunks - 1);
        assert!(big.transmit.ends_with("\x1b\\") && big.transmit.contains("\x1b_Gm=0;"));

        let mut screen = Screen::default();
        let pictures: Vec<KittyImage> = (0..STORED + 3).map(|i| picture(10 + i as u32)).collect();
        let mut freed = 0;
        for p in &pictures {
            freed += sync(&mut screen, &[(Position::new(0, 0), p)])
                .matches("d=I")
                .count();
        }
        assert_eq!(freed, 3);
        assert_eq!(screen.stored.len(), STORED);
    }
}
