//! The mutation engine: a small random generator and the edits it makes to an input.
//!
//! Design note: this is a coverage-free mutation fuzzer (like early AFL without its
//! instrumentation, or radamsa): it cannot steer towards new code paths, so it relies on good
//! seeds and on edits that keep inputs near the grammar — byte flips and "interesting" values
//! for the wire format (lengths, counts, compression pointers), line and token edits for the
//! text formats, and splices of two corpus entries. It needs nothing but stable Rust.

/// A xorshift64* generator: fast, seedable, good enough to pick edits.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is moved off the fixed point).
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    /// True with probability 1/`n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// Byte values that sit on boundaries of the wire format (label lengths, pointer tags, sign).
const INTERESTING_BYTES: [u8; 10] = [0x00, 0x01, 0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xFE, 0xFF, 0x29];
/// 16-bit values that matter to DNS: counts, sizes, types (OPT, TSIG, AXFR, IXFR, ANY, RRSIG).
const INTERESTING_U16: [u16; 14] = [0, 1, 2, 41, 250, 251, 252, 255, 46, 512, 1232, 4096, 0xC00C, 0xFFFF];

/// One random edit of a binary input; `others` are corpus entries to splice from.
pub fn mutate_bytes(rng: &mut Rng, input: &mut Vec<u8>, others: &[Vec<u8>], max_len: usize) {
    let edits = 1 + rng.below(4);
    for _ in 0..edits {
        let len = input.len();
        match rng.below(11) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                input[at] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
            }
            2 if len > 1 => {
                let at = rng.below(len - 1);
                let v = INTERESTING_U16[rng.below(INTERESTING_U16.len())].to_be_bytes();
                input[at..at + 2].copy_from_slice(&v);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                input[at] = rng.next() as u8;
            }
            4 => {
                let at = rng.below(len + 1);
                input.insert(at, rng.next() as u8);
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(16));
                input.drain(at..at + n);
            }
            6 if len > 0 => {
                // Duplicate a range: repeated labels, records, options.
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(32));
                let piece = input[at..at + n].to_vec();
                let to = rng.below(len + 1);
                input.splice(to..to, piece);
            }
            7 if len > 0 => input.truncate(rng.below(len)),
            8 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let n = 1 + rng.below(other.len() - from);
                    let at = rng.below(len + 1);
                    input.truncate(at);
                    input.extend_from_slice(&other[from..from + n]);
                }
            }
            9 if len > 12 => {
                // A compression pointer somewhere, aimed anywhere (backwards, forwards, itself).
                let at = 12 + rng.below(len - 12);
                let target = rng.below(len + 8) as u16;
                let v = (0xC000 | (target & 0x3FFF)).to_be_bytes();
                input.splice(at..(at + 2).min(len), v);
            }
            10 if len >= 12 => {
                // Header counts: the four 16-bit counts at offsets 4 to 11.
                let at = 4 + 2 * rng.below(4);
                let v = if rng.one_in(2) { rng.below(4) as u16 } else { rng.next() as u16 };
                input[at..at + 2].copy_from_slice(&v.to_be_bytes());
            }
            _ => {}
        }
    }
    input.truncate(max_len);
}

/// Values the text formats care about: empty, numbers at the edges, durations, lists, odd
/// characters, TOML and JSON structure.
const TOKENS: [&str; 30] = [
    "\"\"",
    "0",
    "-1",
    "65535",
    "65536",
    "18446744073709551616",
    "\"1h\"",
    "\"0s\"",
    "\"99999999d\"",
    "[]",
    "[\"\"]",
    "[\"::/0\"]",
    "[\"0.0.0.0/0\"]",
    "true",
    "false",
    "\"none\"",
    "\"full\"",
    "{}",
    "null",
    "\"\\u0000\"",
    "\"é\"",
    "\"a.b.\"",
    "\".\"",
    "1e309",
    "[[]]",
    "\"127.0.0.1:0\"",
    "\"[::1]:53\"",
    "\"x\"",
    ",",
    "\n[section]\n",
];

/// One random edit of a text input: line edits, token replacements, or a byte edit.
pub fn mutate_text(rng: &mut Rng, input: &mut Vec<u8>, others: &[Vec<u8>], max_len: usize) {
    let text = String::from_utf8_lossy(input).into_owned();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    match rng.below(6) {
        0 if !lines.is_empty() => {
            lines.remove(rng.below(lines.len()));
        }
        1 if !lines.is_empty() => {
            let line = lines[rng.below(lines.len())].clone();
            lines.insert(rng.below(lines.len() + 1), line);
        }
        2 if !lines.is_empty() => {
            // Replace what follows `=` or `:` (a value) by a token.
            let i = rng.below(lines.len());
            let token = TOKENS[rng.below(TOKENS.len())];
            if let Some(at) = lines[i].find(['=', ':']) {
                lines[i] = format!("{}{} {token}", &lines[i][..at], &lines[i][at..=at]);
            } else {
                lines[i].push_str(token);
            }
        }
        3 if !others.is_empty() => {
            // A line from another entry: a key from one section lands in another.
            let other = String::from_utf8_lossy(&others[rng.below(others.len())]).into_owned();
            let other: Vec<&str> = other.lines().collect();
            if !other.is_empty() {
                let line = other[rng.below(other.len())].to_owned();
                lines.insert(rng.below(lines.len() + 1), line);
            }
        }
        4 => {
            let token = TOKENS[rng.below(TOKENS.len())];
            let mut bytes = input.clone();
            let at = rng.below(bytes.len() + 1);
            bytes.splice(at..at, token.bytes());
            *input = bytes;
            input.truncate(max_len);
            return;
        }
        _ => {
            mutate_bytes(rng, input, others, max_len);
            return;
        }
    }
    *input = lines.join("\n").into_bytes();
    input.truncate(max_len);
}
