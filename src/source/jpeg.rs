//! Takes the quantized DCT coefficients out of a sequential (baseline or
//! extended) Huffman JPEG without decoding a pixel.
//!
//! JPEG already stores exactly what spectradb stores (8x8 DCT coefficients
//! in zigzag order, quantized), so taking them over avoids a second
//! generation of quantization loss and the cost of an IDCT + DCT round trip.
//! Anything this reader does not cover (progressive, arithmetic coding,
//! 12-bit, unusual chroma sampling, RGB-coded or CMYK files) is reported as
//! [`JpegError::Unsupported`] and the caller falls back to the pixel path;
//! damaged data is [`JpegError::Invalid`].

use crate::codec::{Chroma, CoefPlane, CoefficientImage, QuantTable};
use crate::storage::huffman::{CanonicalCode, Lookup};

/// Why the coefficients could not be taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JpegError {
    /// A valid file this reader does not handle: decode pixels instead.
    Unsupported(String),
    /// The file is damaged (truncated, bad codes, missing tables).
    Invalid(String),
    /// Over the pixel limit.
    TooLarge { width: u32, height: u32 },
}

type R<T> = Result<T, JpegError>;

fn invalid<T>(msg: impl Into<String>) -> R<T> {
    Err(JpegError::Invalid(msg.into()))
}

fn unsupported<T>(msg: impl Into<String>) -> R<T> {
    Err(JpegError::Unsupported(msg.into()))
}

/// The coefficients and the EXIF block (TIFF header onwards), if any.
#[derive(Debug)]
pub struct JpegCoefficients {
    pub image: CoefficientImage,
    pub exif: Option<Vec<u8>>,
}

struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// Block grid padded to whole MCUs.
    bw_pad: usize,
    bh_pad: usize,
    /// Blocks that hold image samples.
    bw: usize,
    bh: usize,
    /// Plane size in samples.
    pw: u32,
    ph: u32,
    /// Band `k`: coefficient `k` (zigzag) of each of the `bw x bh` blocks,
    /// the layout a [`CoefPlane`] keeps; blocks are decoded straight into
    /// it (padding blocks are decoded and dropped).
    bands: Vec<Vec<i16>>,
    scanned: bool,
}

