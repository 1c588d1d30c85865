//! Connection commands: the ones client libraries send on their own.
//!
//! ```text
//! PING [message]      ECHO message        SELECT index        QUIT        RESET
//! HELLO [protover [AUTH username password] [SETNAME name]]
//! AUTH [username] password
//! CLIENT SETNAME name | GETNAME | ID | SETINFO LIB-NAME|LIB-VER value | INFO | LIST
//!        | KILL ip:port | KILL filter value [filter value ...]
//!        | NO-EVICT on|off | NO-TOUCH on|off
//! ```
//!
//! CLIENT KILL filters, as Redis 7: `ID id`, `ADDR ip:port`, `LADDR ip:port`, `USER name`,
//! `TYPE normal|master|replica|slave|pubsub`, `MAXAGE seconds`, `SKIPME yes|no` (default
//! yes). Every filter given must match. `USER` names an ACL user (`-ERR No such user` else).
//!
//! AUTH and `HELLO ... AUTH` check the password through `cmd::auth` (constant-time
//! comparison, failures counted and slowed down per connection).

use bytes::Bytes;

use super::args::{parse_int, Args};
use super::spec::{CommandId, Spec};
use super::{ClientInfo, Effect, Executed, Session, Shared};
use crate::error::RespError;
use crate::resp::{Protocol, Reply};

/// The commands of this family, as the command table names them: [`ConnCommand::parse`]
/// matches every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnId {
    /// PING.
    Ping,
    /// ECHO.
    Echo,
    /// HELLO.
    Hello,
    /// AUTH.
    Auth,
    /// SELECT.
    Select,
    /// CLIENT.
    Client,
    /// QUIT.
    Quit,
    /// RESET.
    Reset,
}

/// A parsed connection command.
#[derive(Debug, Clone)]
pub enum ConnCommand {
    /// `PING [message]`.
    Ping(Option<Bytes>),
    /// ECHO message.
    Echo(Bytes),
    /// HELLO.
    Hello {
        /// Protocol asked for.
        proto: Option<Protocol>,
        /// AUTH username password.
        auth: Option<(Bytes, Bytes)>,
        /// SETNAME name.
        name: Option<Bytes>,
    },
    /// `AUTH [username] password`.
    Auth {
        /// Username (default: `default`).
        user: Bytes,
        /// Password.
        pass: Bytes,
    },
    /// SELECT index.
    Select(i64),
    /// CLIENT subcommand.
    Client(ClientSub),
    /// QUIT.
    Quit,
    /// RESET.
    Reset,
}

/// CLIENT subcommands.
#[derive(Debug, Clone)]
pub enum ClientSub {
    /// SETNAME name.
    SetName(Bytes),
    /// GETNAME.
    GetName,
    /// ID.
    Id,
    /// SETINFO LIB-NAME|LIB-VER value.
    SetInfo {
        /// LIB-NAME (true) or LIB-VER.
        lib_name: bool,
        /// The value.
        value: Bytes,
    },
    /// INFO.
    Info,
    /// LIST.
    List,
    /// `KILL ip:port`: the old form, `+OK` or an error when no client has that address.
    KillAddr(String),
    /// `KILL filter value ...`: how many clients were closed.
    Kill(KillFilter),
    /// Accepted and ignored (NO-EVICT, NO-TOUCH).
    Ok,
}

/// The filters of `CLIENT KILL filter value ...`; a client is closed when all match.
#[derive(Debug, Clone, Default)]
pub struct KillFilter {
    /// ID.
    pub id: Option<u64>,
    /// ADDR (peer ip:port).
    pub addr: Option<String>,
    /// LADDR (local ip:port).
    pub laddr: Option<String>,
    /// MAXAGE: connected longer than this many seconds.
    pub max_age: Option<u64>,
    /// USER: authenticated as this ACL user.
    pub user: Option<String>,
    /// TYPE other than normal: matches no client (baton has no replicas or pub/sub).
    pub no_type_matches: bool,
    /// SKIPME no: the calling client may be closed too.
    pub include_me: bool,
}

