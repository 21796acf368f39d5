//! Canonical Huffman codes over byte symbols.
//!
//! [`CanonicalCode`] is the one place where a code is built from declared
//! code-length counts: the band codes stored in table files and the DHT
//! tables of source JPEGs both come from untrusted bytes, and both go
//! through its Kraft check before any lookup table is filled.
//!
//! Band codes are limited to 12-bit codes so that decoding is one lookup in
//! a 4,096-entry table. Such a code is serialised like a JPEG DHT segment:
//! 12 counts (how many codes of each length 1..=12), then the symbols in
//! code order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Longest band code, in bits. 12 keeps the decode table at 8 KiB (L1-resident).
pub const MAX_CODE_LEN: u32 = 12;
const LUT_SIZE: usize = 1 << MAX_CODE_LEN;

/// Longest code any [`CanonicalCode`] may hold (JPEG's limit).
pub const MAX_CANONICAL_LEN: usize = 16;

/// A validated canonical prefix code: symbols in code order with their
/// lengths and codes, as a DHT segment declares them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalCode {
    /// `(symbol, length, code)` in code order; every code is below `1 << length`.
    entries: Vec<(u8, u8, u16)>,
}

impl CanonicalCode {
    /// Builds the code from `counts[l - 1]` codes of length `l` (at most
    /// 16 lengths) and the symbols in code order. Rejects tables whose
    /// counts do not match the symbols or over-subscribe the code space
    /// (more codes than the lengths leave room for), which would otherwise
    /// hand out codes that do not fit their length.
    pub fn from_counts(counts: &[u8], symbols: &[u8]) -> Result<Self, String> {
        if counts.len() > MAX_CANONICAL_LEN {
            return Err(format!(
                "{} code lengths, at most {MAX_CANONICAL_LEN}",
                counts.len()
            ));
        }
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if total != symbols.len() {
            return Err(format!(
                "Huffman table counts say {total} symbols, it lists {}",
                symbols.len()
            ));
        }
        if total > 256 {
            return Err(format!("Huffman table has {total} symbols, at most 256"));
        }
        let mut entries = Vec::with_capacity(total);
        let mut syms = symbols.iter();
        let mut code = 0u32;
        for (i, &count) in counts.iter().enumerate() {
            let len = i as u32 + 1;
            if code + count as u32 > 1 << len {
                return Err(format!(
                    "over-subscribed Huffman table: {count} codes of length {len} do not fit"
                ));
            }
            for sym in syms.by_ref().take(count as usize) {
                entries.push((*sym, len as u8, code as u16));
                code += 1;
            }
            code <<= 1;
        }
        Ok(CanonicalCode { entries })
    }

    /// `(symbol, length, code)` in code order.
    pub fn iter(&self) -> impl Iterator<Item = (u8, u8, u16)> + '_ {
        self.entries.iter().copied()
    }

    /// Number of symbols with a code.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no symbol has a code.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A `1 << bits` (at most 12) table of [`Lookup`] entries for symbols
    /// that are JPEG run/size bytes: the entry for the next `bits` bits
    /// holds the symbol and its code length (0 where no code of at most
    /// `bits` bits starts with them) and, when the code and the symbol's
    /// `size` extra bits both lie within the `bits`, their sum and the
    /// decoded value too, so a typical value costs one lookup.
    pub fn value_lookup_table(&self, bits: u32) -> Box<[u32]> {
        assert!(bits <= MAX_CODE_LEN, "lookup entries hold lengths up to 12");
        let mut lut = vec![0u32; 1 << bits].into_boxed_slice();
        for &(sym, len, code) in &self.entries {
            let len = len as u32;
            if len > bits {
                continue;
            }
            let first = (code as usize) << (bits - len);
            let plain = (len << 8) | sym as u32;
            lut[first..first + (1 << (bits - len))].fill(plain);
            // A zero run of 16+ and end-of-band have size 0: no value.
            let size = (sym & 15) as u32;
            let total = len + size;
            if size == 0 || total > bits {
                continue;
            }
            for extra in 0..1u32 << size {
                let v = if extra < 1 << (size - 1) {
                    extra as i32 - (1 << size) + 1
                } else {
                    extra as i32
                };
                let first = (((code as usize) << size) | extra as usize) << (bits - total);
                let entry = plain | total << 12 | (v as i16 as u16 as u32) << 16;
                lut[first..first + (1 << (bits - total))].fill(entry);
            }
        }
        lut
    }
}

