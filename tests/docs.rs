//! The documentation cannot drift from the server:
//!
//! - docs/commands.md has an entry (`### NAME`) for every command of the command table, and
//!   none for a command that does not exist;
//! - the `redis-cli` examples of docs/commands.md and the README's quick tour, run in order
//!   against the real binary, give the replies they show;
//! - every flag in README's configuration table is one of `baton --help`'s, with its default;
//! - every relative link in README.md, CHANGELOG.md and docs/ resolves to a file inside the
//!   repository;
//! - the HELP texts (COMMAND DOCS) state what the issue reports asked for.
//!
//! An example block is a ```` ```text ```` fence. `$ redis-cli ARGS` runs ARGS on a new
//! connection, as redis-cli does; a trailing `&` runs it in the background (its reply is
//! expected among the lines of a later command, before or after that command's own);
//! `$ redis-cli` alone opens a session whose `127.0.0.1:6379> ARGS` lines share one
//! connection. Other lines are the expected output as redis-cli prints it to a terminal.
//! Two spaces and `#` start a comment. A number of four digits or more in the expected
//! output stands for any number (fencing tokens, ms left, ids and times change from run to
//! run); a line `...` stands for any number of lines.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use redis::{ConnectionLike, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

// ---------------------------------------------------------------------------------------
// docs/commands.md against the command table

#[test]
fn commands_md_has_an_entry_for_every_command() {
    let text = read("docs/commands.md");
    let documented: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|name| name.trim().to_string())
        .collect();
    let table: BTreeSet<String> = baton::cmd::spec::all()
        .map(|s| s.name.to_string())
        .collect();
    let missing: Vec<_> = table.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&table).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/commands.md is out of step with src/cmd/spec.rs: commands without an entry \
         (add a `### NAME` section with syntax, reply, errors and a redis-cli example): \
         {missing:?}; entries for commands the server does not have: {unknown:?}"
    );
    for spec in baton::cmd::spec::COMMANDS {
        let name = spec.name;
        let section = section_of(&text, name);
        assert!(
            section.contains(&format!("`{name}")) && section.contains("$ redis-cli"),
            "docs/commands.md `### {name}`: give its syntax (`{name} ...`) and a redis-cli \
             example"
        );
        // The syntax line names every option token the command table (HELP) has.
        let syntax = section
            .lines()
            .find(|l| l.starts_with(&format!("`{name}")))
            .unwrap_or_default();
        let mut tokens = Vec::new();
        option_tokens(spec.args, &mut tokens);
        for token in tokens {
            assert!(
                syntax
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .any(|w| w == token),
                "docs/commands.md `### {name}`: its syntax line lacks the option {token}: \
                 {syntax}"
            );
        }
    }
}

fn option_tokens(args: &[baton::cmd::spec::ArgDoc], out: &mut Vec<&'static str>) {
    for a in args {
        out.extend(a.token);
        option_tokens(a.args, out);
    }
}

/// The text from `### name` to the next heading.
fn section_of<'a>(text: &'a str, name: &str) -> &'a str {
    let head = format!("### {name}\n");
    let Some(start) = text.find(&head) else {
        return "";
    };
    let body = &text[start + head.len()..];
    let end = body.find("\n#").map_or(body.len(), |i| i + 1);
    &body[..end]
}

// ---------------------------------------------------------------------------------------
// HELP texts