impl KillFilter {
    /// Parses the `filter value` pairs after `CLIENT KILL`.
    fn parse(args: &mut Args<'_>) -> Result<Self, RespError> {
        let mut filter = KillFilter::default();
        while let Some(name) = args.next() {
            let Some(value) = args.next() else {
                return Err(RespError::SYNTAX);
            };
            let text = String::from_utf8_lossy(value).into_owned();
            match name.to_ascii_uppercase().as_slice() {
                b"ID" => match parse_int(value).ok() {
                    Some(id) if id > 0 => filter.id = Some(id as u64),
                    _ => return Err(RespError::fixed("ERR client-id should be greater than 0")),
                },
                b"ADDR" => filter.addr = Some(text),
                b"LADDR" => filter.laddr = Some(text),
                b"USER" => filter.user = Some(text),
                b"TYPE" => match text.to_ascii_lowercase().as_str() {
                    "normal" => {}
                    "master" | "replica" | "slave" | "pubsub" => filter.no_type_matches = true,
                    _ => {
                        return Err(RespError::new(format!(
                            "ERR Unknown client type '{}'",
                            crate::error::printable(value, 64)
                        )))
                    }
                },
                b"MAXAGE" => match parse_int(value).ok() {
                    Some(secs) if secs >= 0 => filter.max_age = Some(secs as u64),
                    _ => return Err(RespError::SYNTAX),
                },
                b"SKIPME" => match text.to_ascii_lowercase().as_str() {
                    "yes" => filter.include_me = false,
                    "no" => filter.include_me = true,
                    _ => return Err(RespError::SYNTAX),
                },
                _ => return Err(RespError::SYNTAX),
            }
        }
        Ok(filter)
    }

    /// Whether `client` is to be closed when `me` asks.
    fn matches(&self, client: &ClientInfo, me: u64) -> bool {
        (self.include_me || client.id != me)
            && !self.no_type_matches
            && self.id.is_none_or(|id| client.id == id)
            && self.addr.as_ref().is_none_or(|a| &client.addr == a)
            && self.laddr.as_ref().is_none_or(|a| &client.laddr == a)
            && self.user.as_ref().is_none_or(|u| **u == *client.user)
            && self
                .max_age
                .is_none_or(|secs| client.since.elapsed().as_secs() >= secs)
    }
}

/// Commands a connection may send before AUTH when a password is set, and that the ACL
/// never refuses (Redis's no-auth commands).
pub fn allowed_before_auth(spec: &Spec) -> bool {
    matches!(
        spec.id,
        CommandId::Conn(ConnId::Auth | ConnId::Hello | ConnId::Quit | ConnId::Reset)
    )
}

fn valid_client_name(name: &[u8]) -> Result<(), RespError> {
    if name.iter().all(|&c| (b'!'..=b'~').contains(&c)) {
        Ok(())
    } else {
        Err(RespError::fixed(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ))
    }
}

impl ConnCommand {
    /// Parses the arguments of command `id` (arity already checked).
    ///
    /// # Errors
    /// Redis's texts for each command.
    pub fn parse(id: ConnId, args: &mut Args<'_>) -> Result<Self, RespError> {
        let cmd = match id {
            ConnId::Ping => {
                if args.remaining() > 1 {
                    return Err(RespError::arity("ping"));
                }
                ConnCommand::Ping(args.next().cloned())
            }
            ConnId::Echo => ConnCommand::Echo(args.bytes()?),
            ConnId::Select => ConnCommand::Select(
                parse_int(&args.bytes()?)
                    .map_err(|_| RespError::fixed("ERR value is not an integer or out of range"))?,
            ),
            ConnId::Quit => {
                while args.next().is_some() {}
                ConnCommand::Quit
            }
            ConnId::Reset => ConnCommand::Reset,
            ConnId::Auth => match args.remaining() {
                1 => ConnCommand::Auth {
                    user: Bytes::from_static(b"default"),
                    pass: args.bytes()?,
                },
                2 => ConnCommand::Auth {
                    user: args.bytes()?,
                    pass: args.bytes()?,
                },
                _ => return Err(RespError::SYNTAX),
            },
            ConnId::Hello => parse_hello(args)?,
            ConnId::Client => ConnCommand::Client(ClientSub::parse(args)?),
        };
        Ok(cmd)
    }

