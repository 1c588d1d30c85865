//! Issue 18, ACL users as tenants, against the real binary: AUTH as a user, what a tenant
//! may run, see and count, the admin-only commands, ACL SETUSER / DELUSER / SAVE / LOAD,
//! and the per-user limits that live outside the lock table.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::process::{resp, Baton};

/// A tiny RESP reader: one reply as text (errors as `-TEXT`, arrays as `[a, b]`).
fn reply(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("reply line");
    let line = line.trim_end_matches("\r\n").to_string();
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" | ":" | "_" => rest.to_string(),
        "-" => format!("-{rest}"),
        "$" | "=" => {
            let n: i64 = rest.parse().expect("length");
            if n < 0 {
                return "(nil)".into();
            }
            let mut buf = vec![0u8; n as usize + 2];
            r.read_exact(&mut buf).expect("bulk");
            buf.truncate(n as usize);
            String::from_utf8_lossy(&buf).into_owned()
        }
        "*" | "%" => {
            let n: i64 = rest.parse().expect("count");
            if n < 0 {
                return "(nil)".into();
            }
            let n = if kind == "%" { n * 2 } else { n };
            let items: Vec<String> = (0..n).map(|_| reply(r)).collect();
            format!("[{}]", items.join(", "))
        }
        other => panic!("unexpected reply type {other}: {line}"),
    }
}

struct Client(BufReader<TcpStream>);

impl Client {
    fn new(baton: &Baton) -> Client {
        Client(BufReader::new(baton.raw()))
    }

    fn as_user(baton: &Baton, user: &str, pass: &str) -> Client {
        let mut c = Client::new(baton);
        assert_eq!(c.ask(&["AUTH", user, pass]), "OK", "AUTH {user}");
        c
    }

    fn ask(&mut self, args: &[&str]) -> String {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.0.get_mut().write_all(&resp(&args)).expect("send");
        reply(&mut self.0)
    }

    /// Whether the server closed the connection.
    fn closed(&mut self) -> bool {
        let _ = self
            .0
            .get_mut()
            .set_read_timeout(Some(Duration::from_secs(10)));
        let mut buf = [0u8; 64];
        matches!(self.0.read(&mut buf), Ok(0) | Err(_))
    }
}

const USERS: &str = "\
# two teams and an admin
user default on >adminpw ~* +@all
user alice on >alicepw ~app:a:* +@all -@admin
user bob on >bobpw ~app:b:* -@all +@lock +@connection +@keyspace -@admin
";

fn acl_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("users.acl");
    std::fs::write(&path, text).expect("write acl file");
    let path = path.to_string_lossy().into_owned();
    (dir, path)
}

#[test]
fn a_tenant_can_neither_touch_nor_see_nor_count_another_tenants_locks() {
    let (_dir, path) = acl_file(USERS);
    let baton = Baton::start(&["--aclfile", &path]);
    let mut anon = Client::new(&baton);
    assert_eq!(
        anon.ask(&["LOCK", "app:a:1", "o", "10000"]),
        "-NOAUTH Authentication required."
    );
    let mut alice = Client::as_user(&baton, "alice", "alicepw");
    let mut bob = Client::as_user(&baton, "bob", "bobpw");
    assert_eq!(alice.ask(&["ACL", "WHOAMI"]), "alice");
    assert!(alice
        .ask(&["LOCK", "app:a:1", "alice-1", "60000"])
        .parse::<i64>()
        .is_ok());
    assert!(bob
        .ask(&["LOCK", "app:b:1", "bob-1", "60000"])
        .parse::<i64>()
        .is_ok());
    assert!(bob
        .ask(&["LOCK", "app:b:2", "bob-2", "60000"])
        .parse::<i64>()
        .is_ok());

    // Touch: release with a guessed owner, DEL, read its state.
    const NOKEY: &str = "-NOPERM No permissions to access a key";
    assert_eq!(alice.ask(&["UNLOCK", "app:b:1", "bob-1"]), NOKEY);
    assert_eq!(alice.ask(&["DEL", "app:b:1"]), NOKEY);
    assert_eq!(alice.ask(&["UNLINK", "app:b:1"]), NOKEY);
    assert_eq!(alice.ask(&["LOCK.INFO", "app:b:1"]), NOKEY);
    assert_eq!(alice.ask(&["EXISTS", "app:b:1"]), NOKEY);
    assert_eq!(alice.ask(&["PTTL", "app:b:1"]), NOKEY);
    assert_eq!(
        alice.ask(&["MLOCK", "2", "app:a:9", "app:b:1", "alice-x", "1000"]),
        NOKEY
    );
    assert_eq!(
        alice.ask(&["EVAL", "return 1", "1", "app:b:1"]),
        NOKEY,
        "a script's declared keys are checked"
    );
    // See: KEYS and SCAN return only the tenant's keys.
    assert_eq!(alice.ask(&["KEYS", "*"]), "[app:a:1]");
    assert_eq!(
        alice.ask(&["SCAN", "0", "COUNT", "100000"]),
        "[0, [app:a:1]]"
    );
    let bob_keys = bob.ask(&["KEYS", "*"]);
    assert!(
        bob_keys.contains("app:b:1") && bob_keys.contains("app:b:2") && !bob_keys.contains("app:a")
    );
    // Count: DBSIZE and INFO keyspace count only the tenant's keys.
    assert_eq!(alice.ask(&["DBSIZE"]), "1");
    assert_eq!(bob.ask(&["DBSIZE"]), "2");
    assert!(alice.ask(&["INFO", "keyspace"]).contains("db0:keys=1,"));
    let mut admin = Client::as_user(&baton, "default", "adminpw");
    assert_eq!(admin.ask(&["DBSIZE"]), "3");
    assert!(admin.ask(&["INFO", "keyspace"]).contains("db0:keys=3,"));
    // The other tenant's lock is still held by its owner.
    assert!(bob.ask(&["LOCK.INFO", "app:b:1"]).contains("bob-1"));
}

