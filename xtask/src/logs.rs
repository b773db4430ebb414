//! Decoding service domains' `defmt` log frames on the console.
//!
//! A domain built with `rt`'s `defmt` feature logs compact frames into a
//! log ring; the core prints each as a token `defmt:NAME:HEX` (see
//! `LOG_FLUSH` in docs/HYPERCALLS.md). [`Decoder`] turns every token back
//! into text with the interned strings in domain NAME's ELF (its `.defmt`
//! section), and [`Filter`] applies it to the console as the bytes arrive,
//! holding back only the part of a line that may still become a token.
//!
//! A line `[NAME] defmt:NAME:HEX` becomes `[NAME] message` (`[NAME]
//! warning: message`, `error: `, `debug: `, `trace: ` for levels other than
//! info); a token elsewhere in a line (as in
//! the shell's `dump` output) becomes `NAME: message`. A token that does
//! not decode (an unknown domain, a frame cut short) is left as it is.

use std::collections::HashMap;
use std::path::Path;

use defmt_decoder::Table;

use hypercall_abi::LOG_FRAME_TOKEN as TOKEN;
/// Longest domain name a token may carry (a manifest name is at most 16).
const NAME_MAX: usize = 32;

/// The `defmt` tables of the domains a system runs, by domain name.
#[derive(Default)]
pub struct Decoder {
    tables: HashMap<String, Table>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.tables.keys().collect();
        names.sort();
        f.debug_struct("Decoder").field("domains", &names).finish()
    }
}

impl Decoder {
    /// Reads the table of every domain and guest of `system` whose image in
    /// `domains` carries `defmt` strings. Images without them are skipped
    /// (they log text); an image whose table does not parse is an error.
    pub fn for_system(domains: &Path, system: &manifest::Manifest) -> crate::Result<Decoder> {
        let mut d = Decoder::default();
        let named = system
            .domains
            .iter()
            .map(|x| (&x.name, &x.image))
            .chain(system.guests.iter().map(|g| (&g.name, &g.image)));
        for (name, image) in named {
            let path = domains.join(image.as_str());
            let Ok(elf) = std::fs::read(&path) else {
                continue;
            };
            d.add(name, &elf)
                .map_err(|e| format!("{}: defmt table: {e}", path.display()))?;
        }
        Ok(d)
    }