/// Reads the coefficients of `data`; `max_pixels` guards against bombs.
pub fn read_coefficients(data: &[u8], max_pixels: u64) -> R<JpegCoefficients> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return invalid("not a JPEG file (no SOI marker)");
    }
    let mut pos = 2;
    let mut qts: [Option<QuantTable>; 4] = [None; 4];
    let mut dc_tables: [Option<Huffman>; 4] = Default::default();
    let mut ac_tables: [Option<Huffman>; 4] = Default::default();
    let mut frame: Option<(u32, u32, Vec<Component>)> = None;
    let mut restart_interval = 0usize;
    let mut exif = None;
    let mut adobe_transform = None;
    let mut saw_eoi = false;
    while pos < data.len() {
        // Find the next marker, skipping fill bytes.
        if data[pos] != 0xFF {
            pos += 1;
            continue;
        }
        while pos < data.len() && data[pos] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = data.get(pos) else { break };
        pos += 1;
        match marker {
            0xD9 => {
                saw_eoi = true;
                break;
            }
            0xD0..=0xD7 | 0x01 | 0x00 | 0xD8 => continue,
            _ => {}
        }
        let seg = segment(data, pos)?;
        pos += 2 + seg.len();
        match marker {
            0xC0 | 0xC1 => {
                if frame.is_some() {
                    return unsupported("more than one frame");
                }
                frame = Some(parse_frame(seg, max_pixels)?);
            }
            0xC2 => return unsupported("progressive JPEG"),
            0xC3 | 0xC7 | 0xCB | 0xCF => return unsupported("lossless JPEG"),
            0xC5 | 0xC6 | 0xCD | 0xCE => return unsupported("hierarchical JPEG"),
            0xC9 | 0xCA => return unsupported("arithmetic-coded JPEG"),
            0xC4 => parse_dht(seg, &mut dc_tables, &mut ac_tables)?,
            0xDB => parse_dqt(seg, &mut qts)?,
            0xDD => {
                if seg.len() < 2 {
                    return invalid("short DRI segment");
                }
                restart_interval = u16::from_be_bytes([seg[0], seg[1]]) as usize;
            }
            0xE1 if seg.starts_with(b"Exif\0\0") => exif = Some(seg[6..].to_vec()),
            0xEE if seg.starts_with(b"Adobe") && seg.len() >= 12 => adobe_transform = Some(seg[11]),
            0xDA => {
                let Some((_, _, comps)) = frame.as_mut() else {
                    return invalid("scan before frame header");
                };
                pos = decode_scan(
                    data,
                    pos,
                    seg,
                    comps,
                    &dc_tables,
                    &ac_tables,
                    restart_interval,
                )?;
            }
            _ => {} // APPn, COM and others carry nothing we need
        }
    }
    let Some((width, height, mut comps)) = frame else {
        return invalid("no frame header (SOF) found");
    };
    if let Some(c) = comps.iter().find(|c| !c.scanned) {
        return invalid(if saw_eoi {
            format!("component {} has no scan data", c.id)
        } else {
            "file ends before its image data (truncated)".to_string()
        });
    }
    let chroma = match comps.len() {
        1 => Chroma::Gray,
        _ => {
            let ids: Vec<u8> = comps.iter().map(|c| c.id).collect();
            if adobe_transform == Some(0) || ids == b"RGB" {
                return unsupported("RGB-coded JPEG");
            }
            let s: Vec<(usize, usize)> = comps.iter().map(|c| (c.h, c.v)).collect();
            if s[1..].iter().all(|&x| x == s[0]) {
                Chroma::Yuv444
            } else if s == [(2, 2), (1, 1), (1, 1)] {
                Chroma::Yuv420
            } else {
                return unsupported(format!("chroma sampling {s:?}"));
            }
        }
    };
    let mut planes = Vec::with_capacity(comps.len());
    let mut quant = Vec::with_capacity(comps.len());
    for c in &mut comps {
        let Some(q) = qts[c.tq] else {
            return invalid(format!("quantization table {} is not defined", c.tq));
        };
        quant.push(q);
        let mut plane =
            CoefPlane::empty(c.pw, c.ph).map_err(|e| JpegError::Invalid(e.to_string()))?;
        debug_assert_eq!((plane.blocks_w(), plane.blocks_h()), (c.bw, c.bh));
        for (k, band) in std::mem::take(&mut c.bands).into_iter().enumerate() {
            plane
                .set_band(k, band)
                .map_err(|e| JpegError::Invalid(e.to_string()))?;
        }
        planes.push(plane);
    }
    let image = CoefficientImage::new(width, height, chroma, quant, planes)
        .map_err(|e| JpegError::Invalid(e.to_string()))?;
    Ok(JpegCoefficients { image, exif })
}

/// The payload of the segment whose length field starts at `pos`.
fn segment(data: &[u8], pos: usize) -> R<&[u8]> {
    let Some(len) = data.get(pos..pos + 2) else {
        return invalid("file ends inside a segment header (truncated)");
    };
    let len = u16::from_be_bytes([len[0], len[1]]) as usize;
    if len < 2 {
        return invalid("segment length below 2");
    }
    data.get(pos + 2..pos + len)
        .ok_or_else(|| JpegError::Invalid("file ends inside a segment (truncated)".into()))
}

fn parse_frame(seg: &[u8], max_pixels: u64) -> R<(u32, u32, Vec<Component>)> {
    if seg.len() < 6 {
        return invalid("short frame header");
    }
    if seg[0] != 8 {
        return unsupported(format!("{}-bit samples", seg[0]));
    }
    let height = u16::from_be_bytes([seg[1], seg[2]]) as u32;
    let width = u16::from_be_bytes([seg[3], seg[4]]) as u32;
    let n = seg[5] as usize;
    if width == 0 || height == 0 {
        return unsupported("height defined by a DNL marker");
    }
    if width as u64 * height as u64 > max_pixels {
        return Err(JpegError::TooLarge { width, height });
    }
    if n != 1 && n != 3 {
        return unsupported(format!("{n} colour components"));
    }
    if seg.len() < 6 + 3 * n {
        return invalid("short frame header");
    }
    let mut comps = Vec::with_capacity(n);
    for i in 0..n {
        let c = &seg[6 + 3 * i..9 + 3 * i];
        let (h, v, tq) = ((c[1] >> 4) as usize, (c[1] & 15) as usize, c[2] as usize);
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) || tq > 3 {
            return invalid(format!(
                "bad sampling factors or table in component {}",
                c[0]
            ));
        }
        comps.push((c[0], h, v, tq));
    }
    // A single-component image is coded as one block per MCU whatever its factors.
    if n == 1 {
        comps[0].1 = 1;
        comps[0].2 = 1;
    }
    let hmax = comps.iter().map(|c| c.1).max().expect("n >= 1");
    let vmax = comps.iter().map(|c| c.2).max().expect("n >= 1");
    let mcux = width.div_ceil(8 * hmax as u32) as usize;
    let mcuy = height.div_ceil(8 * vmax as u32) as usize;
    let comps = comps
        .into_iter()
        .map(|(id, h, v, tq)| {
            let pw = (width as u64 * h as u64).div_ceil(hmax as u64) as u32;
            let ph = (height as u64 * v as u64).div_ceil(vmax as u64) as u32;
            let (bw_pad, bh_pad) = (mcux * h, mcuy * v);
            Component {
                id,
                h,
                v,
                tq,
                bw_pad,
                bh_pad,
                bw: pw.div_ceil(8) as usize,
                bh: ph.div_ceil(8) as usize,
                pw,
                ph,
                bands: (0..64)
                    .map(|_| vec![0; pw.div_ceil(8) as usize * ph.div_ceil(8) as usize])
                    .collect(),
                scanned: false,
            }
        })
        .collect();
    Ok((width, height, comps))
}

