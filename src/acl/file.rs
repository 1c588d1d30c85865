//! The ACL file (`--aclfile`): one `user NAME rule...` per line, `#` comments and blank
//! lines, as Redis's. Tokens are split as Redis's `sdssplitargs` does: by spaces, with
//! `"..."` (escapes `\"`, `\\`, `\n`, `\r`, `\t`, `\xHH`) and `'...'` (escape `\'`) quoting.

use super::rules::User;

/// Most bytes of an ACL file (bounds what ACL LOAD and start-up read).
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// Splits `line` into tokens; None on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            break;
        }
        let mut token = Vec::new();
        match line[i] {
            b'"' => {
                i += 1;
                loop {
                    let c = *line.get(i)?;
                    i += 1;
                    match c {
                        b'"' => break,
                        b'\\' => {
                            let e = *line.get(i)?;
                            i += 1;
                            token.push(match e {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'a' => 7,
                                b'b' => 8,
                                b'x' => {
                                    let hex = line.get(i..i + 2).and_then(|h| {
                                        u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
                                    });
                                    match hex {
                                        Some(b) => {
                                            i += 2;
                                            b
                                        }
                                        None => b'x',
                                    }
                                }
                                other => other,
                            });
                        }
                        _ => token.push(c),
                    }
                }
                // A closing quote must be followed by a space or the end.
                if line.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                    return None;
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    let c = *line.get(i)?;
                    i += 1;
                    match c {
                        b'\'' => break,
                        b'\\' if line.get(i) == Some(&b'\'') => {
                            i += 1;
                            token.push(b'\'');
                        }
                        _ => token.push(c),
                    }
                }
                if line.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                    return None;
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    token.push(line[i]);
                    i += 1;
                }
            }
        }
        out.push(token);
    }
    Some(out)
}

/// Whether a user name is acceptable: not empty, no spaces or NUL (Redis's rule).
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && !name.iter().any(|&b| b.is_ascii_whitespace() || b == 0)
}

/// Parses the text of an ACL file named `path` into its users, in file order.
///
/// # Errors
/// Every bad line, in Redis's words, each as `PATH:LINE: what. ` (a line that does not
/// start with `user NAME`, an invalid or repeated name, a rule that does not apply).
pub fn parse(path: &str, text: &[u8]) -> Result<Vec<User>, String> {
    let mut users: Vec<User> = Vec::new();
    let mut errors = String::new();
    for (n, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = n + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() || trimmed.starts_with(b"#") {
            continue;
        }
        let Some(args) = split_args(trimmed) else {
            errors.push_str(&format!(
                "{path}:{line_no}: unbalanced quotes in acl line. "
            ));
            continue;
        };
        let (Some(keyword), Some(name)) = (args.first(), args.get(1)) else {
            errors.push_str(&format!(
                "{path}:{line_no} should start with user keyword. "
            ));
            continue;
        };
        if keyword.as_slice() != b"user" {
            errors.push_str(&format!(
                "{path}:{line_no} should start with user keyword. "
            ));
            continue;
        }
        if !valid_name(name) {
            errors.push_str(&format!(
                "{path}:{line_no}: username '{}' contains invalid characters. ",
                crate::error::printable(name, 64)
            ));
            continue;
        }
        let name = String::from_utf8_lossy(name).into_owned();
        if users.iter().any(|u| u.name() == name) {
            errors.push_str(&format!(
                "WARNING: Duplicate user '{name}' found on line {line_no}. "
            ));
            continue;
        }
        let mut user = User::new(&name);
        let mut ok = true;
        for rule in args.get(2..).unwrap_or_default() {
            if let Err(err) = user.apply(rule) {
                errors.push_str(&format!("{path}:{line_no}: {err}. "));
                ok = false;
                break;
            }
        }
        if ok {
            users.push(user);
        }
    }
    if errors.is_empty() {
        Ok(users)
    } else {
        Err(errors.trim_end().to_string())
    }
}

/// The file text for `users`: one ACL LIST line each.
pub fn render<'a>(users: impl IntoIterator<Item = &'a User>) -> String {
    let mut out = String::new();
    for user in users {
        out.push_str(&user.describe());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_like_redis() {
        let split = |s: &str| {
            split_args(s.as_bytes())
                .map(|v| {
                    v.into_iter()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                })
                .map(Iterator::collect::<Vec<_>>)
        };
        assert_eq!(
            split("user  a on \"~x y\" '>p q'"),
            Some(vec![
                "user".into(),
                "a".into(),
                "on".into(),
                "~x y".into(),
                ">p q".into()
            ])
        );
        assert_eq!(split("\"a\\x41\\\"\""), Some(vec!["aA\"".into()]));
        assert_eq!(split("\"open"), None);
        assert_eq!(split("\"a\"b"), None);
    }

    #[test]
    fn a_file_gives_its_users_and_skips_comments() {
        let text = b"# teams\n\nuser alice on >a ~app:* -@all +@lock\r\nuser bob off\n";
        let users = parse("users.acl", text).expect("parses");
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].name(), "alice");
        assert!(users[0].enabled() && users[0].password_ok(b"a"));
        assert!(!users[1].enabled());
    }

    #[test]
    fn bad_lines_are_named() {
        let err = parse("u.acl", b"user a on\nuser b +nosuch\nfoo\nuser a\n").unwrap_err();
        assert!(
            err.contains("u.acl:2: Unknown command or category name in ACL."),
            "{err}"
        );
        assert!(
            err.contains("u.acl:3 should start with user keyword."),
            "{err}"
        );
        assert!(err.contains("Duplicate user 'a' found on line 4."), "{err}");
    }

    #[test]
    fn what_is_rendered_parses_back_to_the_same_users() {
        let text = b"user alice on >a #0000000000000000000000000000000000000000000000000000000000000000 ~app:* \"~with space\" -@all +@lock -unlock +client|list max-held-keys:3\nuser default on nopass ~* +@all\n";
        let users = parse("f", text).expect("parses");
        let again = parse("f", render(&users).as_bytes()).expect("re-parses");
        assert_eq!(users, again);
    }
}
