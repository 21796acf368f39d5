//! Canonical Huffman codes over byte symbols, limited to 12-bit codes so
//! that decoding is one lookup in a 4,096-entry table.
//!
//! A code is serialised like a JPEG DHT segment: 12 counts (how many codes
//! of each length 1..=12), then the symbols in code order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Longest code, in bits. 12 keeps the decode table at 8 KiB (L1-resident).
pub const MAX_CODE_LEN: u32 = 12;
const LUT_SIZE: usize = 1 << MAX_CODE_LEN;

/// Symbol frequencies of one band column.
pub type Histogram = [u64; 256];

/// A canonical prefix code for the encoder: length and code per symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HuffmanCode {
    lengths: [u8; 256],
    codes: [u16; 256],
}

impl HuffmanCode {
    /// The optimal length-limited code for `hist` (every symbol with a
    /// non-zero count gets a code).
    pub fn from_histogram(hist: &Histogram) -> Self {
        let lengths = limited_lengths(hist);
        Self::from_lengths(lengths).expect("constructed lengths satisfy Kraft")
    }

    /// Builds the canonical code for the given lengths (0 = symbol unused).
    pub fn from_lengths(lengths: [u8; 256]) -> Result<Self, String> {
        let mut kraft = 0u64;
        for &l in &lengths {
            if l as u32 > MAX_CODE_LEN {
                return Err(format!("code length {l} over {MAX_CODE_LEN}"));
            }
            if l > 0 {
                kraft += 1 << (MAX_CODE_LEN - l as u32);
            }
        }
        if kraft > LUT_SIZE as u64 {
            return Err("code lengths over-subscribe the code space".into());
        }
        let mut order: Vec<usize> = (0..256).filter(|&s| lengths[s] > 0).collect();
        order.sort_by_key(|&s| (lengths[s], s));
        let mut codes = [0u16; 256];
        let mut code = 0u32;
        let mut len = order.first().map_or(0, |&s| lengths[s] as u32);
        for &s in &order {
            let l = lengths[s] as u32;
            code <<= l - len;
            len = l;
            codes[s] = code as u16;
            code += 1;
        }
        Ok(HuffmanCode { lengths, codes })
    }

    /// Code length of `sym` in bits (0 = no code).
    #[inline]
    pub fn len(&self, sym: u8) -> u32 {
        self.lengths[sym as usize] as u32
    }

    /// Code of `sym`, right-aligned.
    #[inline]
    pub fn code(&self, sym: u8) -> u32 {
        self.codes[sym as usize] as u32
    }

    /// True when no symbol has a code.
    pub fn is_empty(&self) -> bool {
        self.lengths.iter().all(|&l| l == 0)
    }

    /// DHT-like bytes: 12 counts, then the symbols ordered by (length, symbol).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut counts = [0u8; MAX_CODE_LEN as usize];
        let mut order: Vec<usize> = (0..256).filter(|&s| self.lengths[s] > 0).collect();
        order.sort_by_key(|&s| (self.lengths[s], s));
        for &s in &order {
            counts[self.lengths[s] as usize - 1] += 1;
        }
        let mut out = counts.to_vec();
        out.extend(order.iter().map(|&s| s as u8));
        out
    }

    /// Parses [`HuffmanCode::to_bytes`] output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let n = MAX_CODE_LEN as usize;
        if bytes.len() < n {
            return Err("code table shorter than its 12 counts".into());
        }
        let total: usize = bytes[..n].iter().map(|&c| c as usize).sum();
        if bytes.len() != n + total {
            return Err(format!(
                "code table has {} symbols, its counts say {total}",
                bytes.len() - n
            ));
        }
        let mut lengths = [0u8; 256];
        let mut syms = bytes[n..].iter();
        for (l, &count) in bytes[..n].iter().enumerate() {
            for _ in 0..count {
                let s = *syms.next().expect("length checked") as usize;
                if lengths[s] != 0 {
                    return Err(format!("symbol {s} listed twice in code table"));
                }
                lengths[s] = l as u8 + 1;
            }
        }
        Self::from_lengths(lengths)
    }

    /// The single-lookup decode table for this code.
    pub fn decoder(&self) -> HuffmanDecoder {
        let mut lut = vec![0u16; LUT_SIZE].into_boxed_slice();
        for s in 0..256 {
            let l = self.lengths[s] as u32;
            if l == 0 {
                continue;
            }
            let first = (self.codes[s] as usize) << (MAX_CODE_LEN - l);
            let entry = ((l as u16) << 8) | s as u16;
            lut[first..first + (1 << (MAX_CODE_LEN - l))].fill(entry);
        }
        HuffmanDecoder { lut }
    }
}

/// Decode table: the entry for the next 12 bits is `(length << 8) | symbol`,
/// 0 where no code starts with those bits.
#[derive(Debug, Clone)]
pub struct HuffmanDecoder {
    lut: Box<[u16]>,
}