#[test]
fn admin_commands_need_admin() {
    let (_dir, path) = acl_file(USERS);
    let baton = Baton::start(&["--aclfile", &path]);
    let mut alice = Client::as_user(&baton, "alice", "alicepw");
    let denied =
        |cmd: &str| format!("-NOPERM User alice has no permissions to run the '{cmd}' command");
    assert_eq!(alice.ask(&["FLUSHALL"]), denied("flushall"));
    assert_eq!(alice.ask(&["FLUSHDB"]), denied("flushdb"));
    assert_eq!(
        alice.ask(&["CONFIG", "SET", "max-clients", "5"]),
        denied("config|set")
    );
    assert_eq!(
        alice.ask(&["CLIENT", "KILL", "ID", "1"]),
        denied("client|kill")
    );
    assert_eq!(
        alice.ask(&["ACL", "SETUSER", "eve", "on"]),
        denied("acl|setuser")
    );
    assert_eq!(alice.ask(&["SCRIPT", "FLUSH"]), denied("script|flush"));
    // Not admin: the connection's own commands, ACL WHOAMI and CAT, SCRIPT LOAD.
    assert!(alice.ask(&["CLIENT", "LIST"]).contains("user=alice"));
    assert_eq!(alice.ask(&["CLIENT", "SETNAME", "a"]), "OK");
    assert!(alice.ask(&["ACL", "CAT"]).contains("lock"));
    assert_eq!(alice.ask(&["SCRIPT", "LOAD", "return 1"]).len(), 40);
    // Bob has only @lock, @connection and @keyspace.
    let mut bob = Client::as_user(&baton, "bob", "bobpw");
    assert_eq!(
        bob.ask(&["SET", "app:b:s", "v"]),
        "-NOPERM User bob has no permissions to run the 'set' command"
    );
    // Inside a script the check is the same, in Redis 7's script wording.
    let mut carol_setup = Client::as_user(&baton, "default", "adminpw");
    assert_eq!(
        carol_setup.ask(&["ACL", "SETUSER", "carol", "on", ">c", "~c:*", "-@all", "+eval", "+get"]),
        "OK"
    );
    let mut carol = Client::as_user(&baton, "carol", "c");
    let err = carol.ask(&["EVAL", "return redis.call('set', KEYS[1], 'x')", "1", "c:1"]);
    assert!(
        err.starts_with(
            "-ERR ACL failure in script: User carol has no permissions to run the 'set' command"
        ),
        "{err}"
    );
    assert_eq!(
        carol.ask(&["EVAL", "return redis.call('get', KEYS[1])", "1", "c:1"]),
        "(nil)"
    );
}

