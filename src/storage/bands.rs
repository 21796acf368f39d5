//! The encoding of one band of one image: a Huffman-coded run/size stream.
//!
//! A band is the sequence of coefficient `k` over the blocks of a plane in
//! raster order. Its values are small integers, dense in low bands and
//! mostly zero in high bands, so each value is coded as JPEG codes AC
//! coefficients, but along the block sequence: a symbol `(run << 4) | size`
//! (`run` zeros, then a non-zero value of `size` bits) followed by `size`
//! raw bits. Two extensions: symbol `(k << 4) | 0` with `k >= 1` is a run of
//! `16..2^19` zeros (length in `k + 3` extra bits, top bit implied), and
//! `0x00` means "the rest of the band is zero". Band 0 (DC) first replaces
//! each value by its difference from a prediction (the mean of the left and
//! upper neighbour blocks). Each column has its own code (built per file),
//! so dense and sparse bands each get a code fitted to their statistics.

use super::huffman::{Histogram, HuffmanCode, HuffmanDecoder, MAX_CODE_LEN};

const EOB: u8 = 0x00;
const LONG_RUN_MIN: usize = 16;
const LONG_RUN_MAX: usize = (1 << 19) - 1;
const MAX_SIZE: u32 = 15;

/// Prediction for DC block `b` (in the row starting at block `row_start`,
/// rows of `w` blocks) from its left and upper neighbours.
#[inline(always)]
fn dc_prediction(v: &[i16], b: usize, row_start: usize, w: usize) -> i32 {
    match (b > row_start, row_start > 0) {
        (true, true) => (v[b - 1] as i32 + v[b - w] as i32) >> 1,
        (true, false) => v[b - 1] as i32,
        (false, true) => v[b - w] as i32,
        (false, false) => 0,
    }
}

/// The block ranges of each row of blocks (walking rows avoids a division
/// per block).
fn block_rows(n: usize, w: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n).step_by(w).map(move |s| s..(s + w).min(n))
}

/// Blocks in the first half of a band of `n` blocks coded as two halves.
pub fn split_point(n: usize) -> usize {
    n.div_ceil(2)
}

/// The run/size symbols of `values`, either as one sequence or as two
/// independent halves (see [`split_point`]); returns how many tokens the
/// first half has when split.
fn symbols<T: Copy + Into<i32>>(
    values: &[T],
    split: bool,
    out: &mut Vec<u32>,
) -> Result<Option<usize>, String> {
    let start = out.len();
    let mut push = |s: u8, extra: u32| out.push((s as u32) << 24 | extra);
    if !split {
        run_symbols(values, &mut push)?;
        return Ok(None);
    }
    let mid = split_point(values.len());
    run_symbols(&values[..mid], &mut push)?;
    let first = out.len() - start;
    run_symbols(&values[mid..], |s, extra| {
        out.push((s as u32) << 24 | extra)
    })?;
    Ok(Some(first))
}

/// The run/size symbols of a sequence of values (see the module comment).
/// Non-zero values are found 64 at a time through a bit mask, so neither
/// dense nor sparse bands pay a hard-to-predict branch per value.
#[inline]
fn run_symbols<T: Copy + Into<i32>>(
    values: &[T],
    mut emit: impl FnMut(u8, u32),
) -> Result<(), String> {
    // Index just after the last non-zero value: the zero run starts there.
    let mut next = 0usize;
    for (c, chunk) in values.chunks(64).enumerate() {
        let mut mask = chunk
            .iter()
            .enumerate()
            .fold(0u64, |m, (i, &x)| m | (((x.into() != 0) as u64) << i));
        while mask != 0 {
            let at = c * 64 + mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let mut run = at - next;
            next = at + 1;
            while run >= LONG_RUN_MIN {
                let chunk = run.min(LONG_RUN_MAX);
                let nbits = usize::BITS - chunk.leading_zeros() - 1; // 4..=18
                emit(((nbits - 3) << 4) as u8, (chunk - (1 << nbits)) as u32);
                run -= chunk;
            }
            let v: i32 = values[at].into();
            let size = u32::BITS - v.unsigned_abs().leading_zeros();
            if size > MAX_SIZE {
                return Err(format!("coefficient {v} out of the 15-bit range"));
            }
            let extra = if v > 0 {
                v as u32
            } else {
                (v + (1 << size) - 1) as u32
            };
            emit(((run as u32) << 4 | size) as u8, extra);
        }
    }
    if next < values.len() {
        emit(EOB, 0);
    }
    Ok(())
}