    /// Applies the command to the session.
    pub fn apply(&self, server: &Shared, session: &mut Session) -> Executed {
        let reply = match self {
            ConnCommand::Ping(None) => Reply::simple("PONG"),
            ConnCommand::Ping(Some(msg)) | ConnCommand::Echo(msg) => Reply::Bulk(msg.clone()),
            ConnCommand::Select(0) => Reply::ok(),
            ConnCommand::Select(_) => RespError::fixed("ERR DB index is out of range").into(),
            ConnCommand::Quit => {
                return Executed {
                    effect: Effect::Close(Reply::ok()),
                    lsn: 0,
                }
            }
            ConnCommand::Reset => {
                session.proto = Protocol::Resp2;
                // As Redis: back to `default`, authenticated only if it needs no password.
                session.become_user(server.acl.default_user());
                session.authenticated = !server.acl.needs_auth();
                let mut info = session.info.lock();
                info.name = None;
                info.proto = Protocol::Resp2;
                Reply::simple("RESET")
            }
            ConnCommand::Auth { user, pass } => {
                let (checked, delay) = super::auth::check(server, session, user, pass);
                let reply = match checked {
                    Ok(()) => Reply::ok(),
                    Err(err) => err.into(),
                };
                return super::auth::answer_after(delay, reply);
            }
            ConnCommand::Hello {
                proto,
                auth: creds,
                name,
            } => {
                let mut delay = std::time::Duration::ZERO;
                if let Some((user, pass)) = creds {
                    let (checked, wait) = super::auth::check(server, session, user, pass);
                    if let Err(err) = checked {
                        return super::auth::answer_after(wait, err.into());
                    }
                    delay = wait;
                }
                if !session.authenticated {
                    return Executed::reply(
                        RespError::fixed(
                            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
                        )
                        .into(),
                    );
                }
                if let Some(p) = proto {
                    session.proto = *p;
                }
                let mut info = session.info.lock();
                info.proto = session.proto;
                if let Some(n) = name {
                    info.name = Some(n.clone());
                }
                drop(info);
                return super::auth::answer_after(delay, hello_reply(session));
            }
            ConnCommand::Client(sub) => client(sub, server, session),
        };
        Executed::reply(reply)
    }
}

fn hello_reply(session: &Session) -> Reply {
    Reply::map_static(vec![
        ("server", Reply::bulk_static("baton")),
        ("version", Reply::bulk_static(crate::VERSION)),
        (
            "proto",
            Reply::Int(if session.proto == Protocol::Resp3 {
                3
            } else {
                2
            }),
        ),
        ("id", Reply::Int(session.id as i64)),
        ("mode", Reply::bulk_static("standalone")),
        ("role", Reply::bulk_static("master")),
        ("modules", Reply::Array(Vec::new())),
    ])
}