#[test]
fn refusals_are_counted_in_info_by_command_and_by_key() {
    let (_dir, path) = acl_file(USERS);
    let baton = Baton::start(&["--aclfile", &path]);
    let mut admin = Client::as_user(&baton, "default", "adminpw");
    let counts = |admin: &mut Client| {
        let info = admin.ask(&["INFO", "stats"]);
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .unwrap_or_else(|| panic!("INFO stats has no {name}: {info}"))
                .to_string()
        };
        (
            field("acl_access_denied_cmd"),
            field("acl_access_denied_key"),
        )
    };
    assert_eq!(counts(&mut admin), ("0".into(), "0".into()));
    let mut alice = Client::as_user(&baton, "alice", "alicepw");
    assert!(alice.ask(&["FLUSHALL"]).starts_with("-NOPERM User alice"));
    assert!(alice
        .ask(&["CONFIG", "SET", "max-clients", "5"])
        .starts_with("-NOPERM User"));
    assert!(alice
        .ask(&["EVAL", "return redis.call('flushall')", "0"])
        .starts_with("-ERR ACL failure in script: User alice"));
    assert_eq!(
        alice.ask(&["UNLOCK", "app:b:1", "x"]),
        "-NOPERM No permissions to access a key"
    );
    // Allowed commands and other errors are not counted.
    assert!(alice
        .ask(&["LOCK", "app:a:1", "o", "1000"])
        .parse::<i64>()
        .is_ok());
    assert!(alice
        .ask(&["LOCK", "app:a:2"])
        .starts_with("-ERR wrong number"));
    assert_eq!(counts(&mut admin), ("3".into(), "1".into()));
}

#[test]
fn deleting_a_held_key_needs_admin_but_a_string_stays_deletable() {
    let (_dir, path) = acl_file(USERS);
    let baton = Baton::start(&["--aclfile", &path]);
    let mut alice = Client::as_user(&baton, "alice", "alicepw");
    assert!(alice
        .ask(&["LOCK", "app:a:held", "o", "60000"])
        .parse::<i64>()
        .is_ok());
    assert_eq!(
        alice.ask(&["DEL", "app:a:held"]),
        "-NOPERM User alice has no permissions to run the 'del' command on a held lock"
    );
    assert!(alice.ask(&["SEM.CREATE", "app:a:sem", "2"]).len() <= 2);
    assert!(alice
        .ask(&["SEM.ACQUIRE", "app:a:sem", "o", "60000"])
        .parse::<i64>()
        .is_ok());
    assert!(alice
        .ask(&["DEL", "app:a:sem"])
        .starts_with("-NOPERM User alice"));
    // Redlock's lock is a string: its release script's DEL runs.
    assert_eq!(
        alice.ask(&["SET", "app:a:redlock", "tok", "PX", "60000", "NX"]),
        "OK"
    );
    assert_eq!(
        alice.ask(&[
            "EVAL",
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end",
            "1",
            "app:a:redlock",
            "tok",
        ]),
        "1"
    );
    assert_eq!(alice.ask(&["UNLOCK", "app:a:held", "o"]), "1");
    assert_eq!(alice.ask(&["DEL", "app:a:held"]), "0");
    let mut admin = Client::as_user(&baton, "default", "adminpw");
    assert!(alice
        .ask(&["LOCK", "app:a:held", "o", "60000"])
        .parse::<i64>()
        .is_ok());
    assert_eq!(admin.ask(&["DEL", "app:a:held"]), "1");
    assert_eq!(admin.ask(&["FLUSHALL"]), "OK");
}