/// Appends the band's symbols to `out` as tokens: `symbol << 24 | extra
/// bits` (at most 19 of them, their count given by the symbol), a form
/// that does not depend on the code, so a band is walked once and its
/// tokens counted and coded later. With `split`, the two halves of the
/// band are separate sequences (coded as two streams that decode in
/// parallel); the result is then the first half's token count. Band 0
/// (DC) is predicted over the whole band first.
pub fn tokenize_band(
    values: &[i16],
    blocks_w: usize,
    dc: bool,
    split: bool,
    out: &mut Vec<u32>,
) -> Result<Option<usize>, String> {
    if !dc {
        return symbols(values, split, out);
    }
    let w = blocks_w.max(1);
    let mut residuals = Vec::with_capacity(values.len());
    for row in block_rows(values.len(), w) {
        let start = row.start;
        residuals.extend(row.map(|b| values[b] as i32 - dc_prediction(values, b, start, w)));
    }
    symbols(&residuals, split, out)
}

/// The number of extra bits that follow `symbol`.
#[inline]
fn extra_len(symbol: u8) -> u32 {
    match (symbol >> 4, symbol & 15) {
        (_, size @ 1..) => size as u32,
        (0, 0) => 0,            // end of band
        (k, 0) => k as u32 + 3, // a run of 16 or more zeros
    }
}

/// Adds the symbols of a band's tokens to `hist` (first pass of the per-file code).
pub fn count_tokens(tokens: &[u32], hist: &mut Histogram) {
    for &t in tokens {
        hist[(t >> 24) as usize] += 1;
    }
}