#[test]
fn help_texts_state_units_ranges_and_every_option() {
    use baton::cmd::spec::lookup;
    let spec = |name: &str| lookup(name.as_bytes()).expect(name);
    for name in ["LOCK", "WLOCK", "RLOCK", "MLOCK", "SEM.ACQUIRE", "REFRESH"] {
        let summary = spec(name).summary;
        assert!(
            summary.contains("ttl ms"),
            "{name} does not say ttl is in ms: {summary}"
        );
    }
    for name in ["LOCK", "SEM.ACQUIRE", "REFRESH"] {
        let summary = spec(name).summary;
        assert!(
            summary.contains("--max-ttl-ms"),
            "{name} lacks the ttl range: {summary}"
        );
    }
    assert!(spec("LOCK").summary.contains("86400000"));
    assert!(spec("LOCK").summary.contains("0 = no limit"));
    let mut delex = Vec::new();
    option_tokens(spec("DELEX").args, &mut delex);
    assert_eq!(delex, ["IFEQ", "IFNE"]);
    let mut set = Vec::new();
    option_tokens(spec("SET").args, &mut set);
    for option in [
        "NX", "XX", "IFEQ", "IFNE", "GET", "EX", "PX", "EXAT", "PXAT", "KEEPTTL",
    ] {
        assert!(set.contains(&option), "SET's HELP lacks {option}: {set:?}");
    }
}

// ---------------------------------------------------------------------------------------
// README's configuration table against the real flags

#[test]
fn readme_flags_exist() {
    use clap::CommandFactory;
    let known: BTreeSet<String> = baton::config::Config::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    let readme = read("README.md");
    let start = readme
        .find("## Configuration")
        .expect("README has '## Configuration'");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let defaults: std::collections::BTreeMap<String, Vec<String>> =
        baton::config::Config::command()
            .get_arguments()
            .filter_map(|a| {
                let values = a
                    .get_default_values()
                    .iter()
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect();
                a.get_long().map(|l| (format!("--{l}"), values))
            })
            .collect();
    let mut named = 0;
    for row in section.lines().filter(|l| l.starts_with("| `--")) {
        let cells: Vec<&str> = row.split('|').collect();
        let code = |cell: &str| -> Vec<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        };
        let flags = code(cells.get(1).copied().unwrap_or_default());
        let shown = code(cells.get(2).copied().unwrap_or_default());
        for flag in &flags {
            named += 1;
            assert!(
                known.contains(flag),
                "README's configuration table names {flag}, which `baton --help` does not have"
            );
        }
        // A default in backticks is the flag's real default ("off" or "none" are words).
        if shown.len() == flags.len() {
            for (flag, value) in flags.iter().zip(&shown) {
                assert_eq!(
                    defaults.get(flag).map(Vec::as_slice),
                    Some(std::slice::from_ref(value)),
                    "README's configuration table gives {flag} the default {value}"
                );
            }
        }
    }
    assert!(
        named >= 5,
        "only {named} flags found in README's configuration table"
    );
}

// ---------------------------------------------------------------------------------------
// Relative links

#[test]
fn relative_links_resolve_inside_the_repository() {
    let root = repo().canonicalize().expect("repo");
    let mut files = vec![repo().join("README.md"), repo().join("CHANGELOG.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") || target.starts_with('#') {
                continue;
            }
            checked += 1;
            let path = target.split('#').next().unwrap_or_default();
            let resolved = file.parent().expect("dir").join(path);
            let inside = !path.starts_with('/')
                && resolved
                    .canonicalize()
                    .is_ok_and(|p| p.starts_with(&root) && !p.starts_with(root.join("target")));
            if !inside {
                broken.push(format!(
                    "{}: {target}",
                    file.strip_prefix(repo()).unwrap_or(file).display()
                ));
            }
        }
    }
    assert!(
        checked > 5,
        "only {checked} relative links found: is the parser broken?"
    );
    assert!(
        broken.is_empty(),
        "links that leave the repository or point at nothing: {broken:#?}"
    );
}

/// Targets of `[text](target)`, `![alt](target)` and `[ref]: target`, outside code.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        // Inline code spans are not links.
        let prose: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(" ");
        let trimmed = prose.trim_start();
        if trimmed.starts_with('[') {
            if let Some((_, rest)) = trimmed.split_once("]: ") {
                out.push(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                );
                continue;
            }
        }
        let mut rest = prose.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let end = after.find(')').unwrap_or(after.len());
            out.push(after[..end].trim().to_string());
            rest = &after[end..];
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Examples against the real binary

