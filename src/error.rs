//! The crate-wide error: what can end `run()` or a command, and the exit code
//! each maps to. It never carries a URL, a token or a secret.

use std::fmt;
use std::path::PathBuf;

/// Everything that stops the process. Runtime trouble inside the threads
/// (network, a slow server) is handled where it happens and never ends up here.
#[derive(Debug)]
pub enum Error {
    /// The command line was wrong (exit 2).
    Usage(String),
    /// The settings file cannot be used (exit 2). Every problem found, one per line.
    Config {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// Telegram answered 401 to `getMe`: the bot token is wrong or revoked (exit 2).
    TokenRejected,
    /// The self-test found a failing check (exit 1); the lines were printed already.
    CheckFailed,
    /// Another bot holds the lock of this state dir (exit 1).
    AlreadyRunning { pid: Option<u32>, dir: PathBuf },
}

impl Error {
    /// The process exit code of SPEC §2: 2 for configuration, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Config { .. } | Error::TokenRejected => 2,
            Error::CheckFailed | Error::AlreadyRunning { .. } => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg}\nTry 'trueconf-bot --help'."),
            Error::Config { path, problems } => {
                write!(f, "{}: the settings cannot be used:", path.display())?;
                for problem in problems {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
            Error::TokenRejected => write!(
                f,
                "Telegram rejected the bot token (401 Unauthorized): check tg-api-token \
                 (ask @BotFather for the current one)"
            ),
            Error::CheckFailed => write!(f, "self-test: at least one check failed"),
            Error::AlreadyRunning { pid, dir } => {
                let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
                write!(
                    f,
                    "another trueconf-bot{pid} uses {}; stop it first, or give this one \
                     another state-dir",
                    dir.display()
                )
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_spec() {
        assert_eq!(Error::TokenRejected.exit_code(), 2);
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::CheckFailed.exit_code(), 1);
        let running = Error::AlreadyRunning {
            pid: Some(4242),
            dir: "/var/lib/trueconf-bot".into(),
        };
        assert_eq!(running.exit_code(), 1);
        assert!(
            running
                .to_string()
                .starts_with("another trueconf-bot (pid 4242) uses /var/lib/trueconf-bot;"),
            "{running}"
        );
    }

    #[test]
    fn config_error_lists_every_problem() {
        let err = Error::Config {
            path: "settings.toml".into(),
            problems: vec!["a: wrong".into(), "b: missing".into()],
        };
        assert_eq!(
            err.to_string(),
            "settings.toml: the settings cannot be used:\n  - a: wrong\n  - b: missing"
        );
    }
}