/// One CLIENT LIST / CLIENT INFO line.
pub fn client_line(c: &ClientInfo) -> String {
    let s = |b: &Option<Bytes>| {
        b.as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let age = c.since.elapsed().as_secs();
    format!(
        "id={} addr={} laddr={} fd=0 name={} age={} idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 watch=0 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}\n",
        c.id,
        c.addr,
        c.laddr,
        s(&c.name),
        age,
        c.last_cmd
            .map_or_else(|| "NULL".to_string(), str::to_ascii_lowercase),
        c.user,
        if c.proto == Protocol::Resp3 { 3 } else { 2 },
        s(&c.lib_name),
        s(&c.lib_ver),
    )
}

fn client(sub: &ClientSub, server: &Shared, session: &mut Session) -> Reply {
    match sub {
        ClientSub::SetName(name) => {
            session.info.lock().name = (!name.is_empty()).then(|| name.clone());
            Reply::ok()
        }
        ClientSub::GetName => session
            .info
            .lock()
            .name
            .clone()
            .map_or(Reply::Nil, Reply::Bulk),
        ClientSub::Id => Reply::Int(session.id as i64),
        ClientSub::SetInfo { lib_name, value } => {
            let mut info = session.info.lock();
            if *lib_name {
                info.lib_name = Some(value.clone());
            } else {
                info.lib_ver = Some(value.clone());
            }
            Reply::ok()
        }
        ClientSub::Info => Reply::Verbatim(Bytes::from(client_line(&session.info.lock()))),
        ClientSub::List => {
            let text: String = server.clients.all().iter().map(client_line).collect();
            Reply::Verbatim(Bytes::from(text))
        }
        ClientSub::KillAddr(addr) => {
            let me = session.id;
            let killed = server.clients.kill_where(|c| c.id != me && &c.addr == addr);
            if killed == 0 {
                Reply::Error(RespError::fixed("ERR No such client"))
            } else {
                Reply::ok()
            }
        }
        ClientSub::Kill(filter) => {
            if let Some(user) = &filter.user {
                if server.acl.user(user).is_none() {
                    return Reply::Error(RespError::new(format!(
                        "ERR No such user '{}'",
                        crate::error::printable(user.as_bytes(), 64)
                    )));
                }
            }
            let me = session.id;
            Reply::Int(server.clients.kill_where(|c| filter.matches(c, me)) as i64)
        }
        ClientSub::Ok => Reply::ok(),
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME name]]`.
fn parse_hello(args: &mut Args<'_>) -> Result<ConnCommand, RespError> {
    let mut proto = None;
    let mut auth = None;
    let mut name = None;
    if let Some(v) = args.next() {
        let v = parse_int(v).map_err(|_| {
            RespError::fixed("ERR Protocol version is not an integer or out of range")
        })?;
        proto = Some(match v {
            2 => Protocol::Resp2,
            3 => Protocol::Resp3,
            _ => return Err(RespError::fixed("NOPROTO unsupported protocol version")),
        });
        while let Some(opt) = args.peek_upper() {
            args.next();
            match opt.as_slice() {
                b"AUTH" if args.remaining() >= 2 => {
                    auth = Some((args.bytes()?, args.bytes()?));
                }
                b"SETNAME" if args.remaining() >= 1 => {
                    let n = args.bytes()?;
                    valid_client_name(&n)?;
                    name = Some(n);
                }
                _ => {
                    return Err(RespError::new(format!(
                        "ERR Syntax error in HELLO option '{}'",
                        crate::error::printable(&opt, 64).to_ascii_lowercase()
                    )))
                }
            }
        }
    }
    Ok(ConnCommand::Hello { proto, auth, name })
}

impl ClientSub {
    /// `CLIENT subcommand ...`: Redis's arity and error texts per subcommand.
    fn parse(args: &mut Args<'_>) -> Result<ClientSub, RespError> {
        let raw_sub = args.bytes()?;
        let sub = raw_sub.to_ascii_uppercase();
        let arity = |n: usize, args: &Args<'_>| {
            if args.remaining() == n {
                Ok(())
            } else {
                Err(RespError::new(format!(
                    "ERR wrong number of arguments for 'client|{}' command",
                    String::from_utf8_lossy(&sub).to_ascii_lowercase()
                )))
            }
        };
        Ok(match sub.as_slice() {
            b"SETNAME" => {
                arity(1, args)?;
                let n = args.bytes()?;
                valid_client_name(&n)?;
                ClientSub::SetName(n)
            }
            b"GETNAME" => {
                arity(0, args)?;
                ClientSub::GetName
            }
            b"ID" => {
                arity(0, args)?;
                ClientSub::Id
            }
            b"INFO" => {
                arity(0, args)?;
                ClientSub::Info
            }
            b"LIST" => {
                while args.next().is_some() {}
                ClientSub::List
            }
            b"SETINFO" => {
                arity(2, args)?;
                let attr = args.bytes()?.to_ascii_uppercase();
                let value = args.bytes()?;
                let lib_name = match attr.as_slice() {
                    b"LIB-NAME" => true,
                    b"LIB-VER" => false,
                    _ => {
                        return Err(RespError::new(format!(
                            "ERR Unrecognized option '{}'",
                            crate::error::printable(&attr, 64)
                        )))
                    }
                };
                if value.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
                    return Err(RespError::fixed(
                        "ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.",
                    ));
                }
                ClientSub::SetInfo { lib_name, value }
            }
            b"KILL" => match args.remaining() {
                0 => arity(1, args).map(|()| ClientSub::Ok)?,
                1 => ClientSub::KillAddr(
                    String::from_utf8_lossy(args.bytes()?.as_ref()).into_owned(),
                ),
                _ => ClientSub::Kill(KillFilter::parse(args)?),
            },
            b"NO-EVICT" | b"NO-TOUCH" => {
                arity(1, args)?;
                args.next();
                ClientSub::Ok
            }
            _ => {
                return Err(RespError::new(format!(
                    "ERR unknown subcommand '{}'. Try CLIENT HELP.",
                    crate::error::printable(&raw_sub, 64)
                )))
            }
        })
    }
}
