//! The process edge: arguments, logger, settings, locales, then `run` (or
//! `check`); maps errors to exit codes (SPEC §2). No HTTP, no parsing, no loops.

use std::path::PathBuf;
use std::process::ExitCode;

use trueconf_bot::{Error, Locales, Shutdown, config};

const USAGE: &str = "\
trueconf-bot — a Telegram bot to watch and manage TrueConf Server

Usage:
  trueconf-bot [--config PATH]          run the bot
  trueconf-bot check [--config PATH]    test the settings, Telegram and every server, then exit
  trueconf-bot check --report [--config PATH]
                                        describe every server's answers for a bug report
                                        (statuses, field names and types; no values)
  trueconf-bot --help | --version

Options:
  -c, --config PATH   settings file (default: settings.toml in the working directory)

Environment:
  RUST_LOG            log level: error, warn, info (default), debug
  STATE_DIRECTORY     where state.json and audit.jsonl live unless state-dir is set

Exit codes: 0 normal end, 1 fatal error, 2 configuration error.";

struct Args {
    check: bool,
    report: bool,
    config: PathBuf,
}

enum Parsed {
    Run(Args),
    Print(String),
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Parsed, Error> {
    let mut parsed = Args {
        check: false,
        report: false,
        config: PathBuf::from("settings.toml"),
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" | "help" => return Ok(Parsed::Print(USAGE.to_string())),
            "-V" | "--version" => {
                return Ok(Parsed::Print(format!(
                    "trueconf-bot {}",
                    env!("CARGO_PKG_VERSION")
                )));
            }
            "check" if !parsed.check => parsed.check = true,
            "--report" => parsed.report = true,
            "-c" | "--config" => match args.next() {
                Some(path) if !path.is_empty() => parsed.config = PathBuf::from(path),
                _ => return Err(Error::Usage(format!("{arg} needs a file path"))),
            },
            other => match other.strip_prefix("--config=") {
                Some(path) if !path.is_empty() => parsed.config = PathBuf::from(path),
                _ => return Err(Error::Usage(format!("unknown argument '{other}'"))),
            },
        }
    }
    if parsed.report && !parsed.check {
        return Err(Error::Usage(
            "--report goes with check: trueconf-bot check --report".into(),
        ));
    }
    Ok(Parsed::Run(parsed))
}

fn init_logger() {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(log::LevelFilter::Info);
    builder.parse_env(
        env_logger::Env::new()
            .filter("RUST_LOG")
            .write_style("RUST_LOG_STYLE"),
    );
    // After the environment, so that RUST_LOG cannot lift them: these crates
    // print URLs (with tokens in them) at their most verbose levels.
    for noisy in ["ureq", "ureq_proto", "rustls"] {
        builder.filter_module(noisy, log::LevelFilter::Info);
    }
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        // journald stamps every line itself.
        builder.format_timestamp(None);
    } else {
        // Elsewhere (a terminal, a file, OpenWrt's logread) each line
        // carries its UTC time.
        builder.format(|buf, record| {
            use std::io::Write;
            let style = buf.default_level_style(record.level());
            writeln!(
                buf,
                "[{} {style}{:<5}{style:#} {}] {}",
                trueconf_bot::clock::rfc3339(trueconf_bot::clock::now_unix()),
                record.level(),
                record.target(),
                record.args()
            )
        });
    }
    builder.init();
    // The backstop: TRACE is compiled out (log features) and never enabled.
    if log::max_level() > log::LevelFilter::Debug {
        log::set_max_level(log::LevelFilter::Debug);
    }
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("trueconf-bot: internal error{place}; please report it");
        std::process::exit(1);
    }));
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trueconf-bot: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn real_main() -> Result<(), Error> {
    let args = match parse_args(std::env::args().skip(1))? {
        Parsed::Print(text) => {
            println!("{text}");
            return Ok(());
        }
        Parsed::Run(args) => args,
    };
    init_logger();
    let state_directory = std::env::var("STATE_DIRECTORY").ok();
    let loaded = config::load(&args.config, state_directory.as_deref())?;
    if !args.check {
        log::info!(
            "trueconf-bot {} starting with the settings {}; Telegram Bot API at {}",
            env!("CARGO_PKG_VERSION"),
            args.config.display(),
            loaded.settings.telegram_host()
        );
    }
    // The report is pasted into bug reports as it is: warnings about the
    // settings (which name the file and servers) stay out of it.
    for warning in loaded.warnings.iter().filter(|_| !args.report) {
        log::warn!("{}: {warning}", args.config.display());
    }
    let settings = loaded.settings;
    let credentials = std::env::var("CREDENTIALS_DIRECTORY").ok();
    config::check_credentials_dir(&settings, credentials.as_deref())?;
    let (locales, warnings) = Locales::load(settings.locales_dir.as_deref(), &settings.locale)
        .map_err(|reason| Error::Config {
            path: args.config.clone(),
            problems: vec![reason],
        })?;
    for warning in &warnings {
        log::warn!("{warning}");
    }
    if args.report {
        return trueconf_bot::check::report(&settings);
    }
    if args.check {
        return trueconf_bot::check::run(&settings);
    }
    trueconf_bot::run(settings, locales, Shutdown::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Parsed, Error> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        assert!(
            matches!(parse(&[]), Ok(Parsed::Run(a)) if !a.check && a.config.as_os_str() == "settings.toml")
        );
        assert!(
            matches!(parse(&["check", "--config", "x.toml"]), Ok(Parsed::Run(a)) if a.check && a.config.as_os_str() == "x.toml")
        );
        assert!(
            matches!(parse(&["--config=y.toml"]), Ok(Parsed::Run(a)) if a.config.as_os_str() == "y.toml")
        );
        assert!(
            matches!(parse(&["--version"]), Ok(Parsed::Print(v)) if v.starts_with("trueconf-bot "))
        );
        assert!(matches!(parse(&["--config"]), Err(Error::Usage(_))));
        assert!(matches!(parse(&["--frobnicate"]), Err(Error::Usage(_))));
        assert!(matches!(parse(&["check", "--report"]), Ok(Parsed::Run(a)) if a.check && a.report));
        assert!(matches!(parse(&["--report"]), Err(Error::Usage(_))));
    }
}