impl HuffmanDecoder {
    /// Looks up the next 12 bits (`peek` right-aligned).
    #[inline(always)]
    pub fn lookup(&self, peek: u32) -> u16 {
        self.lut[peek as usize & (LUT_SIZE - 1)]
    }
}

/// Huffman code lengths for `hist`, limited to [`MAX_CODE_LEN`].
fn limited_lengths(hist: &Histogram) -> [u8; 256] {
    let mut lengths = [0u8; 256];
    let used: Vec<usize> = (0..256).filter(|&s| hist[s] > 0).collect();
    match used.len() {
        0 => return lengths,
        1 => {
            lengths[used[0]] = 1;
            return lengths;
        }
        _ => {}
    }
    // Plain Huffman: merge the two lightest nodes until one is left.
    let mut parent = vec![usize::MAX; used.len() * 2];
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = used
        .iter()
        .enumerate()
        .map(|(i, &s)| Reverse((hist[s], i)))
        .collect();
    let mut next = used.len();
    while heap.len() > 1 {
        let Reverse((fa, a)) = heap.pop().expect("len > 1");
        let Reverse((fb, b)) = heap.pop().expect("len > 1");
        parent[a] = next;
        parent[b] = next;
        heap.push(Reverse((fa + fb, next)));
        next += 1;
    }
    let mut depth = vec![0u32; used.len()];
    for (i, d) in depth.iter_mut().enumerate() {
        let mut n = i;
        while parent[n] != usize::MAX {
            n = parent[n];
            *d += 1;
        }
    }
    // Limit: clamp, then lengthen the cheapest codes until Kraft holds,
    // then shorten the most frequent ones while there is room.
    let cap = 1u64 << MAX_CODE_LEN;
    let mut len: Vec<u32> = depth.iter().map(|&d| d.min(MAX_CODE_LEN)).collect();
    let weight = |l: u32| 1u64 << (MAX_CODE_LEN - l);
    let mut kraft: u64 = len.iter().map(|&l| weight(l)).sum();
    let mut by_freq: Vec<usize> = (0..used.len()).collect();
    by_freq.sort_by_key(|&i| (hist[used[i]], Reverse(len[i])));
    while kraft > cap {
        // The least frequent symbol among the longest codes still below the limit.
        let i = *by_freq
            .iter()
            .filter(|&&i| len[i] < MAX_CODE_LEN)
            .max_by_key(|&&i| (len[i], Reverse(hist[used[i]])))
            .expect("a 12-bit limit fits 256 symbols");
        kraft -= weight(len[i]) - weight(len[i] + 1);
        len[i] += 1;
    }
    for &i in by_freq.iter().rev() {
        while len[i] > 1 && kraft + weight(len[i]) <= cap {
            kraft += weight(len[i]);
            len[i] -= 1;
        }
    }
    for (i, &s) in used.iter().enumerate() {
        lengths[s] = len[i] as u8;
    }
    lengths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kraft(code: &HuffmanCode) -> f64 {
        (0..=255u8)
            .filter(|&s| code.len(s) > 0)
            .map(|s| 0.5f64.powi(code.len(s) as i32))
            .sum()
    }

    #[test]
    fn skewed_histograms_are_limited_to_12_bits_and_complete() {
        // Fibonacci-like frequencies force a very deep plain Huffman tree.
        let mut hist = [0u64; 256];
        let (mut a, mut b) = (1u64, 1u64);
        for h in hist.iter_mut().take(40) {
            *h = a;
            (a, b) = (b, a + b);
        }
        let code = HuffmanCode::from_histogram(&hist);
        assert!((0..40).all(|s| (1..=12).contains(&code.len(s))));
        assert!((kraft(&code) - 1.0).abs() < 1e-12, "kraft {}", kraft(&code));
    }

    #[test]
    fn table_bytes_round_trip_and_single_symbol_gets_a_code() {
        let mut hist = [0u64; 256];
        hist[7] = 100;
        let one = HuffmanCode::from_histogram(&hist);
        assert_eq!(one.len(7), 1);
        hist[0] = 5;
        hist[200] = 1;
        let code = HuffmanCode::from_histogram(&hist);
        assert_eq!(HuffmanCode::from_bytes(&code.to_bytes()).unwrap(), code);
        assert!(HuffmanCode::from_bytes(&[1, 2]).is_err());
        let mut bad = code.to_bytes();
        bad.push(9);
        assert!(HuffmanCode::from_bytes(&bad).is_err());
    }

    #[test]
    fn decoder_finds_every_symbol() {
        let mut hist = [0u64; 256];
        for (s, h) in hist.iter_mut().enumerate() {
            *h = (s as u64 * 7919) % 1000 + 1;
        }
        let code = HuffmanCode::from_histogram(&hist);
        let dec = code.decoder();
        for s in 0..=255u8 {
            let l = code.len(s);
            let peek = code.code(s) << (MAX_CODE_LEN - l);
            let e = dec.lookup(peek);
            assert_eq!((e >> 8) as u32, l);
            assert_eq!(e as u8, s);
        }
    }
}