/// Appends the band coded from its tokens to `out`: one stream, or with
/// `first_half` (the first half's token count) the byte length of the
/// first half's stream (LEB128) and the two streams.
pub fn encode_band_tokens(
    tokens: &[u32],
    first_half: Option<usize>,
    code: &HuffmanCode,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let Some(first) = first_half else {
        return encode_tokens(tokens, code, out);
    };
    let (a, b) = tokens.split_at(first.min(tokens.len()));
    let mut stream = Vec::new();
    encode_tokens(a, code, &mut stream)?;
    let mut len = stream.len();
    while len >= 0x80 {
        out.push(len as u8 | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(&stream);
    encode_tokens(b, code, out)
}

/// Appends one stream coded from its tokens to `out`. Every symbol must
/// have a code.
fn encode_tokens(tokens: &[u32], code: &HuffmanCode, out: &mut Vec<u8>) -> Result<(), String> {
    let mut w = BitWriter::new(out);
    for &t in tokens {
        let s = (t >> 24) as u8;
        let l = code.len(s);
        if l == 0 {
            return Err(format!("symbol {s:#04x} has no code in the column's table"));
        }
        let n = extra_len(s);
        // Code and extra bits in one write: at most 12 + 18 bits.
        w.put((code.code(s) << n) | (t & 0xFF_FFFF), l + n);
    }
    w.finish();
    Ok(())
}

/// Decodes a band of `out.len()` values into `out`, which must be
/// zero-filled (only non-zero values are written: a fresh `vec![0; n]` is
/// zeroed once, not twice). `split` says the band is coded as two halves
/// (see [`encode_band_tokens`]): their streams are decoded in lockstep, so
/// the two chains of table lookups overlap. Errors (corrupt data) are
/// returned, never panics, whatever the bytes.
pub fn decode_band(
    data: &[u8],
    blocks_w: usize,
    dc: bool,
    split: bool,
    decoder: &HuffmanDecoder,
    out: &mut [i16],
) -> Result<(), String> {
    debug_assert!(
        out.iter().all(|&v| v == 0),
        "decode_band needs a zeroed buffer"
    );
    let n = out.len();
    if split {
        let (first_len, header) = read_length(data)?;
        let rest = &data[header..];
        if first_len > rest.len() {
            return Err(format!(
                "first half's stream is {first_len} bytes, the band has {} left",
                rest.len()
            ));
        }
        let (a, b) = rest.split_at(first_len);
        let mid = split_point(n);
        let mut sa = Stream::new(a, 0, mid);
        let mut sb = Stream::new(b, mid, n);
        while !sa.done() && !sb.done() {
            sa.step(decoder, out)?;
            sb.step(decoder, out)?;
        }
        sa.finish(decoder, out)?;
        sb.finish(decoder, out)?;
    } else {
        Stream::new(data, 0, n).finish(decoder, out)?;
    }
    if dc {
        // Predictions read the already restored neighbours.
        let w = blocks_w.max(1);
        for row in block_rows(n, w) {
            let start = row.start;
            for b in row {
                let v = out[b] as i32 + dc_prediction(out, b, start, w);
                out[b] = i16::try_from(v).map_err(|_| format!("DC value {v} out of range"))?;
            }
        }
    }
    Ok(())
}

/// A LEB128 length at the start of `data`: (value, bytes it took).
fn read_length(data: &[u8]) -> Result<(usize, usize), String> {
    let mut v = 0usize;
    for (i, &byte) in data.iter().enumerate().take(8) {
        v |= ((byte & 0x7F) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err("bad length of the first half's stream".into())
}

/// One coded sequence being decoded into `out[i..end]`.
struct Stream<'a> {
    r: BitReader<'a>,
    i: usize,
    start: usize,
    end: usize,
}

impl<'a> Stream<'a> {
    fn new(data: &'a [u8], start: usize, end: usize) -> Self {
        Stream {
            r: BitReader::new(data),
            i: start,
            start,
            end,
        }
    }

    #[inline(always)]
    fn done(&self) -> bool {
        self.i >= self.end
    }

    fn past_end(&self, what: &str) -> String {
        format!(
            "{what} past the end of the band ({} values)",
            self.end - self.start
        )
    }

    /// Decodes one symbol (and its value); end of band finishes the stream.
    #[inline(always)]
    fn step(&mut self, decoder: &HuffmanDecoder, out: &mut [i16]) -> Result<(), String> {
        let r = &mut self.r;
        r.refill();
        let e = decoder.lookup(r.peek(MAX_CODE_LEN));
        // Fast path: code and value in one lookup (most values of dense bands).
        let fast = e.value_len();
        if fast != 0 {
            r.consume(fast);
            self.i += (e.symbol() >> 4) as usize;
            if self.i >= self.end {
                return Err(self.past_end("value"));
            }
            out[self.i] = e.value();
            self.i += 1;
            return Ok(());
        }
        let len = e.code_len();
        if len == 0 {
            return Err(format!(
                "invalid code at value {} of {}",
                self.i - self.start,
                self.end - self.start
            ));
        }
        r.consume(len);
        let sym = e.symbol();
        let size = (sym & 15) as u32;
        let run = (sym >> 4) as usize;
        if size == 0 {
            if run == 0 {
                self.i = self.end; // end of band
                return Ok(());
            }
            let nbits = run as u32 + 3;
            self.i += (1usize << nbits) | r.take(nbits) as usize;
            if self.i > self.end {
                return Err(self.past_end("zero run"));
            }
            return Ok(());
        }
        self.i += run;
        if self.i >= self.end {
            return Err(self.past_end("value"));
        }
        let bits = r.take(size) as i32;
        let v = if bits < (1 << (size - 1)) {
            bits - (1 << size) + 1
        } else {
            bits
        };
        out[self.i] = v as i16;
        self.i += 1;
        Ok(())
    }

    /// Decodes the rest of the stream and checks it did not run past its bytes.
    fn finish(mut self, decoder: &HuffmanDecoder, out: &mut [i16]) -> Result<(), String> {
        while !self.done() {
            self.step(decoder, out)?;
        }
        if self.r.overran() {
            return Err(format!(
                "band data ends early ({} bytes)",
                self.r.data.len()
            ));
        }
        Ok(())
    }
}

/// MSB-first bit writer.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    nbits: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            nbits: 0,
        }
    }

    /// Appends the low `n` (<= 32) bits of `bits`; flushes whole 32-bit words.
    #[inline]
    fn put(&mut self, bits: u32, n: u32) {
        self.acc = (self.acc << n) | (bits as u64 & ((1u64 << n) - 1));
        self.nbits += n;
        if self.nbits >= 32 {
            self.nbits -= 32;
            let word = (self.acc >> self.nbits) as u32;
            self.out.extend_from_slice(&word.to_be_bytes());
        }
    }

    /// Writes the remaining bits, the last byte padded with zero bits.
    fn finish(mut self) {
        while self.nbits >= 8 {
            self.nbits -= 8;
            self.out.push((self.acc >> self.nbits) as u8);
        }
        if self.nbits > 0 {
            self.out.push((self.acc << (8 - self.nbits)) as u8);
        }
    }
}