fn parse_dqt(mut seg: &[u8], qts: &mut [Option<QuantTable>; 4]) -> R<()> {
    while !seg.is_empty() {
        let (pq, tq) = ((seg[0] >> 4) as usize, (seg[0] & 15) as usize);
        let size = if pq == 0 { 64 } else { 128 };
        if tq > 3 || seg.len() < 1 + size {
            return invalid("bad DQT segment");
        }
        let mut t = [0u16; 64];
        for (k, v) in t.iter_mut().enumerate() {
            *v = if pq == 0 {
                seg[1 + k] as u16
            } else {
                u16::from_be_bytes([seg[1 + 2 * k], seg[2 + 2 * k]])
            };
        }
        if t.contains(&0) {
            return invalid("quantization table with a zero entry");
        }
        qts[tq] = Some(t);
        seg = &seg[1 + size..];
    }
    Ok(())
}

fn parse_dht(
    mut seg: &[u8],
    dc: &mut [Option<Huffman>; 4],
    ac: &mut [Option<Huffman>; 4],
) -> R<()> {
    while !seg.is_empty() {
        if seg.len() < 17 {
            return invalid("bad DHT segment");
        }
        let (class, id) = (seg[0] >> 4, (seg[0] & 15) as usize);
        let counts: [u8; 16] = seg[1..17].try_into().expect("16 bytes");
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if id > 3 || class > 1 || total > 256 || seg.len() < 17 + total {
            return invalid("bad DHT segment");
        }
        let table = Huffman::new(&counts, &seg[17..17 + total])?;
        if class == 0 {
            dc[id] = Some(table);
        } else {
            ac[id] = Some(table);
        }
        seg = &seg[17 + total..];
    }
    Ok(())
}

/// A JPEG Huffman table: a lookup of the next [`FAST_BITS`] bits that
/// decodes the symbol and, when they fit, its value bits too (most
/// coefficients), plus the canonical slow path for longer codes.
#[derive(Clone)]
struct Huffman {
    fast: Box<[u32]>,
    maxcode: [i32; 17],
    valptr: [i32; 17],
    mincode: [i32; 17],
    vals: Vec<u8>,
}

/// Bits looked up at once; longer codes take the slow path.
const FAST_BITS: u32 = 10;

impl Huffman {
    /// Builds the table through the validated canonical builder that the
    /// band codes use, so an over-subscribed DHT is an error, not an index
    /// past the fast table.
    fn new(counts: &[u8; 16], vals: &[u8]) -> R<Self> {
        let code = CanonicalCode::from_counts(counts, vals)
            .map_err(|e| JpegError::Invalid(format!("bad DHT segment: {e}")))?;
        let mut maxcode = [-1i32; 17];
        let mut valptr = [0i32; 17];
        let mut mincode = [0i32; 17];
        for (k, (_, len, c)) in code.iter().enumerate() {
            let l = len as usize;
            if maxcode[l] < 0 {
                valptr[l] = k as i32;
                mincode[l] = c as i32;
            }
            maxcode[l] = c as i32;
        }
        Ok(Huffman {
            fast: code.value_lookup_table(FAST_BITS),
            maxcode,
            valptr,
            mincode,
            vals: vals.to_vec(),
        })
    }

