//! A small RFC 4180 CSV reader for the files `trainer` reads back or takes from planners
//! (`retrain_queue.csv`, `recommend`'s item files): quoted fields with commas, quotes and line
//! breaks, CRLF or LF, an optional UTF-8 byte-order mark. Records keep the line they start on, so
//! errors can name it.

/// Parses `text` into records, each with the 1-based line it starts on. Empty lines are
/// skipped. An unterminated quote is an error naming its line.
pub fn parse(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut start = 1usize;
    let mut any = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if field.is_empty() => {
                let open_line = line;
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(ch) => {
                            if ch == '\n' {
                                line += 1;
                            }
                            field.push(ch);
                        }
                        None => {
                            return Err(format!(
                                "line {open_line}: a quoted field is never closed"
                            ));
                        }
                    }
                }
                any = true;
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                any = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if any || !field.is_empty() {
                    record.push(std::mem::take(&mut field));
                    out.push((start, std::mem::take(&mut record)));
                }
                any = false;
                line += 1;
                start = line;
            }
            _ => {
                field.push(c);
                any = true;
            }
        }
    }
    if any || !field.is_empty() {
        record.push(field);
        out.push((start, record));
    }
    Ok(out)
}

/// A field as CSV writes it: quoted when it holds a comma, quote or line break.
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn quotes_commas_line_breaks_and_crlf() {
        let t = "\u{feff}a,b,c\r\n\"x,1\",\"he said \"\"hi\"\"\",\"two\nlines\"\n\n,,\nlast";
        let r = parse(t).unwrap();
        assert_eq!(r[0], (1, vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(
            r[1],
            (
                2,
                vec!["x,1".into(), "he said \"hi\"".into(), "two\nlines".into()]
            )
        );
        assert_eq!(r[2], (5, vec!["".into(), "".into(), "".into()]));
        assert_eq!(r[3], (6, vec!["last".into()]));
    }

    #[test]
    fn unterminated_quote_names_its_line() {
        assert_eq!(
            parse("a\n\"open,\nb").unwrap_err(),
            "line 2: a quoted field is never closed"
        );
    }
}