/// The real binary on a free port with its own data directory; killed on drop.
struct Baton {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Baton {
    fn start() -> Baton {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(["--port", "0", "--log-level", "info", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn baton");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Reads to the end so that the server never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("addr=").nth(1) {
                    let port = addr
                        .split_whitespace()
                        .next()
                        .and_then(|a| a.rsplit(':').next())
                        .and_then(|p| p.parse::<u16>().ok());
                    if let Some(port) = port {
                        let _ = tx.send(port);
                    }
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                panic!("baton did not log 'baton ready addr=...'");
            }
        };
        Baton {
            child,
            port,
            _dir: dir,
        }
    }

    fn connect(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .expect("client")
            .get_connection_with_timeout(Duration::from_secs(10))
            .expect("connect")
    }
}

impl Drop for Baton {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One command of an example and the lines it should print.
#[derive(Debug)]
struct Step {
    /// Where it is written, for messages.
    at: String,
    args: Vec<String>,
    background: bool,
    /// Index of the interactive session it belongs to, if any.
    session: Option<usize>,
    expected: Vec<String>,
}

const PROMPT: &str = "127.0.0.1:6379> ";

/// The steps of every ```` ```text ```` block of `text` that holds `$ redis-cli` lines.
fn steps(file: &str, text: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_block = false;
    let mut session = None;
    let mut sessions = 0;
    for (n, line) in text.lines().enumerate() {
        let at = format!("{file}:{}", n + 1);
        if !in_block {
            in_block = line.trim_end() == "```text";
            session = None;
            continue;
        }
        if line.starts_with("```") {
            in_block = false;
            continue;
        }
        let line = strip_comment(line);
        if let Some(cmd) = line.strip_prefix("$ ") {
            let mut words = split_args(cmd, &at);
            assert_eq!(
                words.first().map(String::as_str),
                Some("redis-cli"),
                "{at}: only redis-cli commands can be checked"
            );
            words.remove(0);
            let background = words.last().is_some_and(|w| w == "&");
            if background {
                words.pop();
            }
            if words.is_empty() {
                session = Some(sessions);
                sessions += 1;
                continue;
            }
            session = None;
            steps.push(Step {
                at,
                args: words,
                background,
                session: None,
                expected: Vec::new(),
            });
        } else if let Some(cmd) = line.strip_prefix(PROMPT) {
            assert!(session.is_some(), "{at}: a prompt line outside a session");
            steps.push(Step {
                args: split_args(cmd, &at),
                at,
                background: false,
                session,
                expected: Vec::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.expected.push(line.to_string());
        }
    }
    steps
}

/// The line without a trailing `  # comment`.
fn strip_comment(line: &str) -> &str {
    line.find("  #").map_or(line, |i| &line[..i]).trim_end()
}

/// Splits a command line as a shell (and redis-cli) would: words, '...' and "...".
fn split_args(line: &str, at: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return words;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c == '\'' || c == '"' {
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(ch) => word.push(ch),
                        None => panic!("{at}: unbalanced quote"),
                    }
                }
            } else {
                word.push(c);
            }
        }
        words.push(word);
    }
}

/// What `redis-cli` prints for `reply` to a terminal (its `cliFormatReplyTTY`), or, for the
/// commands it always prints raw (`INFO`, `CLIENT LIST|INFO`), the text itself.
fn format_reply(args: &[String], reply: &Value) -> Vec<String> {
    let upper: Vec<String> = args.iter().map(|a| a.to_ascii_uppercase()).collect();
    let raw = upper.first().is_some_and(|c| c == "INFO")
        || upper.first().is_some_and(|c| c == "CLIENT")
            && upper.get(1).is_some_and(|s| s == "LIST" || s == "INFO");
    let text = match (raw, reply) {
        (true, Value::BulkString(b)) => String::from_utf8_lossy(b).replace('\r', ""),
        (true, Value::VerbatimString { text, .. }) => text.replace('\r', ""),
        _ => tty(reply, ""),
    };
    text.trim_end_matches('\n')
        .split('\n')
        .map(str::to_string)
        .collect()
}

