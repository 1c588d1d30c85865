//! One user and its rules: what `user NAME rule...` (an ACL file line) and
//! `ACL SETUSER NAME rule...` apply, and the ACL LIST form that gives them back.
//!
//! A [`User`] keeps what the rules mean, precomputed for the per-command check: a bitset
//! over command ids ([`super::commands`]) and compiled key patterns, plus two flags, "every
//! command" and "every key", that let the usual user (`+@all ~*`) skip both checks.

use bytes::Bytes;

use super::commands::{self, Bits, ADMIN};
use crate::table::Glob;

/// A rule that cannot be applied: Redis's text for it (`Syntax error`, ...).
pub type RuleError = &'static str;

/// `Syntax error`: a rule baton does not know.
pub const SYNTAX: RuleError = "Syntax error";
/// An unknown command or category after `+`/`-`.
pub const UNKNOWN_COMMAND: RuleError = "Unknown command or category name in ACL";
/// A key pattern after `~*` / `allkeys`.
pub const AFTER_ALLKEYS: RuleError = "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns";
/// A malformed `#hash` / `!hash`.
pub const BAD_HASH: RuleError =
    "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters";
/// `<password` / `!hash` of a password the user does not have.
pub const NO_SUCH_PASSWORD: RuleError = "Removing a password that does not exist";
/// A limit rule whose value is not a non-negative integer.
pub const BAD_LIMIT: RuleError = "The limit must be a non-negative integer";

/// Per-user limits (0 = no limit): baton's own rules `max-held-keys:N`, `max-waiters:N`,
/// `max-connections:N`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Most keys the user's clients may hold at once.
    pub max_held_keys: u64,
    /// Most of the user's requests that may wait in queues at once.
    pub max_waiters: u64,
    /// Most connections authenticated as the user at once.
    pub max_connections: u64,
}

/// A user: its passwords (SHA-256), key patterns, command permissions and limits.
#[derive(Debug, Clone)]
pub struct User {
    name: String,
    enabled: bool,
    nopass: bool,
    passwords: Vec<[u8; 32]>,
    allkeys: bool,
    patterns: Vec<Bytes>,
    globs: Vec<Glob>,
    /// The command rules as they apply: the first is `+@all` or `-@all`; later ones with the
    /// same target replace earlier ones (the last rule on a target decides it).
    rules: Vec<String>,
    allowed: Bits,
    all_commands: bool,
    admin: bool,
    limits: Limits,
}

impl PartialEq for User {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.enabled == other.enabled
            && self.nopass == other.nopass
            && self.passwords == other.passwords
            && self.allkeys == other.allkeys
            && self.patterns == other.patterns
            && self.rules == other.rules
            && self.allowed == other.allowed
            && self.limits == other.limits
    }
}