/// Symbol frequencies of one band column.
pub type Histogram = [u64; 256];

/// A canonical prefix code for the encoder: length and code per symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HuffmanCode {
    lengths: [u8; 256],
    codes: [u16; 256],
    /// The same code in code order, which builds the decode table.
    canonical: CanonicalCode,
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
        if let Some(&l) = lengths.iter().find(|&&l| l as u32 > MAX_CODE_LEN) {
            return Err(format!("code length {l} over {MAX_CODE_LEN}"));
        }
        let mut order: Vec<usize> = (0..256).filter(|&s| lengths[s] > 0).collect();
        order.sort_by_key(|&s| (lengths[s], s));
        let mut counts = [0u16; MAX_CODE_LEN as usize];
        for &s in &order {
            counts[lengths[s] as usize - 1] += 1;
        }
        // The serialised form holds a count in one byte; only 256 codes of
        // length 8 exceed it, and the limiter never produces that.
        let counts: Vec<u8> = counts
            .iter()
            .map(|&c| u8::try_from(c).map_err(|_| format!("{c} codes of one length")))
            .collect::<Result<_, _>>()?;
        let symbols: Vec<u8> = order.iter().map(|&s| s as u8).collect();
        let canonical = CanonicalCode::from_counts(&counts, &symbols)?;
        let mut codes = [0u16; 256];
        for (sym, _, code) in canonical.iter() {
            codes[sym as usize] = code;
        }
        Ok(HuffmanCode {
            lengths,
            codes,
            canonical,
        })
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
        for (_, len, _) in self.canonical.iter() {
            counts[len as usize - 1] += 1;
        }
        let mut out = counts.to_vec();
        out.extend(self.canonical.iter().map(|(sym, _, _)| sym));
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
        HuffmanDecoder {
            lut: self.canonical.value_lookup_table(MAX_CODE_LEN),
        }
    }
}

/// Decode table indexed by the next 12 bits. An entry holds the symbol
/// (bits 0-7) and its code length (bits 8-11; 0 where no code starts with
/// those bits); when the symbol's extra bits also lie within the 12, it
/// holds their sum (bits 12-15) and the decoded value (bits 16-31, i16),
/// so a typical value of a dense band costs one lookup.
#[derive(Debug, Clone)]
pub struct HuffmanDecoder {
    lut: Box<[u32]>,
}

/// One entry of a [`HuffmanDecoder`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup(pub u32);

impl Lookup {
    /// The symbol (meaningful when [`Lookup::code_len`] is not 0).
    #[inline(always)]
    pub fn symbol(self) -> u8 {
        self.0 as u8
    }

    /// Length of the symbol's code; 0 when the bits start no code.
    #[inline(always)]
    pub fn code_len(self) -> u32 {
        (self.0 >> 8) & 15
    }

    /// Code plus extra bits when the value is decoded too, else 0.
    #[inline(always)]
    pub fn value_len(self) -> u32 {
        (self.0 >> 12) & 15
    }

    /// The decoded value (when [`Lookup::value_len`] is not 0).
    #[inline(always)]
    pub fn value(self) -> i16 {
        (self.0 >> 16) as u16 as i16
    }
}

