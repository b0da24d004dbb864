//! Uploaded files: the name a client gives, the type the bytes say they are (never the
//! type the client claims), and how a type may be served back without a browser ever
//! running it.

use super::{Invalid, has_forbidden_controls};

/// Bytes [`sniff`] needs to tell every type it knows.
pub const SNIFF_BYTES: usize = 512;

/// A file's name as shown to others: the last component of whatever path the client
/// sent (at most 255 characters, no control characters), with a character other than
/// spaces and dots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.chars().count() > 255 || has_forbidden_controls(raw, false) || raw.chars().any(is_invisible_format) {
            return Err(Invalid::new(
                "name",
                "must be at most 255 characters without control, direction or zero-width characters",
            ));
        }
        let last = raw.rsplit(['/', '\\']).next().unwrap_or_default().trim();
        if !last.chars().any(|c| c != '.' && !c.is_whitespace()) {
            return Err(Invalid::new("name", "must end in a file name (not only spaces and dots)"));
        }
        Ok(Self(last.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters that reorder or hide text: `invoice\u{202E}fdp.exe` shows as
/// `invoiceexe.pdf`. A file name has no use for them.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// The type of a file from its first bytes (at least [`SNIFF_BYTES`] of them when the
/// file is that long). Only types recognised with certainty get a name; text is text
/// only when it is UTF-8 without NUL, and markup is just text: nothing sniffed here is
/// ever a type a browser would run.
pub fn sniff(head: &[u8]) -> &'static str {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x1f\x8b", "application/gzip"),
        (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
        (b"OggS", "audio/ogg"),
        (b"ID3", "audio/mpeg"),
        (b"fLaC", "audio/flac"),
        (b"\x1a\x45\xdf\xa3", "video/webm"),
    ];
    if let Some((_, mime)) = SIGNATURES.iter().find(|(magic, _)| head.starts_with(magic)) {
        return mime;
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" {
        match &head[8..12] {
            b"WEBP" => return "image/webp",
            b"WAVE" => return "audio/wav",
            _ => {}
        }
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return "video/mp4";
    }
    if looks_like_text(head) { "text/plain" } else { "application/octet-stream" }
}

/// UTF-8 without NUL; a multi-byte character cut off by the end of `head` still counts.
fn looks_like_text(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(error) => error.error_len().is_none() && head.len() - error.valid_up_to() < 4,
    }
}

/// The raster formats browsers show in an `<img>` and nothing else: the only uploads
/// served inline (SVG, which can carry script, is not among them).
pub fn is_inline_image(mime: &str) -> bool {
    matches!(mime, "image/png" | "image/jpeg" | "image/gif" | "image/webp")
}

/// The `Content-Type` an upload is served with: its sniffed type, text as UTF-8 text.
pub fn served_type(mime: &str) -> String {
    if mime == "text/plain" { "text/plain; charset=utf-8".to_owned() } else { mime.to_owned() }
}

/// `Content-Disposition` for `name` (RFC 6266): an ASCII fallback for old clients and
/// the exact name percent-encoded as UTF-8.
pub fn content_disposition(name: &FileName, inline: bool) -> String {
    let fallback: String = name
        .as_str()
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    let mut encoded = String::new();
    for byte in name.as_str().bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    let disposition = if inline { "inline" } else { "attachment" };
    format!("{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_keeps_only_its_last_path_component() {
        assert_eq!(FileName::parse("C:\\Users\\ann\\cat.png").unwrap().as_str(), "cat.png");
        assert_eq!(FileName::parse("../../etc/passwd").unwrap().as_str(), "passwd");
        assert_eq!(FileName::parse("  report 2026.pdf ").unwrap().as_str(), "report 2026.pdf");
        for bad in [
            "",
            "dir/",
            "..",
            "...",
            " . ",
            "a\u{0}b",
            "x\ny",
            "invoice\u{202E}fdp.exe",
            "a\u{200B}b",
            &"n".repeat(256),
        ] {
            assert!(FileName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF"), "image/jpeg");
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), "image/webp");
        assert_eq!(sniff(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(sniff(b"\0\0\0\x18ftypmp42"), "video/mp4");
        assert_eq!(sniff("plain words, ünïcode".as_bytes()), "text/plain");
        assert_eq!(sniff(b"\0\x01\x02binary"), "application/octet-stream");
    }

    #[test]
    fn markup_is_never_a_type_a_browser_runs() {
        for page in
            [&b"<!DOCTYPE html><script>alert(1)</script>"[..], b"<svg onload=alert(1)>", b"<?xml version='1.0'?>"]
        {
            assert_eq!(sniff(page), "text/plain");
            assert!(!is_inline_image(sniff(page)));
        }
    }

    #[test]
    fn text_cut_inside_a_character_is_still_text() {
        let text = "ééé".as_bytes();
        assert_eq!(sniff(&text[..5]), "text/plain");
        assert_eq!(sniff(b"ok \xff\xfe more"), "application/octet-stream");
    }

    #[test]
    fn the_disposition_carries_the_exact_name() {
        let name = FileName::parse("résumé \"final\".pdf").unwrap();
        assert_eq!(
            content_disposition(&name, false),
            "attachment; filename=\"r_sum_ _final_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"
        );
        assert!(content_disposition(&name, true).starts_with("inline; "));
    }
}