    /// Decodes the next symbol and consumes its code; when the entry's
    /// [`Lookup::value_len`] is not 0 its value bits are consumed and
    /// decoded as well, else the caller reads them.
    #[inline]
    fn decode(&self, b: &mut Bits) -> R<Lookup> {
        b.fill();
        let e = Lookup(self.fast[b.peek(FAST_BITS) as usize]);
        if e.value_len() != 0 {
            b.consume(e.value_len());
            return Ok(e);
        }
        if e.code_len() != 0 {
            b.consume(e.code_len());
            return Ok(e);
        }
        let mut code = 0i32;
        for l in 1..=16 {
            code = (code << 1) | b.take(1) as i32;
            if code <= self.maxcode[l] {
                let i = (self.valptr[l] + code - self.mincode[l]) as usize;
                return self
                    .vals
                    .get(i)
                    .map(|&sym| Lookup(sym as u32))
                    .ok_or(JpegError::Invalid("bad Huffman code".into()));
            }
        }
        invalid("bad Huffman code")
    }
}

/// Entropy-coded segment reader: removes stuffed zero bytes and stops at markers.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    nbits: u32,
    /// Zero bits fed after a marker or the end of the data.
    pad: u32,
    at_marker: bool,
}

impl<'a> Bits<'a> {
    /// Makes at least 32 bits available (a code and its value bits).
    #[inline]
    fn fill(&mut self) {
        if self.nbits >= 32 {
            return;
        }
        // Fast path: eight bytes with no 0xFF (no stuffing, no marker).
        if !self.at_marker {
            if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
                let v = u64::from_be_bytes(chunk.try_into().expect("8 bytes"));
                let has_ff = (!v).wrapping_sub(0x0101_0101_0101_0101) & v & 0x8080_8080_8080_8080;
                if has_ff == 0 {
                    // Whole bytes that fit; the partial last byte's bits
                    // are the same ones the next fill ORs in again.
                    self.acc |= v >> self.nbits;
                    self.pos += ((63 - self.nbits) >> 3) as usize;
                    self.nbits |= 56;
                    return;
                }
            }
        }
        while self.nbits <= 56 {
            let mut byte = None;
            if !self.at_marker && self.pos < self.data.len() {
                let b = self.data[self.pos];
                if b != 0xFF {
                    byte = Some(b);
                    self.pos += 1;
                } else {
                    match self.data.get(self.pos + 1) {
                        Some(0x00) => {
                            byte = Some(0xFF);
                            self.pos += 2;
                        }
                        Some(_) => self.at_marker = true,
                        None => self.pos = self.data.len(),
                    }
                }
            }
            if byte.is_none() {
                self.pad += 8;
            }
            self.acc |= (byte.unwrap_or(0) as u64) << (56 - self.nbits);
            self.nbits += 8;
        }
    }

    #[inline]
    fn peek(&self, n: u32) -> u32 {
        (self.acc >> (64 - n)) as u32
    }

    #[inline]
    fn consume(&mut self, n: u32) {
        self.acc <<= n;
        self.nbits -= n;
    }

    #[inline]
    fn take(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        self.fill();
        let v = self.peek(n);
        self.consume(n);
        v
    }

    /// Consumed bits that were not in the data.
    fn overrun(&self) -> bool {
        self.pad > self.nbits
    }

    /// Drops buffered bits and steps over the RSTn marker expected next.
    fn restart(&mut self) -> R<()> {
        self.acc = 0;
        self.nbits = 0;
        self.pad = 0;
        self.at_marker = false;
        while self.pos < self.data.len()
            && self.data[self.pos] == 0xFF
            && self.data.get(self.pos + 1) == Some(&0xFF)
        {
            self.pos += 1;
        }
        match self.data.get(self.pos..self.pos + 2) {
            Some([0xFF, m]) if (0xD0..=0xD7).contains(m) => {
                self.pos += 2;
                Ok(())
            }
            None => invalid("file ends inside the image data (truncated)"),
            _ => unsupported("restart marker missing"),
        }
    }
}

#[inline]
fn extend(v: u32, s: u32) -> i32 {
    if s == 0 {
        0
    } else if v < 1 << (s - 1) {
        v as i32 - (1 << s) + 1
    } else {
        v as i32
    }
}