impl HuffmanDecoder {
    /// Looks up the next 12 bits (`peek` right-aligned).
    #[inline(always)]
    pub fn lookup(&self, peek: u32) -> Lookup {
        Lookup(self.lut[peek as usize & (LUT_SIZE - 1)])
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
    // 256 codes of length 8 (a flat histogram over every byte) cannot be
    // written with one-byte counts: give the rarest symbol a 9-bit code.
    if len.len() == 256 && len.iter().all(|&l| l == 8) {
        len[by_freq[0]] = 9;
    }
    for (i, &s) in used.iter().enumerate() {
        lengths[s] = len[i] as u8;
    }
    lengths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_whose_bits_fit_are_decoded_by_the_lookup() {
        // Symbol 0x12 (run 1, size 2) with a 1-bit code, 0x05 (size 5)
        // with 2 bits, EOB and a long zero run with 3 bits each.
        let mut lengths = [0u8; 256];
        lengths[0x12] = 1;
        lengths[0x05] = 2;
        lengths[0x00] = 3;
        lengths[0x10] = 3;
        let code = HuffmanCode::from_lengths(lengths).unwrap();
        let dec = code.decoder();
        let at = |sym: u8, extra: u32, n: u32| {
            let l = code.len(sym);
            dec.lookup(((code.code(sym) << n) | extra) << (MAX_CODE_LEN - l - n))
        };
        // Extra bits 00 of size 2 are -3, 11 are +3 (JPEG's sign rule).
        assert_eq!(
            (at(0x12, 0b00, 2).value(), at(0x12, 0b00, 2).value_len()),
            (-3, 3)
        );
        assert_eq!(at(0x12, 0b11, 2).value(), 3);
        assert_eq!(at(0x12, 0b10, 2).symbol(), 0x12);
        assert_eq!(
            (
                at(0x05, 0b10000, 5).value(),
                at(0x05, 0b10000, 5).value_len()
            ),
            (16, 7)
        );
        assert_eq!(at(0x05, 0b01111, 5).value(), -16);
        // Size 0 symbols take the slow path, with their code length.
        assert_eq!(
            (at(0x00, 0, 0).value_len(), at(0x00, 0, 0).code_len()),
            (0, 3)
        );
        assert_eq!(at(0x10, 0, 0).value_len(), 0);
    }

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
    fn flat_histogram_over_every_byte_serialises() {
        let code = HuffmanCode::from_histogram(&[10u64; 256]);
        assert!((kraft(&code) - 1.0).abs() < 1.0 / 256.0);
        assert_eq!(HuffmanCode::from_bytes(&code.to_bytes()).unwrap(), code);
    }

    #[test]
    fn over_subscribed_counts_are_rejected_before_any_table_is_built() {
        // Three 1-bit codes: only two exist.
        let err = CanonicalCode::from_counts(&[3, 0, 0], &[1, 2, 3]).unwrap_err();
        assert!(err.contains("over-subscribed"), "{err}");
        // Fits at its own length, but leaves no room for the next one.
        assert!(CanonicalCode::from_counts(&[1, 2, 1], &[1, 2, 3, 4]).is_err());
        assert!(CanonicalCode::from_counts(&[1, 1, 2], &[1, 2, 3, 4]).is_ok());
        assert!(CanonicalCode::from_counts(&[1, 1], &[1]).is_err());
        assert!(CanonicalCode::from_counts(&[0; 17], &[]).is_err());
        let mut bytes = vec![0u8; 12];
        bytes[0] = 3;
        bytes.extend([1, 2, 3]);
        assert!(HuffmanCode::from_bytes(&bytes).is_err());
    }

    #[test]
    fn lookup_table_leaves_longer_codes_to_the_slow_path() {
        // Lengths 1, 2, 3, 3: a complete code.
        let code = CanonicalCode::from_counts(&[1, 1, 2], &[10, 20, 30, 40]).unwrap();
        let lut = code.value_lookup_table(2);
        assert_eq!(&*lut, &[1 << 8 | 10, 1 << 8 | 10, 2 << 8 | 20, 0]);
        let lut = code.value_lookup_table(3);
        assert_eq!(lut[7], 3 << 8 | 40);
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
            assert_eq!(e.code_len(), l);
            assert_eq!(e.symbol(), s);
        }
    }
}