    /// Adds domain `name`'s table from its ELF; `Ok(false)` when the ELF has
    /// no `defmt` strings.
    pub fn add(&mut self, name: &str, elf: &[u8]) -> Result<bool, String> {
        match Table::parse(elf).map_err(|e| e.to_string())? {
            Some(table) => {
                self.tables.insert(name.to_string(), table);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether there is nothing to decode with.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The text of one frame of domain `name`, `None` when it does not
    /// decode.
    fn frame_text(&self, name: &str, frame: &[u8]) -> Option<String> {
        let table = self.tables.get(name)?;
        let mut stream = table.new_stream_decoder();
        stream.received(frame);
        // rzcobs frames end with a zero byte; the core prints the frame as
        // the logger wrote it, so the terminator is part of it.
        let decoded = stream.decode().ok()?;
        let message = decoded.display_message().to_string();
        // Levels read as the core's own log lines do.
        Some(match decoded.level().map(|l| l.as_str()) {
            None | Some("info") => message,
            Some("warn") => format!("warning: {message}"),
            Some(level) => format!("{level}: {message}"),
        })
    }

    /// `line` with every token that decodes replaced (see the module doc).
    pub fn line(&self, line: &str) -> String {
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(at) = rest.find(TOKEN) {
            let (before, from) = rest.split_at(at);
            out.push_str(before);
            match self.token(&out, &from[TOKEN.len()..]) {
                Some((text, used)) => {
                    out.push_str(&text);
                    rest = &from[TOKEN.len() + used..];
                }
                None => {
                    out.push_str(TOKEN);
                    rest = &from[TOKEN.len()..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Decodes `NAME:HEX` at the start of `s`; returns the replacement and
    /// the bytes of `s` it stands for. `before` is the line so far.
    fn token(&self, before: &str, s: &str) -> Option<(String, usize)> {
        let colon = s.find(':').filter(|&c| c > 0 && c <= NAME_MAX)?;
        let name = &s[..colon];
        if name.contains(|c: char| c.is_whitespace() || c == '[' || c == ']') {
            return None;
        }
        let hex = &s[colon + 1..];
        let digits = hex
            .find(|c: char| !matches!(c, '0'..='9' | 'a'..='f'))
            .unwrap_or(hex.len());
        if digits % 2 != 0 {
            return None;
        }
        let frame: Vec<u8> = (0..digits)
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<_, _>>()
            .ok()?;
        let text = self.frame_text(name, &frame)?;
        let prefixed = before.ends_with(&format!("[{name}] "));
        let text = if prefixed {
            text
        } else {
            format!("{name}: {text}")
        };
        Some((text, colon + 1 + digits))
    }
}

/// Applies a [`Decoder`] to a console byte stream.
#[derive(Debug, Default)]
pub struct Filter {
    /// The current line, since the last `\n`.
    line: Vec<u8>,
    /// Bytes of `line` already passed on.
    passed: usize,
}

impl Filter {
    /// Takes newly arrived bytes; returns what can be shown now.
    pub fn feed(&mut self, decoder: &Decoder, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            self.line.push(b);
            if b == b'\n' {
                self.finish_line(decoder, &mut out);
            }
        }
        // Of the unfinished line, pass on what cannot be part of a token.
        let hold = hold_from(&self.line[self.passed..]) + self.passed;
        out.extend_from_slice(&self.line[self.passed..hold]);
        self.passed = hold;
        out
    }

    /// What is left when the stream ends.
    pub fn finish(&mut self, decoder: &Decoder) -> Vec<u8> {
        let mut out = Vec::new();
        self.finish_line(decoder, &mut out);
        out
    }

    fn finish_line(&mut self, decoder: &Decoder, out: &mut Vec<u8>) {
        let line = std::mem::take(&mut self.line);
        let passed = std::mem::take(&mut self.passed);
        if decoder.is_empty() || !contains(&line[passed..], TOKEN.as_bytes()) {
            out.extend_from_slice(&line[passed..]);
            return;
        }
        // Tokens only start at or after `passed`, so the decoded line keeps
        // the bytes already passed on unchanged in front.
        let text = String::from_utf8_lossy(&line);
        let decoded = decoder.line(&text);
        match decoded.as_bytes().get(passed..) {
            Some(rest) if decoded.as_bytes().starts_with(&line[..passed]) => {
                out.extend_from_slice(rest)
            }
            _ => out.extend_from_slice(&line[passed..]),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Where, in the unfinished part of a line, a token may begin: the start of
/// `defmt:` if it is there, else of a tail that could grow into it.
fn hold_from(part: &[u8]) -> usize {
    let t = TOKEN.as_bytes();
    if let Some(at) = part.windows(t.len()).position(|w| w == t) {
        return at;
    }
    (1..t.len())
        .rev()
        .find(|&k| part.ends_with(&t[..k]))
        .map_or(part.len(), |k| part.len() - k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_tokens_passes_straight_through() {
        let d = Decoder::default();
        let mut f = Filter::default();
        assert_eq!(f.feed(&d, b"[manager] > "), b"[manager] > ");
        assert_eq!(f.feed(&d, b"list\n[uart] de"), b"list\n[uart] ");
        assert_eq!(f.feed(&d, b"mo\n"), b"demo\n");
        assert!(f.finish(&d).is_empty());
    }

    #[test]
    fn a_token_is_held_until_its_line_ends() {
        let d = Decoder::default();
        let mut f = Filter::default();
        assert_eq!(f.feed(&d, b"[svc] defmt:svc:0a"), b"[svc] ");
        assert_eq!(f.feed(&d, b"0b"), b"");
        // No table for `svc`: the token is shown as it came.
        assert_eq!(f.feed(&d, b"\nnext"), b"defmt:svc:0a0b\nnext");
        assert_eq!(f.finish(&d), b"");
    }

    #[test]
    fn tokens_that_do_not_decode_are_left_alone() {
        let d = Decoder::default();
        for line in [
            "defmt:",
            "defmt:svc",
            "defmt::00",
            "defmt:svc:0",
            "defmt:svc:zz",
            "x defmt:a b:00 defmt:",
            "[svc] defmt:svc:00ff",
        ] {
            assert_eq!(d.line(line), line);
        }
    }

    #[test]
    fn hold_from_finds_where_a_token_could_begin() {
        assert_eq!(hold_from(b"abc"), 3);
        assert_eq!(hold_from(b"abc d"), 4);
        assert_eq!(hold_from(b"abc defm"), 4);
        assert_eq!(hold_from(b"x defmt:y"), 2);
        assert_eq!(hold_from(b""), 0);
    }

    /// A real service image, when `cargo xtask test` built one.
    fn service_elf() -> Option<Vec<u8>> {
        let dir = std::env::var_os("BULKHEAD_TEST_DOMAINS")?;
        std::fs::read(Path::new(&dir).join("mem-broker")).ok()
    }

    #[test]
    fn frames_of_a_real_service_decode_against_its_elf() {
        let Some(elf) = service_elf() else {
            eprintln!("BULKHEAD_TEST_DOMAINS not set: `cargo xtask test` sets it");
            return;
        };
        let mut d = Decoder::default();
        assert_eq!(d.add("mem-broker", &elf), Ok(true));
        let table = Table::parse(&elf).unwrap().unwrap();
        // Find the index of the broker's `ready` message in its table and
        // encode a frame for it the way the defmt logger does (rzcobs).
        let index = table
            .indices()
            .find(|&i| {
                let mut raw = (i as u16).to_le_bytes().to_vec();
                raw.extend_from_slice(&4096u64.to_le_bytes());
                d.tables["mem-broker"]
                    .decode(&raw)
                    .is_ok_and(|(f, _)| f.display_message().to_string().starts_with("ready:"))
            })
            .expect("the broker logs `ready: ... KiB free` with defmt");
        let mut raw = (index as u16).to_le_bytes().to_vec();
        raw.extend_from_slice(&4096u64.to_le_bytes());
        let frame = rzcobs(&raw);
        let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            d.line(&format!("[mem-broker] defmt:mem-broker:{hex}")),
            "[mem-broker] ready: 4096 KiB free"
        );
        assert_eq!(
            d.line(&format!("  defmt:mem-broker:{hex} and on")),
            "  mem-broker: ready: 4096 KiB free and on"
        );
        let mut f = Filter::default();
        let mut shown = f.feed(
            &d,
            format!("[mem-broker] defmt:mem-broker:{hex}").as_bytes(),
        );
        shown.extend(f.feed(&d, b"\n"));
        assert_eq!(shown, b"[mem-broker] ready: 4096 KiB free\n");
        // Cut short: shown as it came.
        let cut = &hex[..hex.len() - 2];
        let line = format!("[mem-broker] defmt:mem-broker:{cut}");
        assert_eq!(d.line(&line), line);
    }

    /// The frame defmt's own encoder (rzcobs) makes of `raw`, as the
    /// logger in `rt` writes it.
    fn rzcobs(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = defmt::Encoder::new();
        enc.start_frame(|b| out.extend_from_slice(b));
        enc.write(raw, |b| out.extend_from_slice(b));
        enc.end_frame(|b| out.extend_from_slice(b));
        out
    }
}
