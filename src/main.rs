//! The `redress` command: clap dispatch, tracing set-up, errors to exit codes.
//!
//! Output meant for scripts goes to stdout (one ISO date or number per line
//! for `calendar`, JSON for `--format json`); logs and errors go to stderr.
//! Exit codes: 0 success, 1 failure (a bad config, a refused login, a bad
//! date), 2 a usage error from the command line; `status` also exits 3
//! (the daemon is not running) and 4 (running with a problem).

#![forbid(unsafe_code)]

#[cfg(test)]
mod man_pages;

use anyhow::{bail, Context as _};
use chrono::{Datelike, NaiveDate};
use clap::{Args, Parser, Subcommand, ValueEnum};
use redress::adapters::db::{CaseDetail, CaseRecord, Store};
use redress::config::{self, Config};
use redress::core::calendar::{add_months, WorkingCalendar};
use redress::core::case::Status;
use redress::core::holidays::{bank_holidays, Nation};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const DEFAULT_CONFIG: &str = "/etc/redress/config.toml";

/// The end of `--help` and of the man page (dist/man/, rendered from these
/// definitions by a test in src/man_pages.rs).
const AFTER_LONG_HELP: &str = "\
Files: the config is /etc/redress/config.toml (`redress check` validates it). \
Under systemd (redress.service) the store is in /var/lib/redress/, and \
`systemctl reload redress` rereads the config and the templates. The built-in \
letters are in /usr/share/redress/templates/: copy one into the config's \
[templates] dir to change its wording.

The README (/usr/share/doc/redress/README.md) tells the whole story: the \
procedure, the commands staff write in replies, and running redress under systemd.";

#[derive(Parser)]
#[command(
    name = "redress",
    version,
    about = "A complaints desk run by email",
    after_long_help = AFTER_LONG_HELP
)]
struct Cli {
    /// Log format on stderr: auto (journal under systemd, else human),
    /// human, json or journal; default: the config's `log.format`.
    #[arg(long, global = true, value_enum, env = "REDRESS_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Auto,
    Human,
    Json,
    Journal,
}