/// Decodes one scan starting at `pos` (after its header); returns the
/// position of the marker that ends it.
fn decode_scan(
    data: &[u8],
    pos: usize,
    hdr: &[u8],
    comps: &mut [Component],
    dc_tables: &[Option<Huffman>; 4],
    ac_tables: &[Option<Huffman>; 4],
    restart_interval: usize,
) -> R<usize> {
    let ns = *hdr
        .first()
        .ok_or(JpegError::Invalid("empty scan header".into()))? as usize;
    if ns == 0 || ns > 4 || hdr.len() < 1 + 2 * ns + 3 {
        return invalid("bad scan header");
    }
    let (ss, se, ahal) = (hdr[1 + 2 * ns], hdr[2 + 2 * ns], hdr[3 + 2 * ns]);
    if ss != 0 || se != 63 || ahal != 0 {
        return unsupported("spectral selection or successive approximation in a sequential file");
    }
    let mut members = Vec::with_capacity(ns);
    for i in 0..ns {
        let (id, t) = (hdr[1 + 2 * i], hdr[2 + 2 * i]);
        let ci = comps
            .iter()
            .position(|c| c.id == id)
            .ok_or_else(|| JpegError::Invalid(format!("scan names unknown component {id}")))?;
        if comps[ci].scanned {
            return invalid(format!("component {id} appears in more than one scan"));
        }
        let (td, ta) = ((t >> 4) as usize, (t & 15) as usize);
        let dc = dc_tables.get(td).and_then(|t| t.as_ref());
        let ac = ac_tables.get(ta).and_then(|t| t.as_ref());
        let (Some(dc), Some(ac)) = (dc, ac) else {
            return invalid(format!(
                "scan uses an undefined Huffman table (component {id})"
            ));
        };
        members.push((ci, dc, ac));
    }
    let mut bits = Bits {
        data,
        pos,
        acc: 0,
        nbits: 0,
        pad: 0,
        at_marker: false,
    };
    let mut preds = [0i32; 4];
    // Interleaved scans walk MCUs; a single-component scan walks the
    // component's own blocks (not padded to MCUs).
    let (units_x, units_y) = if ns == 1 {
        let c = &comps[members[0].0];
        (c.bw, c.bh)
    } else {
        let c = &comps[members[0].0];
        (c.bw_pad / c.h, c.bh_pad / c.v)
    };
    let mut units = 0usize;
    for uy in 0..units_y {
        for ux in 0..units_x {
            if restart_interval > 0 && units > 0 && units.is_multiple_of(restart_interval) {
                check_overrun(&bits)?;
                bits.restart()?;
                preds = [0; 4];
            }
            units += 1;
            for (m, &(ci, dc, ac)) in members.iter().enumerate() {
                let (h, v) = if ns == 1 {
                    (1, 1)
                } else {
                    (comps[ci].h, comps[ci].v)
                };
                for by in 0..v {
                    for bx in 0..h {
                        let c = &mut comps[ci];
                        let (x, y) = (ux * h + bx, uy * v + by);
                        if x < c.bw && y < c.bh {
                            let at = y * c.bw + x;
                            let bands = &mut c.bands;
                            decode_block(&mut bits, dc, ac, &mut preds[m], |k, v| {
                                bands[k][at] = v
                            })?;
                        } else {
                            decode_block(&mut bits, dc, ac, &mut preds[m], |_, _| {})?;
                        }
                    }
                }
            }
        }
        check_overrun(&bits)?;
    }
    check_overrun(&bits)?;
    for &(ci, _, _) in &members {
        comps[ci].scanned = true;
    }
    // Continue after the scan: the marker that ended it.
    Ok(bits.pos)
}

fn check_overrun(bits: &Bits) -> R<()> {
    if bits.overrun() {
        if !bits.at_marker {
            return invalid("file ends inside the image data (truncated)");
        }
        return invalid("image data ends early (corrupt entropy-coded segment)");
    }
    Ok(())
}