impl User {
    /// A user as `ACL SETUSER` creates it: off, no password, no keys, no commands.
    pub fn new(name: &str) -> User {
        let mut user = User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            allkeys: false,
            patterns: Vec::new(),
            globs: Vec::new(),
            rules: vec!["-@all".to_string()],
            allowed: Bits::default(),
            all_commands: false,
            admin: false,
            limits: Limits::default(),
        };
        user.recompute();
        user
    }

    /// The `default` user before any file: `on nopass ~* +@all`, or with `password`
    /// (`--requirepass`) instead of `nopass`.
    pub fn default_user(password: Option<&str>) -> User {
        let mut user = User::new("default");
        let mut rules: Vec<Vec<u8>> = vec![b"on".to_vec(), b"~*".to_vec(), b"+@all".to_vec()];
        match password {
            Some(p) => rules.push([b">", p.as_bytes()].concat()),
            None => rules.push(b"nopass".to_vec()),
        }
        for rule in &rules {
            // These rules are known to apply.
            let _ = user.apply(rule);
        }
        user
    }

    /// The user's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the user may log in (`on`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether any password is accepted (`nopass`).
    pub fn nopass(&self) -> bool {
        self.nopass
    }

    /// Whether every command is allowed: the per-command check is skipped.
    pub fn all_commands(&self) -> bool {
        self.all_commands
    }

    /// Whether every key is allowed (`~*` / `allkeys`): the key checks are skipped.
    pub fn all_keys(&self) -> bool {
        self.allkeys
    }

    /// Whether every `@admin` command is allowed: the user may also DEL a key that has
    /// live holders.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// The user's limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The key patterns (empty with `allkeys`).
    pub fn patterns(&self) -> &[Bytes] {
        &self.patterns
    }

    /// The SHA-256 digests of the passwords.
    pub fn password_hashes(&self) -> &[[u8; 32]] {
        &self.passwords
    }

    /// The command rules, as ACL LIST shows them.
    pub fn command_rules(&self) -> &[String] {
        &self.rules
    }

    /// Whether the command id `id` ([`super::commands`]) is allowed.
    pub fn allows(&self, id: usize) -> bool {
        self.all_commands || self.allowed.has(id)
    }

    /// Whether `key` matches one of the user's patterns.
    pub fn key_allowed(&self, key: &[u8]) -> bool {
        self.allkeys || self.globs.iter().any(|g| g.matches(key))
    }

    /// Whether `password` is one of the user's, or the user is `nopass`. Every stored
    /// digest is compared in constant time, whatever matched before.
    pub fn password_ok(&self, password: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let digest = sha256(password);
        let mut found = subtle::Choice::from(u8::from(self.nopass));
        for stored in &self.passwords {
            found |= stored.ct_eq(&digest);
        }
        found.into()
    }

    /// Applies one rule.
    ///
    /// # Errors
    /// Redis's text for a rule that does not apply; the user may be half-changed then
    /// (callers apply rules to a copy).
    pub fn apply(&mut self, rule: &[u8]) -> Result<(), RuleError> {
        let lower = rule.to_ascii_lowercase();
        match lower.as_slice() {
            b"on" => self.enabled = true,
            b"off" => self.enabled = false,
            b"nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            b"resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            b"allkeys" | b"~*" => {
                self.allkeys = true;
                self.patterns.clear();
                self.globs.clear();
            }
            b"resetkeys" => {
                self.allkeys = false;
                self.patterns.clear();
                self.globs.clear();
            }
            b"allcommands" => self.command_rule(true, b"@all")?,
            b"nocommands" => self.command_rule(false, b"@all")?,
            b"reset" => {
                *self = User::new(&self.name);
            }
            // Channels do not exist in baton: Redis's channel rules are accepted and do
            // nothing, so files written by Redis load.
            b"resetchannels"
            | b"allchannels"
            | b"clearselectors"
            | b"sanitize-payload"
            | b"skip-sanitize-payload" => {}
            _ => return self.apply_prefixed(rule, &lower),
        }
        self.recompute();
        Ok(())
    }

    fn apply_prefixed(&mut self, rule: &[u8], lower: &[u8]) -> Result<(), RuleError> {
        let (&first, rest) = rule.split_first().ok_or(SYNTAX)?;
        match first {
            b'>' => {
                let digest = sha256(rest);
                if !self.passwords.contains(&digest) {
                    self.passwords.push(digest);
                }
                self.nopass = false;
            }
            b'#' => {
                let digest = parse_hash(rest)?;
                if !self.passwords.contains(&digest) {
                    self.passwords.push(digest);
                }
                self.nopass = false;
            }
            b'<' => self.remove_password(sha256(rest))?,
            b'!' => self.remove_password(parse_hash(rest)?)?,
            b'~' => {
                if self.allkeys {
                    return Err(AFTER_ALLKEYS);
                }
                let pattern = Bytes::copy_from_slice(rest);
                if !self.patterns.contains(&pattern) {
                    self.globs.push(Glob::new(&pattern));
                    self.patterns.push(pattern);
                }
            }
            b'&' => {}
            b'+' => self.command_rule(true, lower.get(1..).unwrap_or_default())?,
            b'-' => self.command_rule(false, lower.get(1..).unwrap_or_default())?,
            _ => {
                let (name, value) = split_limit(lower).ok_or(SYNTAX)?;
                let value = std::str::from_utf8(value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or(BAD_LIMIT)?;
                match name {
                    b"max-held-keys" => self.limits.max_held_keys = value,
                    b"max-waiters" => self.limits.max_waiters = value,
                    b"max-connections" => self.limits.max_connections = value,
                    _ => return Err(SYNTAX),
                }
            }
        }
        self.recompute();
        Ok(())
    }

    fn remove_password(&mut self, digest: [u8; 32]) -> Result<(), RuleError> {
        let before = self.passwords.len();
        self.passwords.retain(|d| *d != digest);
        if self.passwords.len() == before {
            return Err(NO_SUCH_PASSWORD);
        }
        Ok(())
    }

    /// `+target` (allow) or `-target` (deny), `target` lower case: `@category`,
    /// `command` or `command|subcommand`.
    fn command_rule(&mut self, allow: bool, target: &[u8]) -> Result<(), RuleError> {
        let table = commands::table();
        let target = std::str::from_utf8(target).map_err(|_| UNKNOWN_COMMAND)?;
        if target.is_empty() {
            return Err(UNKNOWN_COMMAND);
        }
        let ids = table.ids_of(target).ok_or(UNKNOWN_COMMAND)?;
        let sign = if allow { '+' } else { '-' };
        if target == "@all" {
            self.rules = vec![format!("{sign}@all")];
        } else {
            // Rules this one overrides (the same target, or a subcommand of this command)
            // go: the list stays as short as what it means.
            let sub_prefix = format!("{target}|");
            self.rules.retain(|r| {
                let t = r.get(1..).unwrap_or_default();
                t != target
                    && !(target.starts_with(|c: char| c != '@') && t.starts_with(&sub_prefix))
            });
            self.rules.push(format!("{sign}{target}"));
        }
        for id in ids {
            self.allowed.set(id, allow);
        }
        Ok(())
    }

    /// Recomputes the flags from the rules' effect.
    fn recompute(&mut self) {
        let table = commands::table();
        self.all_commands = (0..table.len()).all(|id| self.allowed.has(id));
        self.admin = (0..table.len())
            .filter(|&id| table.categories(id) & ADMIN != 0)
            .all(|id| self.allowed.has(id));
    }

    /// The user as one ACL LIST line (`user NAME on #<sha256> ~app:* -@all +@lock`), which
    /// applied to a new user gives this one back.
    pub fn describe(&self) -> String {
        let mut out = String::from("user ");
        out.push_str(&quote(self.name.as_bytes()));
        out.push_str(if self.enabled { " on" } else { " off" });
        if self.nopass {
            out.push_str(" nopass");
        }
        for digest in &self.passwords {
            out.push_str(" #");
            out.push_str(&hex(digest));
        }
        if self.allkeys {
            out.push_str(" ~*");
        }
        for pattern in &self.patterns {
            out.push(' ');
            out.push_str(&quote(&[b"~", pattern.as_ref()].concat()));
        }
        for rule in &self.rules {
            out.push(' ');
            out.push_str(rule);
        }
        let limits = [
            ("max-held-keys", self.limits.max_held_keys),
            ("max-waiters", self.limits.max_waiters),
            ("max-connections", self.limits.max_connections),
        ];
        for (name, value) in limits {
            if value > 0 {
                out.push_str(&format!(" {name}:{value}"));
            }
        }
        out
    }
}