impl LogFormat {
    fn get(self) -> redress::logging::Format {
        use redress::logging::Format;
        match self {
            LogFormat::Auto => Format::Auto,
            LogFormat::Human => Format::Human,
            LogFormat::Json => Format::Json,
            LogFormat::Journal => Format::Journal,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (as the systemd service does).
    Run(ConfigArg),
    /// Validate the config and report each problem; --connect also logs in
    /// to IMAP and SMTP.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Also log in to the IMAP and SMTP servers.
        #[arg(long)]
        connect: bool,
    },
    /// Working-day arithmetic, as redress counts it.
    #[command(subcommand)]
    Calendar(CalendarCommand),
    /// The complaints tracker.
    #[command(subcommand)]
    Cases(CasesCommand),
    /// Run the timers once (escalations, holds ending, windows closing) as
    /// at an instant; with --dry-run, print what would be sent and change
    /// nothing.
    Tick {
        #[command(flatten)]
        config: ConfigArg,
        /// The instant: local time in the config's time zone
        /// (2026-12-20T09:00) or with an offset (2026-12-20T09:00:00Z).
        /// Default: now.
        #[arg(long)]
        at: Option<String>,
        /// Change nothing; print what would be done.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Whether the daemon runs and mail flows: IMAP contact, outbox, open
    /// cases, next deadline. Exits 0 when running and healthy, 3 when not
    /// running, 4 when running with a problem.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Write a consistent copy of the store to PATH (safe while the daemon
    /// runs and writes).
    Backup {
        path: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
        /// Replace PATH if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Put a backup in place of the store. The daemon must be stopped; the
    /// current store is moved aside (kept), never deleted.
    Restore {
        backup: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Args)]
struct ConfigArg {
    /// The config file.
    #[arg(long, short, env = "REDRESS_CONFIG", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
}

#[derive(Args)]
struct CalendarArgs {
    /// england-and-wales (default), scotland or northern-ireland; overrides
    /// the config's nation.
    #[arg(long)]
    nation: Option<String>,
    /// Take nation, closures and extra holidays from this config.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum CalendarCommand {
    /// Print the Nth working day strictly after a date.
    AddWorkingDays {
        #[arg(long)]
        from: String,
        #[arg(long)]
        days: u32,
        #[command(flatten)]
        cal: CalendarArgs,
    },
    /// Print the number of working days d with FROM < d <= TO.
    WorkingDaysBetween {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[command(flatten)]
        cal: CalendarArgs,
    },
    /// Print the date N calendar months later, clamped at month end.
    AddMonths {
        #[arg(long)]
        from: String,
        #[arg(long)]
        months: u32,
    },
    /// Print "yes" or "no (why)" for a date.
    IsWorkingDay {
        #[arg(long)]
        date: String,
        #[command(flatten)]
        cal: CalendarArgs,
    },
    /// List the bank holidays of a year.
    Holidays {
        #[arg(long)]
        year: i32,
        #[arg(long)]
        nation: Option<String>,
    },
    /// Read gov.uk's bank-holidays.json and print the nation's holidays as
    /// a `[calendar] extra_holidays` entry to paste into the config.
    ImportBankHolidays {
        file: PathBuf,
        #[arg(long, default_value = "england-and-wales")]
        nation: String,
        /// Only holidays from this year on.
        #[arg(long)]
        since: Option<i32>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand)]
enum CasesCommand {
    /// List cases, newest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only cases with this status: open, on-hold, resolved, closed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Show one case with its messages and events.
    Show {
        reference: String,
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Record a complaint received another way (post, phone, in person, a
    /// form) as a new case: the complainant is acknowledged by email when
    /// --email is given, and the Quality Coordinator and the department
    /// head get the new-case email. The running daemon sends the letters.
    Open(Box<OpenArgs>),
    /// Change the complainant's contact details on a case (a new email
    /// address, a phone number, the name): letters from now on, and those
    /// still waiting to go, go to the new address, and a case not yet
    /// acknowledged (it had no address) is acknowledged at it. The
    /// running daemon sends the letters.
    Update(Box<UpdateArgs>),
}

#[derive(Args)]
struct UpdateArgs {
    /// The case reference.
    reference: String,
    #[command(flatten)]
    config: ConfigArg,
    /// The complainant's full name.
    #[arg(long)]
    name: Option<String>,
    /// The complainant's email address, where letters go from now on.
    #[arg(long)]
    email: Option<String>,
    /// The complainant's telephone number.
    #[arg(long)]
    phone: Option<String>,
    /// Who changes them, for the audit log. Default: the Quality
    /// Coordinator's address.
    #[arg(long)]
    by: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Args)]
struct OpenArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The complainant's full name.
    #[arg(long)]
    name: Option<String>,
    /// The complainant's email address, where letters go; without it
    /// nothing is sent to them (acknowledge by post or phone).
    #[arg(long)]
    email: Option<String>,
    /// The complainant's telephone number.
    #[arg(long)]
    phone: Option<String>,
    /// A short title for the complaint.
    #[arg(long)]
    subject: String,
    /// The full details of the complaint.
    #[arg(
        long,
        conflicts_with = "text_file",
        required_unless_present = "text_file"
    )]
    text: Option<String>,
    /// Read the full details from a file (UTF-8); `-` reads standard input.
    #[arg(long)]
    text_file: Option<PathBuf>,
    /// How it was received.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(redress::service::record::Via::NAMES))]
    via: String,
    /// When it was received: local time in the config's time zone
    /// (2026-11-20T10:30), a date (2026-11-20, 20/11/2026), or with an
    /// offset. Default: now.
    #[arg(long)]
    received: Option<String>,
    /// The date the issue arose: a complaint raised after the stage's
    /// `raise_within` is flagged to staff, never refused.
    #[arg(long)]
    issue_date: Option<String>,
    /// The stage it opens in (e.g. formal, for a complaint in writing to
    /// head office). Default: the first stage.
    #[arg(long)]
    stage: Option<String>,
    /// The department (id or name). Default: the routing rules, on the
    /// subject and text.
    #[arg(long)]
    department: Option<String>,
    /// The complainant was already acknowledged (in person, by letter):
    /// send no acknowledgement.
    #[arg(long)]
    acknowledged: bool,
    /// Who records it, for the audit log. Default: the Quality
    /// Coordinator's address.
    #[arg(long)]
    by: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(c) => run(&c.config, cli.log_format),
        command => {
            let format = cli
                .log_format
                .map_or(redress::logging::Format::Auto, LogFormat::get);
            redress::logging::init(format, "info");
            dispatch(command)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("redress: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `redress run`: the config is read first, so its `[log]` section shapes
/// the log (a config that cannot be read is reported on stderr).
fn run(path: &Path, format: Option<LogFormat>) -> anyhow::Result<ExitCode> {
    let config = config::load(path)?;
    let format = match format {
        Some(f) => f.get(),
        None => config
            .log
            .format
            .parse()
            .unwrap_or(redress::logging::Format::Auto),
    };
    let log = redress::logging::init(format, &config.log.level);
    let rt = tokio::runtime::Runtime::new().context("Starting the async runtime")?;
    let result = rt.block_on(async {
        let token = tokio_util::sync::CancellationToken::new();
        redress::runtime::cancel_on_signals(token.clone())?;
        let options = redress::runtime::Options {
            config_path: path.to_path_buf(),
            log,
        };
        redress::runtime::run(config, options, token).await
    });
    // Blocking work still running (a token request, a WAL checkpoint) gets
    // a few seconds, so the stop stays within the unit's TimeoutStopSec=.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    result?;
    Ok(ExitCode::SUCCESS)
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(_) => unreachable!("`redress run` is dispatched in main"),
        Command::Check { config, connect } => check(&config.config, connect),
        Command::Calendar(c) => calendar(c),
        Command::Cases(c) => cases(c),
        Command::Tick {
            config,
            at,
            dry_run,
            format,
        } => tick(&config.config, at.as_deref(), dry_run, format),
        Command::Status { config, format } => status(&config.config, format),
        Command::Backup {
            path,
            config,
            force,
        } => {
            let config = load_without_secrets(&config.config)?;
            let report = redress::adapters::backup::backup(&config.store.path, &path, force)?;
            println!("{}", redress::service::ops::backup_text(&report));
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { backup, config } => {
            let config = load_without_secrets(&config.config)?;
            let report = redress::adapters::backup::restore(
                &config.store.path,
                &backup,
                redress::clock::now(),
            )?;
            print!("{}", redress::service::ops::restore_text(&report, &backup));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The config without reading the password files it names: status, backup
/// and restore need no secret, and a monitoring check should not need to
/// read one (nor `$CREDENTIALS_DIRECTORY`, which only the service has).
fn load_without_secrets(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("Reading config {}", path.display()))?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    Ok(config::parse_str(&text, &path.display().to_string(), &env)?)
}

fn status(path: &Path, format: Format) -> anyhow::Result<ExitCode> {
    use redress::service::ops;
    let config: Config = load_without_secrets(path)?;
    let report = ops::status(&config, redress::clock::now())?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print!("{}", ops::status_table(&report, config.calendar.time_zone)),
    }
    Ok(ExitCode::from(report.verdict().exit_code()))
}

/// Reads `--at`: an instant with an offset, or a local time (minutes or
/// seconds, or a bare date meaning its start) in the calendar's time zone.
fn parse_at(
    text: &str,
    cal: &redress::core::calendar::WorkingCalendar,
    option: &str,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let local = [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
    .or_else(|| {
        // A date as staff write them (2026-12-20, 20/12/2026, 20 December
        // 2026): its start.
        redress::core::command::parse_date(text)
            .ok()
            .map(|d| d.and_time(chrono::NaiveTime::MIN))
    });
    match local {
        Some(l) => Ok(cal.resolve_local(l)?),
        None => bail!(
            "{option} {text:?} is not a time: write 2026-12-20T09:00 (local), 2026-12-20T09:00:00Z, or a date (2026-12-20, 20/12/2026, 20 December 2026)"
        ),
    }
}

fn tick(path: &Path, at: Option<&str>, dry_run: bool, format: Format) -> anyhow::Result<ExitCode> {
    let config: Config = config::load_for_store(path)?;
    let mut store = Store::open(&config.store.path)?;
    let desk = redress::service::Desk::new(config, &mut store)?;
    let now = redress::clock::now();
    let at = match at {
        Some(t) => parse_at(t, &desk.calendar, "--at")?,
        None => now,
    };
    let actions = redress::service::ladder::tick(&mut store, &desk, at, now, dry_run)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&actions)?),
        Format::Table => {
            println!(
                "{:<16} {:<8} {:<22} {:<32} {:<20} SUBJECT",
                "REFERENCE", "ACTION", "KIND", "TO", "AT"
            );
            for a in &actions {
                println!(
                    "{:<16} {:<8} {:<22} {:<32} {:<20} {}",
                    a.reference,
                    a.action,
                    a.kind,
                    if a.to.is_empty() { "-" } else { &a.to },
                    a.at,
                    a.subject
                );
            }
            let verb = if dry_run { "would be done" } else { "done" };
            println!("{} action(s) {verb}", actions.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check(path: &Path, connect: bool) -> anyhow::Result<ExitCode> {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            if let Some(ce) = e.downcast_ref::<config::ConfigError>() {
                for p in &ce.problems {
                    eprintln!("{}: {p}", ce.origin);
                }
                eprintln!("{}: {} problem(s) found", ce.origin, ce.problems.len());
                return Ok(ExitCode::FAILURE);
            }
            return Err(e);
        }
    };
    let calendar = config.calendar(None)?;
    redress::adapters::render::Templates::load(config.templates.dir.as_deref())?;
    println!("{}: the config is valid", path.display());
    println!(
        "  organisation {} ({}), complaints address {}",
        config.organisation.name, config.organisation.reference_prefix, config.mailbox.address
    );
    let stages: Vec<String> = config
        .procedure()
        .stages
        .iter()
        .map(|s| {
            format!(
                "{} (ack {}, respond {})",
                s.name, s.acknowledge_within, s.respond_within
            )
        })
        .collect();
    println!("  procedure: {}", stages.join(" -> "));
    println!(
        "  calendar: {} bank holidays, {} closure(s), time zone {}, working day ends {}",
        calendar.spec().nation,
        calendar.spec().closures.len(),
        calendar.time_zone(),
        config.calendar.working_day_end.format("%H:%M")
    );
    println!(
        "  templates: {} letter(s) render ({})",
        redress::adapters::render::Templates::names().count(),
        config
            .templates
            .dir
            .as_ref()
            .map(|d| format!("overrides from {}", d.display()))
            .unwrap_or_else(|| "built-in".into())
    );
    if !connect {
        return Ok(ExitCode::SUCCESS);
    }
    let rt = tokio::runtime::Runtime::new().context("Starting the async runtime")?;
    let mut ok = true;
    // XOAUTH2: one token source for both logins (not kept in the store).
    let tokens = redress::adapters::oauth2::for_config(&config, None)?;
    rt.block_on(async {
        if let Some(t) = &tokens {
            match t.access_token().await {
                Ok(_) => println!("OAuth2 {}: got an access token", t.token_url()),
                Err(e) => {
                    ok = false;
                    println!("OAuth2 {}: FAILED: {e}; {}", t.token_url(), e.advice());
                }
            }
        }
        let (host, port) = (&config.imap.host, config.imap_port());
        match redress::adapters::imap::probe_with(&config.imap, port, tokens.as_deref()).await {
            Ok(p) => println!(
                "IMAP {host}:{port}: logged in as {}{}; folder {} holds {} message(s); IDLE {}; keywords {}",
                config.imap.username,
                if config.imap.auth == redress::config::AuthMethod::Xoauth2 {
                    " (XOAUTH2)"
                } else {
                    ""
                },
                p.folder,
                p.exists,
                if p.idle { "supported" } else { "not supported (will poll)" },
                if p.keywords { "allowed" } else { "not allowed" },
            ),
            Err(e) => {
                ok = false;
                println!("IMAP {host}:{port}: FAILED: {e}");
            }
        }
        let (host, port) = (&config.smtp.host, config.smtp_port());
        match redress::adapters::smtp::probe_with(&config.smtp, port, tokens.clone()).await {
            Ok(()) => println!(
                "SMTP {host}:{port}: connected{}",
                config
                    .smtp
                    .username
                    .as_ref()
                    .map(|u| format!(
                        " and logged in as {u}{}",
                        if config.smtp.auth == redress::config::AuthMethod::Xoauth2 {
                            " (XOAUTH2)"
                        } else {
                            ""
                        }
                    ))
                    .unwrap_or_default()
            ),
            Err(e) => {
                ok = false;
                println!("SMTP {host}:{port}: FAILED: {e:#}");
            }
        }
    });
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn parse_date(s: &str, what: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .with_context(|| format!("{what}: {s:?} is not a date (write YYYY-MM-DD)"))
}

fn parse_nation(s: &str) -> anyhow::Result<Nation> {
    Ok(s.parse::<Nation>()?)
}

fn working_calendar(args: &CalendarArgs) -> anyhow::Result<WorkingCalendar> {
    let nation = args.nation.as_deref().map(parse_nation).transpose()?;
    match &args.config {
        Some(path) => config::load(path)?.calendar(nation),
        None => Ok(WorkingCalendar::new(
            redress::core::calendar::CalendarSpec {
                nation: nation.unwrap_or_default(),
                ..Default::default()
            },
        )),
    }
}

fn calendar(c: CalendarCommand) -> anyhow::Result<ExitCode> {
    match c {
        CalendarCommand::AddWorkingDays { from, days, cal } => {
            let from = parse_date(&from, "--from")?;
            let cal = working_calendar(&cal)?;
            println!("{}", cal.add_working_days(from, days)?);
        }
        CalendarCommand::WorkingDaysBetween { from, to, cal } => {
            let (from, to) = (parse_date(&from, "--from")?, parse_date(&to, "--to")?);
            let cal = working_calendar(&cal)?;
            println!("{}", cal.working_days_between(from, to));
        }
        CalendarCommand::AddMonths { from, months } => {
            println!("{}", add_months(parse_date(&from, "--from")?, months)?);
        }
        CalendarCommand::IsWorkingDay { date, cal } => {
            let date = parse_date(&date, "--date")?;
            let cal = working_calendar(&cal)?;
            match cal.why_not_working(date) {
                None => println!("yes"),
                Some(why) => println!("no ({why})"),
            }
        }
        CalendarCommand::Holidays { year, nation } => {
            let nation = nation
                .as_deref()
                .map(parse_nation)
                .transpose()?
                .unwrap_or_default();
            for h in bank_holidays(nation, year) {
                println!("{}\t{}", h.date, h.title);
            }
        }
        CalendarCommand::ImportBankHolidays {
            file,
            nation,
            since,
        } => {
            let nation = parse_nation(&nation)?;
            let all = redress::adapters::bank_holidays::read(&file)?;
            let Some(days) = all.get(&nation) else {
                bail!("{} has no {nation} division", file.display());
            };
            let days: Vec<_> = days
                .iter()
                .filter(|h| since.is_none_or(|y| h.date.year() >= y))
                .collect();
            println!(
                "# {} bank holidays for {nation} from {}",
                days.len(),
                file.display()
            );
            println!("# Paste under [calendar] (or set bank_holidays_file to the file itself).");
            println!("extra_holidays = [");
            for h in days {
                println!("    \"{}\", # {}", h.date, h.title);
            }
            println!("]");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn open_store(path: &Path) -> anyhow::Result<Store> {
    let config: Config = config::load(path)?;
    Store::open(&config.store.path)
}

fn cases(c: CasesCommand) -> anyhow::Result<ExitCode> {
    match c {
        CasesCommand::List {
            config,
            status,
            format,
        } => {
            let status = status.as_deref().map(str::parse::<Status>).transpose()?;
            let store = open_store(&config.config)?;
            let cases = store.list_cases(status)?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&cases)?),
                Format::Table => print_case_table(&cases),
            }
        }
        CasesCommand::Show {
            reference,
            config,
            format,
        } => {
            let store = open_store(&config.config)?;
            let Some(detail) = store.case_detail(&reference)? else {
                bail!("no case {reference}");
            };
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&detail)?),
                Format::Table => print_case_detail(&detail),
            }
        }
        CasesCommand::Open(a) => open_case(*a)?,
        CasesCommand::Update(a) => update_case(*a)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `redress cases open`: records a complaint that came another way.
fn open_case(a: OpenArgs) -> anyhow::Result<()> {
    use redress::service::record::{self, Acknowledgement, Complaint};
    let text = match (&a.text, &a.text_file) {
        (Some(t), _) => t.clone(),
        (None, Some(p)) if p.as_os_str() == "-" => {
            let mut t = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)
                .context("Reading the complaint's text from standard input")?;
            t
        }
        (None, Some(p)) => std::fs::read_to_string(p)
            .with_context(|| format!("Reading the complaint's text from {}", p.display()))?,
        (None, None) => bail!("give the complaint's full details with --text or --text-file"),
    };
    let config: Config = config::load_for_store(&a.config.config)?;
    let mut store = Store::open(&config.store.path)?;
    let desk = redress::service::Desk::new(config, &mut store)?;
    let now = redress::clock::now();
    let received = match &a.received {
        Some(t) => parse_at(t, &desk.calendar, "--received")?,
        None => now,
    };
    let issue_date = a
        .issue_date
        .as_deref()
        .map(redress::core::command::parse_date)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--issue-date: {e}"))?;
    let complaint = Complaint {
        name: a.name.clone().unwrap_or_default(),
        email: a.email.clone(),
        phone: a.phone.clone(),
        subject: a.subject.clone(),
        text,
        via: a
            .via
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--via: {e}"))?,
        received,
        issue_date,
        stage: a.stage.clone(),
        department: a.department.clone(),
        acknowledged: a.acknowledged,
        by: a.by.clone(),
    };
    let done = record::record(&mut store, &desk, &complaint, now)?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&done)?),
        Format::Table => {
            let long = redress::core::text::uk_long_date;
            println!(
                "{} opened: {} stage, department {}, target date {}",
                done.reference,
                done.stage,
                done.department,
                done.target_date.map_or("-".to_string(), long)
            );
            match done.acknowledgement {
                Acknowledgement::Queued => println!(
                    "acknowledgement: queued to {} (the daemon sends it)",
                    complaint.email.as_deref().unwrap_or_default().trim()
                ),
                Acknowledgement::AlreadyGiven => {
                    println!("acknowledgement: already given, none sent")
                }
                Acknowledgement::NoAddress => println!(
                    "acknowledgement: no email address; the letter goes to the Quality Coordinator to post"
                ),
            }
            let today = desk.calendar.local_date(now);
            if done.target_date.is_some_and(|t| t < today) {
                println!(
                    "note: the target date has passed; the escalation ladder starts at the daemon's next tick"
                );
            }
            if let Some(due) = done.raised_late_due {
                println!(
                    "raised late: it was due by {}; staff are told, it is not refused",
                    long(due)
                );
            }
        }
    }
    Ok(())
}

/// `redress cases update`: changes the complainant's contact details.
fn update_case(a: UpdateArgs) -> anyhow::Result<()> {
    use redress::service::record::{self, Contact};
    let config: Config = config::load_for_store(&a.config.config)?;
    let mut store = Store::open(&config.store.path)?;
    let desk = redress::service::Desk::new(config, &mut store)?;
    let contact = Contact {
        name: a.name,
        email: a.email,
        phone: a.phone,
        by: a.by,
    };
    let done = record::change_contact(
        &mut store,
        &desk,
        &a.reference,
        &contact,
        redress::clock::now(),
    )?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&done)?),
        Format::Table => {
            if done.changed.is_empty() {
                println!("{}: nothing changed", done.reference);
            } else {
                println!("{}: changed {}", done.reference, done.changed.join(", "));
            }
            let or_none = |s: &str| {
                if s.is_empty() {
                    "-".to_string()
                } else {
                    s.to_string()
                }
            };
            println!(
                "complainant: {} <{}>, phone {}",
                or_none(&done.name),
                or_none(&done.email),
                or_none(&done.phone)
            );
            if done.acknowledgement.is_some() {
                println!(
                    "acknowledgement: queued to {} (the daemon sends it)",
                    done.email
                );
            }
        }
    }
    Ok(())
}