/// Decodes one block, handing each coefficient that may be non-zero to
/// `put(zigzag index, value)` (the DC always; the block starts at zero).
#[inline]
fn decode_block(
    bits: &mut Bits,
    dc: &Huffman,
    ac: &Huffman,
    pred: &mut i32,
    mut put: impl FnMut(usize, i16),
) -> R<()> {
    let e = dc.decode(bits)?;
    let t = e.symbol() as u32;
    if t > 15 {
        return invalid("bad DC size");
    }
    let diff = if e.value_len() != 0 {
        e.value() as i32
    } else {
        extend(bits.take(t), t)
    };
    *pred += diff;
    put(
        0,
        i16::try_from(*pred).map_err(|_| JpegError::Invalid("DC value out of range".into()))?,
    );
    let mut k = 1;
    while k < 64 {
        let e = ac.decode(bits)?;
        let rs = e.symbol() as u32;
        let (r, s) = ((rs >> 4) as usize, rs & 15);
        if e.value_len() != 0 {
            k += r;
            if k > 63 {
                return invalid("AC coefficient index past 63");
            }
            put(k, e.value());
            k += 1;
            continue;
        }
        if s == 0 {
            if r == 15 {
                k += 16;
                continue;
            }
            break;
        }
        k += r;
        if k > 63 {
            return invalid("AC coefficient index past 63");
        }
        put(k, extend(bits.take(s), s) as i16);
        k += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{load_bytes, SourceOptions};

    /// SOI, one DHT segment (DC table 0) with `counts` and `vals`, EOI.
    fn jpeg_with_dht(counts: [u8; 16], vals: &[u8]) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xC4];
        out.extend(((2 + 1 + 16 + vals.len()) as u16).to_be_bytes());
        out.push(0x00);
        out.extend(counts);
        out.extend(vals);
        out.extend([0xFF, 0xD9]);
        out
    }

    #[test]
    fn a_component_scanned_twice_is_an_error() {
        // One scan per component; point the second scan at the first's
        // component, whose bands already hold coefficients.
        let mut bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/photos/jpeg-variants/flower_small.q85_420_non_interleaved.jpg"
        ))
        .unwrap();
        let scans: Vec<usize> = (0..bytes.len() - 1)
            .filter(|&i| bytes[i] == 0xFF && bytes[i + 1] == 0xDA)
            .collect();
        assert_eq!(scans.len(), 3, "one scan per component");
        assert!(read_coefficients(&bytes, u64::MAX).is_ok());
        bytes[scans[1] + 5] = bytes[scans[0] + 5];
        let err = format!("{:?}", read_coefficients(&bytes, u64::MAX).unwrap_err());
        assert!(err.contains("more than one scan"), "{err}");
    }

    #[test]
    fn over_subscribed_dht_is_an_error_naming_the_file() {
        // Three 1-bit codes: the third one used to index past the fast table.
        let mut counts = [0u8; 16];
        counts[0] = 3;
        let bytes = jpeg_with_dht(counts, &[0, 1, 2]);
        match read_coefficients(&bytes, 1 << 20) {
            Err(JpegError::Invalid(reason)) => {
                assert!(reason.contains("over-subscribed"), "{reason}")
            }
            other => panic!("expected an invalid-file error, got {other:?}"),
        }
        let err = load_bytes("photos/bad-dht.jpg", &bytes, &SourceOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("photos/bad-dht.jpg"), "{err}");
        assert!(err.contains("over-subscribed"), "{err}");
    }

    #[test]
    fn over_subscription_past_the_fast_bits_is_rejected_too() {
        // 2 codes of length 1 fill the space; one more of length 12 does not fit.
        let mut counts = [0u8; 16];
        counts[0] = 2;
        counts[11] = 1;
        let bytes = jpeg_with_dht(counts, &[0, 1, 2]);
        assert!(matches!(
            read_coefficients(&bytes, 1 << 20),
            Err(JpegError::Invalid(_))
        ));
    }

    #[test]
    fn complete_dht_builds_fast_and_slow_paths() {
        // Lengths 1, 2, 11, 11: the last two only on the slow path.
        let mut counts = [0u8; 16];
        counts[0] = 1;
        counts[1] = 1;
        counts[10] = 2;
        // Symbol 0x05 (size 5) fits with its value bits; 0xF0 (a run of
        // 16 zeros) has none.
        let h = Huffman::new(&counts, &[0x05, 0xF0, 7, 8]).unwrap();
        let e = Lookup(h.fast[0b0_10000 << 4]);
        assert_eq!((e.symbol(), e.value_len(), e.value()), (0x05, 6, 16));
        assert_eq!(h.fast[0b10 << 8], 2 << 8 | 0xF0);
        assert_eq!(h.fast[0b11 << 8], 0);
        assert_eq!(
            (h.mincode[11], h.maxcode[11], h.valptr[11]),
            (0b11000000000, 0b11000000001, 2)
        );
    }
}