fn tty(value: &Value, prefix: &str) -> String {
    match value {
        Value::Nil => "(nil)\n".into(),
        Value::Int(n) => format!("(integer) {n}\n"),
        Value::Double(d) => format!("(double) {d}\n"),
        Value::Boolean(b) => format!("({b})\n"),
        Value::Okay => "OK\n".into(),
        Value::SimpleString(s) => format!("{s}\n"),
        Value::BulkString(b) => format!("{}\n", repr(b)),
        Value::VerbatimString { text, .. } => format!("{}\n", repr(text.as_bytes())),
        Value::ServerError(e) => match e.details() {
            Some(detail) => format!("(error) {} {detail}\n", e.code()),
            None => format!("(error) {}\n", e.code()),
        },
        Value::Array(items) => list(items, prefix, ')', "(empty array)"),
        Value::Set(items) => list(items, prefix, '~', "(empty set)"),
        Value::Map(pairs) => {
            let flat: Vec<Value> = pairs
                .iter()
                .flat_map(|(k, v)| [k.clone(), v.clone()])
                .collect();
            list(&flat, prefix, '#', "(empty hash)")
        }
        other => format!("{other:?}\n"),
    }
}

fn list(items: &[Value], prefix: &str, sep: char, empty: &str) -> String {
    if items.is_empty() {
        return format!("{empty}\n");
    }
    let width = items.len().to_string().len();
    let nested = format!("{prefix}{}", " ".repeat(width + 2));
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(prefix);
        }
        out.push_str(&format!("{:>width$}{sep} ", i + 1));
        out.push_str(&tty(item, &nested));
    }
    out
}

/// redis-cli's quoted rendering of a bulk string (`sdscatrepr`).
fn repr(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            b if b.is_ascii_graphic() || b == b' ' => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// Whether `actual` is what `expected` shows (see the module doc for the wildcards).
fn lines_match(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => {
            (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..]))
        }
        Some((first, rest)) => actual
            .split_first()
            .is_some_and(|(a, arest)| line_matches(first, a) && lines_match(rest, arest)),
    }
}

fn line_matches(expected: &str, actual: &str) -> bool {
    let (e, a) = (runs(expected.trim_end()), runs(actual.trim_end()));
    e.len() == a.len()
        && e.iter()
            .zip(&a)
            .all(|((ed, es), (ad, as_))| ed == ad && (es == as_ || *ed && es.len() >= 4))
}

/// The line cut into alternating runs of digits and of other characters.
fn runs(line: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = line.as_bytes();
    for i in 1..=bytes.len() {
        if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
            out.push((bytes[start].is_ascii_digit(), &line[start..i]));
            start = i;
        }
    }
    out
}

