//! Finds where a field of a RON document stands, so that a validation error (a value that parsed
//! but is impossible, such as `dp: 0`) can name its line and column like a parse error does.
//!
//! A light scanner: it tokenises the text (skipping strings and comments) and walks a path of
//! struct keys and list indices. If a step is missing (a field left at its default), the
//! position of the deepest element found is returned.

/// One step of a path into a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    /// A struct field.
    Key(&'static str),
    /// A list element.
    Index(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    Ident(&'a str),
    Open,
    Close,
    Comma,
    Colon,
    Other,
}

struct Token<'a> {
    tok: Tok<'a>,
    line: usize,
    col: usize,
}

fn tokenize(src: &str) -> Vec<Token<'_>> {
    let bytes = src.as_bytes();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let mut out = Vec::new();
    let advance = |i: &mut usize, line: &mut usize, col: &mut usize| {
        if bytes[*i] == b'\n' {
            *line += 1;
            *col = 1;
        } else if (bytes[*i] & 0xC0) != 0x80 {
            *col += 1;
        }
        *i += 1;
    };
    while i < bytes.len() {
        let c = bytes[i];
        let (l0, c0) = (line, col);
        if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                advance(&mut i, &mut line, &mut col);
            }
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                advance(&mut i, &mut line, &mut col);
            }
            for _ in 0..2 {
                if i < bytes.len() {
                    advance(&mut i, &mut line, &mut col);
                }
            }
        } else if c == b'"' {
            advance(&mut i, &mut line, &mut col);
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    advance(&mut i, &mut line, &mut col);
                }
                if i < bytes.len() {
                    advance(&mut i, &mut line, &mut col);
                }
            }
            if i < bytes.len() {
                advance(&mut i, &mut line, &mut col);
            }
            out.push(Token {
                tok: Tok::Other,
                line: l0,
                col: c0,
            });
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                advance(&mut i, &mut line, &mut col);
            }
            out.push(Token {
                tok: Tok::Ident(&src[start..i]),
                line: l0,
                col: c0,
            });
        } else {
            let tok = match c {
                b'(' | b'[' | b'{' => Some(Tok::Open),
                b')' | b']' | b'}' => Some(Tok::Close),
                b',' => Some(Tok::Comma),
                b':' => Some(Tok::Colon),
                _ if c.is_ascii_whitespace() => None,
                _ => Some(Tok::Other),
            };
            if let Some(tok) = tok {
                out.push(Token {
                    tok,
                    line: l0,
                    col: c0,
                });
            }
            advance(&mut i, &mut line, &mut col);
        }
    }
    out
}

/// Index just past the value starting at `i` (an optional name, then a bracketed group or a
/// run of scalar tokens up to the next comma or close at this depth).
fn skip_value(toks: &[Token<'_>], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < toks.len() {
        match toks[i].tok {
            Tok::Open => depth += 1,
            Tok::Close => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            Tok::Comma if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    i
}

/// The token index of the opening bracket of the value starting at `i`, if it has one.
fn open_of(toks: &[Token<'_>], mut i: usize) -> Option<usize> {
    if let Some(Token {
        tok: Tok::Ident(_), ..
    }) = toks.get(i)
    {
        i += 1;
    }
    matches!(toks.get(i)?.tok, Tok::Open).then_some(i)
}

/// Line and column (1-based) of the value at `path` in `src`, or of the deepest element of it
/// that exists.
pub fn locate(src: &str, path: &[Seg]) -> (usize, usize) {
    let toks = tokenize(src);
    let Some(first) = toks.first() else {
        return (1, 1);
    };
    let mut best = (first.line, first.col);
    let mut value = 0usize; // token index of the current value
    for seg in path {
        let Some(open) = open_of(&toks, value) else {
            break;
        };
        let mut i = open + 1;
        let mut found = None;
        let mut index = 0usize;
        while i < toks.len() && toks[i].tok != Tok::Close {
            match seg {
                Seg::Key(k) => {
                    if let (Tok::Ident(name), Some(Tok::Colon)) =
                        (toks[i].tok, toks.get(i + 1).map(|t| t.tok))
                    {
                        if name == *k {
                            found = Some(i + 2);
                            break;
                        }
                        i += 2;
                    }
                }
                Seg::Index(n) => {
                    if index == *n {
                        found = Some(i);
                        break;
                    }
                }
            }
            i = skip_value(&toks, i);
            if toks.get(i).map(|t| t.tok) == Some(Tok::Comma) {
                i += 1;
                index += 1;
            }
        }
        match found {
            Some(v) if v < toks.len() => {
                value = v;
                let t = if matches!(seg, Seg::Key(_)) {
                    &toks[v - 2]
                } else {
                    &toks[v]
                };
                best = (t.line, t.col);
            }
            _ => break,
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"Scenario(
    name: "x, (y)", // a comment with dp: 9
    deployments: [
        Deployment(backend: vllm, dp: 1),
        Deployment(backend: vllm,
                   dp: 0),
    ],
    load: Harness(clients: 10),
)"#;

    #[test]
    fn finds_nested_fields_and_list_elements() {
        use Seg::*;
        assert_eq!(
            locate(DOC, &[Key("deployments"), Index(1), Key("dp")]),
            (6, 20)
        );
        assert_eq!(
            locate(DOC, &[Key("deployments"), Index(0), Key("dp")]),
            (4, 35)
        );
        assert_eq!(locate(DOC, &[Key("load"), Key("clients")]), (8, 19));
    }

    #[test]
    fn missing_steps_fall_back_to_the_deepest_found() {
        use Seg::*;
        assert_eq!(
            locate(DOC, &[Key("deployments"), Index(1), Key("tp")]),
            (5, 9)
        );
        assert_eq!(locate(DOC, &[Key("nothing")]), (1, 1));
    }
}