fn print_case_table(cases: &[CaseRecord]) {
    println!(
        "{:<16} {:<9} {:<9} {:<20} {:<10} {:<30} SUBJECT",
        "REFERENCE", "STAGE", "STATUS", "RECEIVED", "TARGET", "COMPLAINANT"
    );
    for c in cases {
        println!(
            "{:<16} {:<9} {:<9} {:<20} {:<10} {:<30} {}",
            c.reference,
            c.stage,
            c.status,
            c.received_at,
            c.target_date.as_deref().unwrap_or("-"),
            c.complainant_email,
            c.subject
        );
    }
    println!("{} case(s)", cases.len());
}

fn print_case_detail(d: &CaseDetail) {
    let c = &d.case;
    println!("{}  {}  {} / {}", c.reference, c.subject, c.stage, c.status);
    let email = if c.complainant_email.is_empty() {
        String::new()
    } else {
        format!(" <{}>", c.complainant_email)
    };
    println!(
        "  complainant: {}{email} {}",
        c.complainant_name, c.complainant_phone
    );
    println!("  department:  {}", c.department);
    println!("  received:    {}", c.received_at);
    println!(
        "  acknowledged: {}",
        c.acknowledged_at.as_deref().unwrap_or("-")
    );
    println!("  target date: {}", c.target_date.as_deref().unwrap_or("-"));
    println!("messages:");
    for m in &d.messages {
        println!(
            "  {} {} {} {}",
            m.received_at, m.direction, m.from_address, m.subject
        );
    }
    println!("events:");
    for e in &d.events {
        println!("  {} {} {} {}", e.at, e.actor, e.kind, e.detail);
    }
}