/// MSB-first bit reader with a 64-bit window; reads past the end as zeros
/// and remembers that it did, so truncation is detected once at the end.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    nbits: u32,
    pad_bits: u32,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            acc: 0,
            nbits: 0,
            pad_bits: 0,
        }
    }

    /// Makes at least 56 bits available.
    #[inline(always)]
    fn refill(&mut self) {
        if self.nbits >= 32 {
            return;
        }
        if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
            let v = u64::from_be_bytes(chunk.try_into().expect("8 bytes"));
            self.acc |= v >> self.nbits;
            self.pos += ((63 - self.nbits) >> 3) as usize;
            self.nbits |= 56;
        } else {
            while self.nbits <= 56 {
                let byte = match self.data.get(self.pos) {
                    Some(&b) => b,
                    None => {
                        self.pad_bits += 8;
                        0
                    }
                };
                self.pos += 1;
                self.acc |= (byte as u64) << (56 - self.nbits);
                self.nbits += 8;
            }
        }
    }

    #[inline(always)]
    fn peek(&self, n: u32) -> u32 {
        (self.acc >> (64 - n)) as u32
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.acc <<= n;
        self.nbits -= n;
    }

    /// Takes `n` (0..=19) bits; the caller refilled beforehand.
    #[inline(always)]
    fn take(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let v = self.peek(n);
        self.consume(n);
        v
    }

    /// True when more bits were consumed than the data holds.
    fn overran(&self) -> bool {
        self.pad_bits > self.nbits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The band coded with a code fitted to it, as one stream or two halves.
    fn encode(values: &[i16], blocks_w: usize, dc: bool, split: bool) -> (Vec<u8>, HuffmanCode) {
        let mut tokens = Vec::new();
        let first = tokenize_band(values, blocks_w, dc, split, &mut tokens).unwrap();
        assert_eq!(first.is_some(), split);
        let mut hist = [0u64; 256];
        count_tokens(&tokens, &mut hist);
        let code = HuffmanCode::from_histogram(&hist);
        let mut bytes = Vec::new();
        encode_band_tokens(&tokens, first, &code, &mut bytes).unwrap();
        (bytes, code)
    }

    /// Round-trips the band both ways; the size as one stream.
    fn round_trip(values: &[i16], blocks_w: usize, dc: bool) -> usize {
        let mut sizes = [0; 2];
        for split in [false, true] {
            let (bytes, code) = encode(values, blocks_w, dc, split);
            let mut out = vec![0i16; values.len()];
            decode_band(&bytes, blocks_w, dc, split, &code.decoder(), &mut out).unwrap();
            assert_eq!(out, values, "split: {split}");
            sizes[split as usize] = bytes.len();
        }
        // Two streams cost a length, a padded byte and an end of band more.
        assert!(sizes[1] <= sizes[0] + 4, "{sizes:?}");
        sizes[0]
    }

    #[test]
    fn dense_sparse_and_extreme_bands_round_trip() {
        let dense: Vec<i16> = (0..999).map(|i| ((i * 7919) % 61) as i16 - 30).collect();
        round_trip(&dense, 37, false);
        round_trip(&dense, 37, true);
        let mut sparse = vec![0i16; 100_000];
        sparse[3] = 1;
        sparse[40_000] = -2;
        sparse[99_998] = 5;
        let n = round_trip(&sparse, 1000, false);
        assert!(n < 30, "long zero runs cost a few bytes, got {n}");
        let extremes = [i16::MAX, -i16::MAX, 1, -1, 0, 0, 0, 1024, -1024];
        round_trip(&extremes, 3, false);
        assert_eq!(
            round_trip(&[0; 4096], 64, false),
            1,
            "all-zero band is one EOB"
        );
        round_trip(&[], 1, false);
        let mut smooth_dc: Vec<i16> = (0..64 * 64).map(|i| (i / 64 + i % 64) as i16).collect();
        let dc_bytes = round_trip(&smooth_dc, 64, true);
        let raw_bytes = round_trip(&smooth_dc, 64, false);
        assert!(
            dc_bytes * 3 < raw_bytes,
            "prediction pays off: {dc_bytes} vs {raw_bytes}"
        );
        smooth_dc[5] = i16::MIN + 1;
        round_trip(&smooth_dc, 64, false);
    }

    #[test]
    fn corrupt_or_truncated_data_is_an_error_not_a_panic() {
        let values: Vec<i16> = (0..500).map(|i| ((i * 31) % 9) as i16 - 4).collect();
        for split in [false, true] {
            let (bytes, code) = encode(&values, 10, true, split);
            let dec = code.decoder();
            let mut out = vec![0i16; 500];
            let mut decode = |data: &[u8], dc: bool| {
                out.fill(0);
                decode_band(data, 10, dc, split, &dec, &mut out)
            };
            assert!(decode(&bytes[..bytes.len() / 2], true).is_err());
            assert!(decode(&[], true).is_err());
            // Random garbage: any result is fine as long as it does not panic.
            let mut x = 12345u32;
            for len in 0..200 {
                let junk: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        (x >> 16) as u8
                    })
                    .collect();
                let _ = decode(&junk, true);
                let _ = decode(&junk, false);
            }
        }
        // Two streams: the first one's length must fit and be well formed.
        let (bytes, code) = encode(&values, 10, false, true);
        let mut out = vec![0i16; 500];
        let mut too_long = vec![0xFF, 0x7F];
        too_long.extend_from_slice(&bytes[1..]);
        let err = decode_band(&too_long, 10, false, true, &code.decoder(), &mut out).unwrap_err();
        assert!(err.contains("first half's stream"), "{err}");
        out.fill(0);
        let err = decode_band(&[0x80; 9], 10, false, true, &code.decoder(), &mut out).unwrap_err();
        assert!(err.contains("bad length"), "{err}");
    }

    #[test]
    fn symbols_without_code_are_reported() {
        let mut hist = [0u64; 256];
        hist[EOB as usize] = 1;
        let code = HuffmanCode::from_histogram(&hist);
        let mut tokens = Vec::new();
        tokenize_band(&[3, 0], 2, false, false, &mut tokens).unwrap();
        let mut bytes = Vec::new();
        assert!(encode_band_tokens(&tokens, None, &code, &mut bytes).is_err());
    }
}
