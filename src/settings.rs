//! Where the configuration comes from, and the settings that change at run time.
//!
//! # Precedence: flag > `BATON_*` variable > config file > default
//! One rule for every setting, applied by one mechanism: [`load`] reads the TOML file of
//! `--config FILE` (or `BATON_CONFIG`) first and, for each of its keys, sets the setting's
//! environment variable (`max-clients` → `BATON_MAX_CLIENTS`) only when that variable is
//! not set already; then clap parses, which already prefers a flag to a variable and a
//! variable to the default. So a setting added to `Config` is file-configurable at once,
//! under its flag's name. Keys are the flags' long names (`max-clients`; `max_clients` is
//! accepted too); an unknown key, or a table or array value, is an error naming it.
//!
//! [`Setting`]s record each effective value and its source: printed at start (secrets
//! masked) and answered by CONFIG GET.
//!
//! # At run time
//! CONFIG SET can change the limits that are read on each use (`max-clients`,
//! `max-waiters`) and the log filter, through the reload hook that `main` installs with
//! [`set_log_reloader`] (a `tracing_subscriber::reload` handle).

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use parking_lot::Mutex;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::config::Config;

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// A `BATON_*` environment variable.
    Env,
    /// The `--config` file.
    File,
    /// The built-in default.
    Default,
}

impl Source {
    /// The name printed at start.
    pub fn name(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Env => "env",
            Source::File => "file",
            Source::Default => "default",
        }
    }
}

/// One setting's effective value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The flag's long name (`max-clients`): also the config-file key and CONFIG name.
    pub name: String,
    /// The value as given (empty when unset).
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

/// Settings whose values are never printed.
pub const SECRETS: &[&str] = &["requirepass"];

/// An error in the configuration file or in a file the configuration names.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        message: String,
    },
    /// `--requirepass-file` cannot be read or its first line is empty.
    #[error("cannot use --requirepass-file {}: {reason}", path.display())]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// Why (the OS error, or that the password is empty).
        reason: String,
    },
    /// Keys that name no setting, or values of the wrong shape.
    #[error("config file {}: {}", path.display(), problems.join("; "))]
    Keys {
        /// The file.
        path: PathBuf,
        /// One text per bad key.
        problems: Vec<String>,
    },
}

/// The config file named by `--config FILE`, `--config=FILE` or `BATON_CONFIG`.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        let s = arg.to_string_lossy();
        if s == "--" {
            break;
        }
        if s == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(path) = s.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("BATON_CONFIG").map(PathBuf::from)
}

