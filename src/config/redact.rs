//! Secrets in ODBC connection strings: every place a connection string is shown (the log,
//! errors, `training_metadata.json`, `sources check`) shows it through [`redact`].

/// Connection strings with any password value replaced by `***`.
pub fn redact(conn: &str) -> String {
    // ODBC connection strings are `key=value` pairs separated by `;`, where a value in braces
    // (`PWD={a;b}`) may hold `;` and `}}` stands for `}`: split by that grammar, not by `;`.
    let mut out = String::with_capacity(conn.len());
    let mut rest = conn;
    while !rest.is_empty() {
        let (key, after_key) = match rest.find('=') {
            Some(k) => (&rest[..k], &rest[k + 1..]),
            None => {
                out.push_str(rest);
                break;
            }
        };
        // A `;` before the `=` ends an attribute without a value.
        if let Some(semi) = key.find(';') {
            out.push_str(&rest[..=semi]);
            rest = &rest[semi + 1..];
            continue;
        }
        let value_len = if after_key.trim_start().starts_with('{') {
            let lead = after_key.len() - after_key.trim_start().len();
            let body = &after_key[lead + 1..];
            let mut k = 0;
            let bytes = body.as_bytes();
            let mut end = None;
            while k < bytes.len() {
                if bytes[k] == b'}' {
                    if bytes.get(k + 1) == Some(&b'}') {
                        k += 2;
                        continue;
                    }
                    end = Some(k);
                    break;
                }
                k += 1;
            }
            match end {
                // up to the closing brace, then to the next `;`
                Some(e) => {
                    let tail = &body[e + 1..];
                    lead + 1 + e + 1 + tail.find(';').unwrap_or(tail.len())
                }
                // An unclosed brace: the rest is the value.
                None => after_key.len(),
            }
        } else {
            after_key.find(';').unwrap_or(after_key.len())
        };
        // The key's last word, so that text before it (a driver's message) does not hide it.
        let word = key
            .trim_end()
            .rsplit(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let secret = matches!(word.as_str(), "pwd" | "password");
        out.push_str(key);
        out.push('=');
        out.push_str(if secret {
            "***"
        } else {
            &after_key[..value_len]
        });
        rest = &after_key[value_len..];
        if let Some(r) = rest.strip_prefix(';') {
            out.push(';');
            rest = r;
        }
    }
    out
}