/// How many connections the server counts as blocked (INFO clients).
fn blocked_clients(con: &mut redis::Connection) -> usize {
    let info: String = redis::cmd("INFO").arg("clients").query(con).expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs `steps` in order against `baton`; returns every mismatch.
fn run_steps(baton: &Baton, steps: &[Step]) -> Vec<String> {
    let mut failures = Vec::new();
    let mut sessions: Vec<(usize, redis::Connection)> = Vec::new();
    let mut background: Vec<(String, mpsc::Receiver<Vec<String>>)> = Vec::new();
    let mut observer = baton.connect();
    for step in steps {
        let mut cmd = redis::cmd(&step.args[0]);
        for arg in &step.args[1..] {
            cmd.arg(arg.as_str());
        }
        if step.background {
            let mut con = baton.connect();
            let args = step.args.clone();
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let reply = con.req_command(&cmd).expect("background reply");
                let _ = tx.send(format_reply(&args, &reply));
            });
            background.push((step.at.clone(), rx));
            // Typed by a person, the next command comes long after this one has queued.
            let deadline = Instant::now() + Duration::from_secs(20);
            while blocked_clients(&mut observer) < background.len() {
                assert!(Instant::now() < deadline, "{}: never blocked", step.at);
                std::thread::sleep(Duration::from_millis(5));
            }
            if !step.expected.is_empty() {
                failures.push(format!("{}: a background command prints later", step.at));
            }
            continue;
        }
        let reply = match step.session {
            Some(id) => {
                if !sessions.iter().any(|(s, _)| *s == id) {
                    sessions.push((id, baton.connect()));
                }
                let con = &mut sessions
                    .iter_mut()
                    .find(|(s, _)| *s == id)
                    .expect("session")
                    .1;
                con.req_command(&cmd)
            }
            None => baton.connect().req_command(&cmd),
        };
        let own = match reply {
            Ok(value) => format_reply(&step.args, &value),
            Err(err) => vec![format!("(client error) {err}")],
        };
        let mut ok = lines_match(&step.expected, &own);
        let mut shown = own.clone();
        if !ok && step.expected.len() > own.len() && !background.is_empty() {
            // The rest is a background command's reply, in either order.
            let (at, rx) = background.remove(0);
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(bg) => {
                    let after = [own.clone(), bg.clone()].concat();
                    let before = [bg, own].concat();
                    ok =
                        lines_match(&step.expected, &after) || lines_match(&step.expected, &before);
                    shown = after;
                }
                Err(_) => failures.push(format!("{at}: the background command never replied")),
            }
        }
        if !ok {
            failures.push(format!(
                "{}: `{}`\n  expected:\n    {}\n  got:\n    {}",
                step.at,
                step.args.join(" "),
                step.expected.join("\n    "),
                shown.join("\n    ")
            ));
        }
    }
    for (at, _) in background {
        failures.push(format!(
            "{at}: no later line shows this background command's reply"
        ));
    }
    failures
}

fn check_examples(file: &str, text: &str) {
    let steps = steps(file, text);
    assert!(
        steps.len() >= 5,
        "{file}: only {} example commands found",
        steps.len()
    );
    let baton = Baton::start();
    let failures = run_steps(&baton, &steps);
    assert!(
        failures.is_empty(),
        "{file} shows replies the server does not give ({} of {} commands):\n{}",
        failures.len(),
        steps.len(),
        failures.join("\n")
    );
}

#[test]
fn commands_md_examples_give_the_replies_shown() {
    check_examples("docs/commands.md", &read("docs/commands.md"));
}

#[test]
fn readme_quick_tour_gives_the_replies_shown() {
    let readme = read("README.md");
    let start = readme
        .find("## Quick tour")
        .expect("README has a '## Quick tour'");
    let tour = &readme[start..];
    let end = tour[3..].find("\n## ").map_or(tour.len(), |i| i + 3);
    check_examples("README.md", &tour[..end]);
}

#[test]
fn the_matcher_accepts_what_it_should_and_nothing_else() {
    let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(lines_match(
        &l(&["(integer) 1796460000000001"]),
        &l(&["(integer) 42"])
    ));
    assert!(!lines_match(&l(&["(integer) 1"]), &l(&["(integer) 0"])));
    assert!(!lines_match(&l(&["(nil)"]), &l(&["(integer) 0"])));
    assert!(lines_match(
        &l(&["a", "...", "z"]),
        &l(&["a", "b", "c", "z"])
    ));
    assert!(lines_match(&l(&["a", "..."]), &l(&["a"])));
    assert!(!lines_match(&l(&["a"]), &l(&["a", "b"])));
    assert_eq!(
        split_args(r#"EVAL "return 'x'" 0 'a b'"#, "t"),
        ["EVAL", "return 'x'", "0", "a b"]
    );
    assert_eq!(strip_comment("(nil)      # taken"), "(nil)");
    assert_eq!(strip_comment("# Server"), "# Server");
    let nested = Value::Array(vec![
        Value::BulkString(b"holders".to_vec()),
        Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"owner".to_vec()),
            Value::Int(7),
        ])]),
    ]);
    assert_eq!(
        format_reply(&["X".into()], &nested),
        l(&[
            "1) \"holders\"",
            "2) 1) 1) \"owner\"",
            "      2) (integer) 7"
        ])
    );
}