#[test]
fn setuser_then_auth_and_a_disabled_or_deleted_user_is_out() {
    let baton = Baton::start(&["--requirepass", "adminpw"]);
    let mut admin = Client::as_user(&baton, "default", "adminpw");
    assert_eq!(
        admin.ask(&["AUTH", "adminpw"]),
        "OK",
        "AUTH password is default's"
    );
    assert_eq!(
        admin.ask(&["ACL", "SETUSER", "dave", "on", ">d1", "~d:*", "+@lock"]),
        "OK"
    );
    let list = admin.ask(&["ACL", "LIST"]);
    assert!(list.contains("user dave on #"), "{list}");
    assert!(list.contains(" ~d:* -@all +@lock"), "{list}");
    assert_eq!(admin.ask(&["ACL", "USERS"]), "[dave, default]");
    assert_eq!(
        admin.ask(&["ACL", "SETUSER", "dave", "+bogus"]),
        "-ERR Error in ACL SETUSER modifier '+bogus': Unknown command or category name in ACL"
    );
    let mut dave = Client::new(&baton);
    assert!(dave
        .ask(&["HELLO", "3", "AUTH", "dave", "d1"])
        .contains("proto"));
    assert_eq!(
        dave.ask(&["ACL", "WHOAMI"]),
        "-NOPERM User dave has no permissions to run the 'acl|whoami' command"
    );
    let mut wrong = Client::new(&baton);
    assert_eq!(
        wrong.ask(&["AUTH", "dave", "nope"]),
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    // Disabling closes the user's connections; AUTH then answers WRONGPASS.
    assert_eq!(admin.ask(&["ACL", "SETUSER", "dave", "off"]), "OK");
    assert!(dave.closed(), "a disabled user's connection is closed");
    let mut again = Client::new(&baton);
    assert_eq!(
        again.ask(&["AUTH", "dave", "d1"]),
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(admin.ask(&["ACL", "SETUSER", "dave", "on"]), "OK");
    let mut dave = Client::as_user(&baton, "dave", "d1");
    assert!(admin.ask(&["CLIENT", "LIST"]).contains("user=dave"));
    assert_eq!(admin.ask(&["CLIENT", "KILL", "USER", "dave"]), "1");
    assert!(dave.closed());
    let mut dave = Client::as_user(&baton, "dave", "d1");
    assert_eq!(admin.ask(&["ACL", "DELUSER", "dave", "nobody"]), "1");
    assert!(dave.closed(), "a deleted user's connection is closed");
    assert_eq!(
        admin.ask(&["ACL", "DELUSER", "default"]),
        "-ERR The 'default' user cannot be removed"
    );
    assert_eq!(
        admin.ask(&["CLIENT", "KILL", "USER", "dave"]),
        "-ERR No such user 'dave'"
    );
    assert!(admin
        .ask(&["ACL", "SAVE"])
        .starts_with("-ERR This Redis instance is not configured to use an ACL file."));
    assert!(admin
        .ask(&["ACL", "LOAD"])
        .starts_with("-ERR This Redis instance is not configured to use an ACL file."));
}

#[test]
fn acl_save_survives_a_restart_and_load_is_all_or_nothing() {
    let (_dir, path) = acl_file("user default on nopass ~* +@all\n");
    {
        let baton = Baton::start(&["--aclfile", &path]);
        let mut admin = Client::new(&baton);
        assert_eq!(
            admin.ask(&[
                "ACL",
                "SETUSER",
                "erin",
                "on",
                ">e",
                "~e:*",
                "-@all",
                "+@lock",
                "max-held-keys:4"
            ]),
            "OK"
        );
        assert_eq!(admin.ask(&["ACL", "SAVE"]), "OK");
    }
    let saved = std::fs::read_to_string(&path).expect("saved file");
    assert!(saved.contains("user erin on #"), "{saved}");
    let baton = Baton::start(&["--aclfile", &path]);
    let mut erin = Client::as_user(&baton, "erin", "e");
    assert!(erin
        .ask(&["LOCK", "e:1", "o", "1000"])
        .parse::<i64>()
        .is_ok());
    let mut admin = Client::new(&baton);
    std::fs::write(&path, "user erin off\nnot a user line\n").expect("write");
    let err = admin.ask(&["ACL", "LOAD"]);
    assert!(err.contains(":2 should start with user keyword."), "{err}");
    assert!(
        err.ends_with("no change to the previously active ACL rules was performed"),
        "{err}"
    );
    assert!(
        erin.ask(&["LOCK", "e:2", "o", "1000"])
            .parse::<i64>()
            .is_ok(),
        "nothing changed"
    );
    std::fs::write(&path, "user default on nopass ~* +@all\n").expect("write");
    assert_eq!(admin.ask(&["ACL", "LOAD"]), "OK");
    assert!(erin.closed(), "a user the file no longer has is closed");
    assert_eq!(admin.ask(&["ACL", "USERS"]), "[default]");
}

#[test]
fn a_bad_acl_file_stops_the_start_naming_the_line() {
    let (_dir, path) = acl_file("user alice on >a\nuser bob on +@nosuch\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["--port", "0", "--persistence", "off", "--aclfile", &path])
        .env("NO_COLOR", "1")
        .output()
        .expect("run baton");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("users.acl:2: Unknown command or category name in ACL."),
        "{stderr}"
    );
}

#[test]
fn max_connections_refuses_the_auth_beyond_it() {
    let (_dir, path) = acl_file(
        "user default on nopass ~* +@all\nuser fay on >f ~f:* +@all -@admin max-connections:2\n",
    );
    let baton = Baton::start(&["--aclfile", &path]);
    let _one = Client::as_user(&baton, "fay", "f");
    let mut two = Client::as_user(&baton, "fay", "f");
    let mut three = Client::new(&baton);
    assert_eq!(
        three.ask(&["AUTH", "fay", "f"]),
        "-ERR max connections reached for user 'fay' (max 2)"
    );
    assert_eq!(
        three.ask(&["ACL", "WHOAMI"]),
        "default",
        "the refused AUTH changed nothing"
    );
    assert_eq!(two.ask(&["QUIT"]), "OK");
    assert!(two.closed());
    common::eventually(
        "the closed connection frees its place",
        Duration::from_secs(10),
        || Client::new(&baton).ask(&["AUTH", "fay", "f"]) == "OK",
    );
}

#[test]
fn max_waiters_answers_at_once_beyond_it() {
    let (_dir, path) = acl_file(
        "user default on nopass ~* +@all\nuser gus on >g ~g:* +@all -@admin max-waiters:1\n",
    );
    let baton = Baton::start(&["--aclfile", &path]);
    let mut admin = Client::new(&baton);
    assert!(admin
        .ask(&["LOCK", "g:k", "admin", "60000"])
        .parse::<i64>()
        .is_ok());
    let mut first = Client::as_user(&baton, "gus", "g");
    let waiting = resp(&[b"LOCK", b"g:k", b"one", b"60000", b"WAIT", b"0"]);
    first.0.get_mut().write_all(&waiting).expect("send");
    common::eventually("the first request waits", Duration::from_secs(10), || {
        admin.ask(&["LOCK.INFO", "g:k"]).ends_with("waiters, 1]")
    });
    let mut second = Client::as_user(&baton, "gus", "g");
    assert_eq!(
        second.ask(&["LOCK", "g:k", "two", "60000", "WAIT", "5000"]),
        "-ERR max waiters reached for user 'gus' (max 1)"
    );
    assert!(
        second
            .ask(&["LOCK", "g:other", "two", "60000"])
            .parse::<i64>()
            .is_ok(),
        "a request without WAIT is not a waiter"
    );
    assert_eq!(admin.ask(&["UNLOCK", "g:k", "admin"]), "1");
    assert!(
        reply(&mut first.0).parse::<i64>().is_ok(),
        "the waiter is granted"
    );
    // Its place is free again: the next WAIT queues (and runs out).
    assert_eq!(
        second.ask(&["LOCK", "g:k", "two", "60000", "WAIT", "50"]),
        "(nil)"
    );
}

#[test]
fn max_held_keys_follows_release_expiry_del_and_flushall() {
    let (_dir, path) = acl_file(
        "user default on nopass ~* +@all\nuser hal on >h ~h:* +@all -@admin max-held-keys:2\n",
    );
    let baton = Baton::start(&["--aclfile", &path]);
    let mut admin = Client::new(&baton);
    let mut hal = Client::as_user(&baton, "hal", "h");
    const FULL: &str = "-ERR max held keys reached for user 'hal' (max 2)";
    let granted = |c: &mut Client, key: &str, ttl: &str| {
        c.ask(&["LOCK", key, "o", ttl]).parse::<i64>().is_ok()
    };
    assert!(granted(&mut hal, "h:1", "60000"));
    assert!(granted(&mut hal, "h:2", "300"));
    assert_eq!(hal.ask(&["LOCK", "h:3", "o", "60000"]), FULL);
    assert_eq!(
        hal.ask(&["SEM.ACQUIRE", "h:s", "o", "60000", "CAPACITY", "3"]),
        FULL
    );
    assert_eq!(hal.ask(&["MLOCK", "2", "h:1", "h:4", "o", "60000"]), FULL);
    assert!(
        granted(&mut hal, "h:1", "60000"),
        "a key already held is no new key"
    );
    // Expiry frees a place.
    common::eventually("h:2's lease runs out", Duration::from_secs(10), || {
        hal.ask(&["EXISTS", "h:2"]) == "0"
    });
    assert!(granted(&mut hal, "h:3", "60000"));
    assert_eq!(hal.ask(&["LOCK", "h:4", "o", "60000"]), FULL);
    // Release, DEL (by the admin) and FLUSHALL free places too.
    assert_eq!(hal.ask(&["UNLOCK", "h:3", "o"]), "1");
    assert!(granted(&mut hal, "h:4", "60000"));
    assert_eq!(admin.ask(&["DEL", "h:4"]), "1");
    assert!(granted(&mut hal, "h:5", "60000"));
    assert_eq!(hal.ask(&["LOCK", "h:6", "o", "60000"]), FULL);
    assert_eq!(admin.ask(&["FLUSHALL"]), "OK");
    assert!(granted(&mut hal, "h:6", "60000"));
    assert!(granted(&mut hal, "h:7", "60000"));
    assert_eq!(hal.ask(&["LOCK", "h:8", "o", "60000"]), FULL);
    // Another tenant's holds do not count.
    assert!(granted(&mut admin, "other:1", "60000"));
    assert_eq!(hal.ask(&["UNLOCK", "h:7", "o"]), "1");
    assert!(granted(&mut hal, "h:8", "60000"));
}