/// The variables a config file asks for: `(BATON_X, value)` per key, in file order.
///
/// # Errors
/// [`FileError`] when the file cannot be read, is not TOML, or has keys that name no
/// setting or values that are tables or arrays.
pub fn file_vars(path: &Path) -> Result<Vec<(String, String)>, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| FileError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
    let command = Config::command();
    let mut vars = Vec::new();
    let mut problems = Vec::new();
    for (key, value) in &table {
        let name = key.replace('_', "-");
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(name.as_str()) && name != "config");
        let Some(env) = arg.and_then(|a| a.get_env()) else {
            problems.push(format!("unknown key `{key}`"));
            continue;
        };
        let value = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                problems.push(format!("`{key}` must be a string, number or boolean"));
                continue;
            }
        };
        vars.push((env.to_string_lossy().into_owned(), value));
    }
    if problems.is_empty() {
        Ok(vars)
    } else {
        Err(FileError::Keys {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// Parses the configuration from the process's arguments, environment and config file.
/// Exits with clap's message on bad flags, like `Config::parse`.
///
/// # Errors
/// [`FileError`] for a bad config file.
pub fn load() -> Result<Config, FileError> {
    load_from(std::env::args_os().collect())
}

/// [`load`] with the arguments given. Sets environment variables: call it before any
/// other thread starts.
///
/// # Errors
/// [`FileError`] for a bad config file.
pub fn load_from(args: Vec<OsString>) -> Result<Config, FileError> {
    let mut from_file = HashSet::new();
    if let Some(path) = config_path(&args) {
        for (env, value) in file_vars(&path)? {
            if std::env::var_os(&env).is_none() {
                // Single-threaded still (see above): nothing reads the environment meanwhile.
                std::env::set_var(&env, value);
                from_file.insert(env);
            }
        }
    }
    let matches = Config::command().get_matches_from(args);
    let mut config = Config::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    config.effective = effective(&matches, &from_file);
    resolve_password_file(&mut config)?;
    Ok(config)
}

/// Reads `--requirepass-file` into `requirepass`, so that every check of the password reads
/// one field. The password is the file's first line without its line ending (`\n` or
/// `\r\n`); whatever follows is ignored.
///
/// # Errors
/// [`FileError::PasswordFile`] when the file cannot be read or its first line is empty.
pub fn resolve_password_file(config: &mut Config) -> Result<(), FileError> {
    let Some(path) = config.requirepass_file.clone() else {
        return Ok(());
    };
    let fail = |reason: String| FileError::PasswordFile {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
    let first = text.lines().next().unwrap_or_default();
    let password = first.strip_suffix('\r').unwrap_or(first);
    if password.is_empty() {
        return Err(fail("the first line (the password) is empty".into()));
    }
    config.requirepass = Some(password.to_string());
    Ok(())
}

/// Every setting's value and source from clap's `matches`.
pub fn effective(matches: &clap::ArgMatches, from_file: &HashSet<String>) -> Vec<Setting> {
    Config::command()
        .get_arguments()
        .filter_map(|arg| {
            let name = arg.get_long()?.to_string();
            let id = arg.get_id().as_str();
            let value = matches
                .get_raw(id)
                .map(|mut values| {
                    values
                        .next()
                        .map(|v| v.to_string_lossy().into_owned())
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            let source = match matches.value_source(id) {
                Some(ValueSource::CommandLine) => Source::Flag,
                Some(ValueSource::EnvVariable)
                    if env.as_ref().is_some_and(|e| from_file.contains(e)) =>
                {
                    Source::File
                }
                Some(ValueSource::EnvVariable) => Source::Env,
                _ => Source::Default,
            };
            Some(Setting {
                name,
                value,
                source,
            })
        })
        .collect()
}

/// The settings as printed at start: `name=value (source)`, secrets as `***`.
pub fn describe(settings: &[Setting]) -> String {
    settings
        .iter()
        .map(|s| {
            let value = if SECRETS.contains(&s.name.as_str()) && !s.value.is_empty() {
                "***"
            } else {
                s.value.as_str()
            };
            format!("{}={} ({})", s.name, value, s.source.name())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Replaces the log filter; Err with the reason when the directive is invalid.
pub type LogReloader = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

static LOG_RELOADER: OnceLock<LogReloader> = OnceLock::new();

/// Installs the hook CONFIG SET log-level calls (once per process: the tracing subscriber
/// is global).
pub fn set_log_reloader(reloader: LogReloader) {
    let _ = LOG_RELOADER.set(reloader);
}

/// The filter last set by [`reload_log_level`] (None: the one from the configuration).
static LOG_LEVEL: Mutex<Option<String>> = Mutex::new(None);

/// Sets the log filter through the installed hook.
///
/// # Errors
/// The filter is invalid, or no hook is installed (an embedded server).
pub fn reload_log_level(filter: &str) -> Result<(), String> {
    match LOG_RELOADER.get() {
        Some(reload) => {
            reload(filter)?;
            *LOG_LEVEL.lock() = Some(filter.to_string());
            Ok(())
        }
        None => Err("the log filter cannot be changed in this process".into()),
    }
}

/// The log filter set at run time, if any.
pub fn log_level() -> Option<String> {
    LOG_LEVEL.lock().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut file, text.as_bytes()).expect("write");
        file
    }

    #[test]
    fn file_keys_become_their_settings_variables() {
        let file =
            write("port = 7000\nmax_clients = 5\nappendfsync = \"everysec\"\nrepair = true\n");
        let vars = file_vars(file.path()).expect("valid file");
        assert_eq!(
            vars,
            vec![
                ("BATON_APPENDFSYNC".to_string(), "everysec".to_string()),
                ("BATON_MAX_CLIENTS".to_string(), "5".to_string()),
                ("BATON_PORT".to_string(), "7000".to_string()),
                ("BATON_REPAIR".to_string(), "true".to_string()),
            ]
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let file = write("port = 1\nprot = 2\n[limits]\nx = 1\n");
        let err = file_vars(file.path())
            .expect_err("unknown keys")
            .to_string();
        assert!(err.contains("unknown key `prot`"), "{err}");
        assert!(err.contains("unknown key `limits`"), "{err}");
    }

    #[test]
    fn secrets_are_masked() {
        let settings = vec![
            Setting {
                name: "requirepass".into(),
                value: "hunter2".into(),
                source: Source::File,
            },
            Setting {
                name: "port".into(),
                value: "6379".into(),
                source: Source::Default,
            },
        ];
        let text = describe(&settings);
        assert_eq!(text, "requirepass=*** (file) port=6379 (default)");
    }

    #[test]
    fn password_file_gives_its_first_line() {
        let file = write("s3cret\r\nignored\n");
        let mut config = Config::ephemeral();
        config.requirepass_file = Some(file.path().to_path_buf());
        resolve_password_file(&mut config).expect("readable file");
        assert_eq!(config.requirepass.as_deref(), Some("s3cret"));
    }

    #[test]
    fn empty_or_missing_password_file_is_named() {
        let empty = write("\nsecond line\n");
        let missing = empty.path().with_extension("missing");
        for path in [empty.path().to_path_buf(), missing] {
            let mut config = Config::ephemeral();
            config.requirepass_file = Some(path.clone());
            let err = resolve_password_file(&mut config)
                .expect_err("no password")
                .to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
            assert_eq!(config.requirepass, None);
        }
    }

    #[test]
    fn config_path_from_either_flag_form() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            config_path(&args(&["baton", "--config", "a.toml"])),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            config_path(&args(&["baton", "--config=b.toml"])),
            Some(PathBuf::from("b.toml"))
        );
    }
}