fn split_limit(rule: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = rule.iter().position(|&b| b == b':')?;
    Some((&rule[..colon], &rule[colon + 1..]))
}

/// SHA-256 of `bytes` (how passwords are kept, as Redis keeps them).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hash(text: &[u8]) -> Result<[u8; 32], RuleError> {
    if text.len() != 64 {
        return Err(BAD_HASH);
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(BAD_HASH),
    };
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Ok(out)
}

/// `token` as the ACL file's splitter reads it back: bare when it has no space, quote or
/// unprintable byte, else in double quotes with `\"`, `\\` and `\xHH` escapes.
pub fn quote(token: &[u8]) -> String {
    let plain = !token.is_empty()
        && token
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\'' && b != b'\\');
    if plain {
        return String::from_utf8_lossy(token).into_owned();
    }
    let mut out = String::from("\"");
    for &b in token {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b' ' => out.push(' '),
            _ if b.is_ascii_graphic() => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rules: &[&str]) -> Result<User, RuleError> {
        let mut u = User::new("alice");
        for r in rules {
            u.apply(r.as_bytes())?;
        }
        Ok(u)
    }

    #[test]
    fn a_new_user_can_do_nothing() {
        let u = User::new("alice");
        assert!(!u.enabled() && !u.nopass() && !u.all_commands() && !u.all_keys());
        assert!(!u.password_ok(b""));
        assert!(!u.key_allowed(b"x"));
        assert_eq!(u.describe(), "user alice off -@all");
    }

    #[test]
    fn passwords_are_kept_as_sha256_and_checked() {
        let u = user(&["on", ">s3cret"]).expect("rules");
        assert!(u.password_ok(b"s3cret"));
        assert!(!u.password_ok(b"s3cre"));
        assert_eq!(u.password_hashes(), [sha256(b"s3cret")]);
        let by_hash = user(&["on", &format!("#{}", hex(&sha256(b"s3cret")))]).expect("hash");
        assert!(by_hash.password_ok(b"s3cret"));
        let removed = user(&["on", ">s3cret", "<s3cret"]).expect("remove");
        assert!(!removed.password_ok(b"s3cret"));
        assert_eq!(user(&["<nope"]).err(), Some(NO_SUCH_PASSWORD));
        assert_eq!(user(&["#abc"]).err(), Some(BAD_HASH));
        assert_eq!(
            user(&[&format!("#{}", "A".repeat(64))]).err(),
            Some(BAD_HASH)
        );
        let open = user(&["on", ">x", "nopass"]).expect("nopass");
        assert!(open.password_ok(b"anything") && open.password_hashes().is_empty());
        let closed = user(&["nopass", "resetpass"]).expect("resetpass");
        assert!(!closed.password_ok(b""));
    }

    #[test]
    fn the_sha256_of_a_known_string_is_right() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn key_patterns_match_as_globs() {
        let u = user(&["~app:*", "~shared"]).expect("keys");
        assert!(u.key_allowed(b"app:1") && u.key_allowed(b"shared"));
        assert!(!u.key_allowed(b"other:1") && !u.key_allowed(b"shared2"));
        assert!(user(&["allkeys"]).expect("all").key_allowed(b"anything"));
        assert_eq!(user(&["~*", "~a"]).err(), Some(AFTER_ALLKEYS));
        assert!(!user(&["~*", "resetkeys"]).expect("reset").key_allowed(b"a"));
    }

    #[test]
    fn command_rules_apply_in_order() {
        let t = commands::table();
        let id = |n: &str| t.id(n).expect(n);
        let u = user(&["+@all", "-@admin"]).expect("rules");
        assert!(u.allows(id("lock")) && u.allows(id("client|list")));
        assert!(!u.allows(id("flushall")) && !u.allows(id("client|kill")));
        assert!(!u.allows(id("config|get")) && !u.allows(id("acl|setuser")));
        assert!(u.allows(id("acl|whoami")) && u.allows(id("acl|cat")));
        assert!(!u.is_admin() && !u.all_commands());
        let lock = user(&["+@lock"]).expect("lock");
        assert!(lock.allows(id("lock")) && lock.allows(id("lock.info")));
        assert!(!lock.allows(id("get")) && !lock.allows(id("sem.acquire")));
        let sub = user(&["+client", "-client|kill"]).expect("sub");
        assert!(sub.allows(id("client|list")) && !sub.allows(id("client|kill")));
        let back = user(&["+client", "-client|kill", "+client"]).expect("again");
        assert!(back.allows(id("client|kill")));
        assert_eq!(back.command_rules(), ["-@all", "+client"]);
        assert!(user(&["allcommands"]).expect("all").all_commands());
        assert!(user(&["allcommands"]).expect("all").is_admin());
        assert_eq!(user(&["+nosuch"]).err(), Some(UNKNOWN_COMMAND));
        assert_eq!(user(&["+@nosuch"]).err(), Some(UNKNOWN_COMMAND));
        assert_eq!(user(&["bogus"]).err(), Some(SYNTAX));
    }

    #[test]
    fn limits_parse_and_show() {
        let u = user(&["max-held-keys:3", "max-waiters:0", "max-connections:2"]).expect("l");
        assert_eq!(
            u.limits(),
            Limits {
                max_held_keys: 3,
                max_waiters: 0,
                max_connections: 2
            }
        );
        assert!(u
            .describe()
            .ends_with("-@all max-held-keys:3 max-connections:2"));
        assert_eq!(user(&["max-waiters:-1"]).err(), Some(BAD_LIMIT));
        assert_eq!(user(&["max-waiters:"]).err(), Some(BAD_LIMIT));
        assert_eq!(user(&["max-bogus:1"]).err(), Some(SYNTAX));
    }

    #[test]
    fn reset_forgets_everything_but_the_name() {
        let u = user(&["on", ">p", "~*", "+@all", "max-waiters:4", "reset"]).expect("reset");
        assert_eq!(u, User::new("alice"));
    }
}
