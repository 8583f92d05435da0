//! Reading Rust source as the layout tests do: the code alone, without comments and
//! literals, so that a path written in a doc comment or a string is not a reference.

/// The text with comments, string and character literals blanked out; line breaks stay,
/// so a line number in it is the source's.
pub fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let breaks = |from: usize, to: usize| {
        b[from..to.min(b.len())]
            .iter()
            .filter(|&&x| x == b'\n')
            .count()
    };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == b'/' && next == Some(b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && next == Some(b'*') {
            let start = i;
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(b' ');
            out.resize(out.len() + breaks(start, i), b'\n');
        } else if (c == b'r' || c == b'b')
            && !b[..i]
                .last()
                .is_some_and(|p| p.is_ascii_alphanumeric() || *p == b'_')
            && raw_string_end(b, i).is_some()
        {
            let start = i;
            i = raw_string_end(b, i).unwrap_or(i + 1);
            out.extend_from_slice(b"\"\"");
            out.resize(out.len() + breaks(start, i), b'\n');
        } else if c == b'"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.extend_from_slice(b"\"\"");
            out.resize(out.len() + breaks(start, i), b'\n');
        } else if c == b'\'' {
            // A character literal ('x', '\n', '\u{..}'), or else a lifetime or label.
            let close = if next == Some(b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&x| x == b'\'')
                    .map(|p| i + 2 + p)
            } else {
                let len = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + len) == Some(&b'\'')).then_some(i + 1 + len)
            };
            match close {
                Some(end) => {
                    i = end + 1;
                    out.extend_from_slice(b"' '");
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where a raw string (`r"…"`, `r#"…"#`, `br"…"`) starting at `i` ends, if one starts there.
fn raw_string_end(b: &[u8], mut i: usize) -> Option<usize> {
    if b[i] == b'b' {
        i += 1;
    }
    if b.get(i) != Some(&b'r') {
        return None;
    }
    i += 1;
    let hashes = b[i..].iter().take_while(|&&x| x == b'#').count();
    i += hashes;
    if b.get(i) != Some(&b'"') {
        return None;
    }
    i += 1;
    let closing: Vec<u8> = std::iter::once(b'"')
        .chain(std::iter::repeat_n(b'#', hashes))
        .collect();
    b[i..]
        .windows(closing.len())
        .position(|w| w == closing.as_slice())
        .map(|p| i + p + closing.len())
}

#[test]
fn the_code_keeps_its_line_breaks_without_comments_and_literals() {
    let source = "a /* one\ntwo */ b\n\"x\ny\" c // crate::d\nr#\"p\nq\"# e";
    assert_eq!(code_only(source), "a  \n b\n\"\"\n c \n\"\"\n e");
}
