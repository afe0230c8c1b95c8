//! The command line (clap, derive): one [`Command`] variant per command group, each group's
//! arguments next to it. Adding a group is one variant here, one module in `commands/` and one
//! arm in `run.rs`.
//!
//! `DATABASE_URL`, `AMQP_URL` and `AMQP_NAMESPACE` come from the environment or the matching
//! flag (the flag wins); their values are never shown in `--help` (they may hold a password).

use clap::{Args, Parser, Subcommand, ValueEnum};
use store::api_keys::Scope;
use store::auth_codes::AuthCodeState;
use store::tenants::TenantStatus;

/// daikai — operator CLI for the daikai WeCom 代开发 backend (docs/operations.md).
#[derive(Debug, Parser)]
#[command(name = "daikai", version, about, long_about = None)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Where the database and the broker are, and how to print.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Exit codes, listed under `--help` (docs/operations.md §8 documents them too).
pub const EXIT_CODES_HELP: &str = "\
EXIT CODES:
  0  done; for `status`: nothing needs attention
  1  the command failed (its message says why)
  2  the command line is wrong
  3  `status`: something needs attention
  4  the database is unreachable or refused the login
  5  the broker is unreachable or refused the login
  6  not found (tenant, dead letter)";

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Postgres URL.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// RabbitMQ URL (default amqp://guest:guest@127.0.0.1:5672/%2f).
    #[arg(long, global = true, env = "AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,
    /// Prefix of every exchange and queue name.
    #[arg(long, global = true, env = "AMQP_NAMESPACE", default_value = "")]
    pub amqp_namespace: String,
    /// Print JSON instead of a table (read commands; field names in docs/operations.md §8).
    #[arg(long, global = true)]
    pub json: bool,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the database migrations this binary carries.
    Migrate,
    /// Exit 0 if the database schema fits this binary.
    CheckSchema,
    /// Everything at once: schema, broker and queues, tickets, tokens, sync runs. Exit 3 when
    /// something needs attention.
    Status,
    /// Tenants: list them, or everything about one.
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Request a full directory sync of a tenant now (`sync CORP`), or see runs (`sync status`).
    Sync(SyncArgs),
    /// Request a full reconciliation of a tenant's directory now (a full sync through the bus).
    Reconcile(TenantArg),
    /// Dead letters: list, show, replay, purge.
    #[command(subcommand)]
    Dead(DeadCommand),
    /// Every AuthCode and its fate, with what to do about a burnt one.
    AuthCodes(AuthCodesArgs),
    /// Stored secrets per key id.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Re-seal every stored secret under the active key (resumable: run it again after an
    /// interruption).
    RotateSecrets {
        /// Rows per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..))]
        batch: i64,
    },
    /// Secret keys.
    #[command(subcommand)]
    SecretKey(SecretKeyCommand),
    /// Keys of the provider API (docs/api.md §2): create (printed once), list, revoke.
    #[command(subcommand)]
    ApiKeys(ApiKeysCommand),
}

/// `daikai api-keys …`
#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Create a key and print it once (only its hash is stored).
    Create {
        /// A label for people (`crm-backend`).
        #[arg(long)]
        name: String,
        /// What it may do: tenants:read, tokens, jssdk, login, directory:read, or `all`
        /// (repeat, or a comma list).
        #[arg(long = "scope", required = true, value_delimiter = ',', value_parser = parse_scopes)]
        scopes: Vec<Vec<Scope>>,
        /// The suites it may act for (repeat, or a comma list); none: every suite.
        #[arg(long = "suite", value_delimiter = ',')]
        suites: Vec<String>,
        /// Requests per second per API replica (default: the API's API_RATE_LIMIT).
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        rate_limit: Option<i32>,
    },
    /// Every key: id, name, scopes, suites, rate, last use, revocation.
    List,
    /// Revoke a key (the API answers it 401 from then on).
    Revoke {
        /// The key's id (`dk_<id>_…`, or as `api-keys list` shows it).
        id: String,
    },
}

impl ApiKeysCommand {
    /// The scopes of `create`, flattened, sorted and deduplicated.
    pub fn scopes(scopes: &[Vec<Scope>]) -> Vec<Scope> {
        let mut all: Vec<Scope> = scopes.iter().flatten().copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

fn parse_scopes(value: &str) -> Result<Vec<Scope>, String> {
    match value.trim() {
        "all" => Ok(Scope::ALL.to_vec()),
        name => Scope::parse(name).map(|s| vec![s]).map_err(|_| {
            format!("unknown scope `{name}` (tenants:read|tokens|jssdk|login|directory:read|all)")
        }),
    }
}

/// `daikai tenants …`
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// List tenants.
    List {
        /// Only this suite.
        #[arg(long)]
        suite: Option<String>,
        /// Only this status.
        #[arg(long, value_parser = parse_status)]
        status: Option<TenantStatus>,
    },
    /// Everything about one tenant.
    Show(TenantArg),
}

/// One tenant: its corp id, and the suite when the corp authorized several.
#[derive(Debug, Clone, Args)]
pub struct TenantArg {
    /// The corp id.
    pub corp: String,
    /// The suite (needed only when the corp authorized more than one).
    #[arg(long)]
    pub suite: Option<String>,
}

/// `daikai sync CORP` or `daikai sync status [CORP]`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SyncArgs {
    /// `status`.
    #[command(subcommand)]
    pub command: Option<SyncCommand>,
    /// The corp whose directory to sync.
    #[arg(required = true)]
    pub corp: Option<String>,
    /// The suite (needed only when the corp authorized more than one).
    #[arg(long)]
    pub suite: Option<String>,
}

/// `daikai sync status`.
#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Runs in progress, or one tenant's recent runs.
    Status {
        /// Only this corp (its recent runs, finished ones too).
        corp: Option<String>,
        /// The suite (needed only when the corp authorized more than one).
        #[arg(long)]
        suite: Option<String>,
        /// At most this many runs of the corp.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..))]
        limit: i64,
    },
}

/// `daikai dead …`
#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// Dead letters of every work queue, or of one (`auth`, `contacts`, or a queue name).
    List {
        /// The work queue.
        queue: Option<String>,
        /// At most this many per queue.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// One dead letter: envelope, error, attempts.
    Show {
        /// Its id (the message id `dead list` shows).
        id: String,
    },
    /// Publish dead letters again to their original routing key, then remove them.
    Replay {
        /// The dead letter's id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every dead letter (of `--queue`, or of every work queue).
        #[arg(long)]
        all: bool,
        /// Only this work queue's dead letters.
        #[arg(long)]
        queue: Option<String>,
    },
    /// Delete dead letters for good.
    Purge {
        /// Only those older than this (`90s`, `30m`, `12h`, `7d`).
        #[arg(long, value_parser = parse_age)]
        older_than: Option<chrono::TimeDelta>,
        /// Only this work queue's dead letters.
        #[arg(long)]
        queue: Option<String>,
    },
}

/// `daikai auth-codes [--failed]` (also spelled `auth-codes list`).
#[derive(Debug, Args)]
pub struct AuthCodesArgs {
    /// `list`, the same as no subcommand.
    #[command(subcommand)]
    pub command: Option<AuthCodesCommand>,
    /// Which codes.
    #[command(flatten)]
    pub filter: AuthCodeFilter,
}

/// `daikai auth-codes list`.
#[derive(Debug, Subcommand)]
pub enum AuthCodesCommand {
    /// The same as `daikai auth-codes`.
    List(AuthCodeFilter),
}

/// Which AuthCodes to list.
#[derive(Debug, Clone, Copy, Args)]
pub struct AuthCodeFilter {
    /// Only burnt or expired ones (`--state failed`).
    #[arg(long, conflicts_with = "state")]
    pub failed: bool,
    /// Only this state.
    #[arg(long, value_enum)]
    pub state: Option<CodeState>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..))]
    pub limit: i64,
}

impl AuthCodeFilter {
    /// The state asked for.
    pub fn state(&self) -> Option<AuthCodeState> {
        if self.failed {
            return Some(AuthCodeState::Failed);
        }
        self.state.map(|s| match s {
            CodeState::Received => AuthCodeState::Received,
            CodeState::Exchanged => AuthCodeState::Exchanged,
            CodeState::Failed => AuthCodeState::Failed,
        })
    }
}

/// An AuthCode state on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CodeState {
    /// Stored, not exchanged yet.
    Received,
    /// Exchanged for the permanent code.
    Exchanged,
    /// Burnt, refused or expired.
    Failed,
}

/// `daikai secrets …`
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// How many stored secrets each key id seals.
    Status,
}

/// `daikai secret-key …`
#[derive(Debug, Subcommand)]
pub enum SecretKeyCommand {
    /// Print a new DAIKAI_SECRET_KEY value (`ID:base64`).
    Generate {
        /// Its id (default: `k` + today's date).
        #[arg(long)]
        id: Option<String>,
    },
}

fn parse_status(value: &str) -> Result<TenantStatus, String> {
    TenantStatus::parse(value)
        .map_err(|_| format!("unknown tenant status `{value}` (pending|active|suspended|revoked)"))
}

/// `90s`, `30m`, `12h`, `7d`.
pub fn parse_age(value: &str) -> Result<chrono::TimeDelta, String> {
    let bad = || format!("`{value}` is not an age such as 90s, 30m, 12h or 7d");
    let (number, unit) = value.split_at(value.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| bad())?;
    if n < 0 {
        return Err(bad());
    }
    match unit {
        "s" => chrono::TimeDelta::try_seconds(n),
        "m" => chrono::TimeDelta::try_minutes(n),
        "h" => chrono::TimeDelta::try_hours(n),
        "d" => chrono::TimeDelta::try_days(n),
        _ => None,
    }
    .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("daikai").chain(args.iter().copied()))
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sync_takes_a_corp_or_the_status_subcommand() {
        let cli = parse(&["sync", "wwcorp", "--suite", "s1"]).unwrap();
        let Command::Sync(args) = cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(args.corp.as_deref(), Some("wwcorp"));
        assert!(args.command.is_none());
        let cli = parse(&["sync", "status", "wwcorp"]).unwrap();
        let Command::Sync(SyncArgs {
            command: Some(SyncCommand::Status { corp, .. }),
            ..
        }) = cli.command
        else {
            panic!("{cli:?}")
        };
        assert_eq!(corp.as_deref(), Some("wwcorp"));
        assert!(parse(&["sync"]).is_err());
    }

    #[test]
    fn replay_needs_an_id_or_all_but_not_both() {
        assert!(parse(&["dead", "replay"]).is_err());
        assert!(parse(&["dead", "replay", "x", "--all"]).is_err());
        assert!(parse(&["dead", "replay", "--all", "--queue", "auth"]).is_ok());
        assert!(parse(&["dead", "replay", "0193"]).is_ok());
    }

    #[test]
    fn auth_codes_with_and_without_list() {
        let cli = parse(&["auth-codes", "--failed"]).unwrap();
        let Command::AuthCodes(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.filter.state(), Some(AuthCodeState::Failed));
        let cli = parse(&["auth-codes", "list", "--state", "exchanged", "--limit", "5"]).unwrap();
        let Command::AuthCodes(AuthCodesArgs {
            command: Some(AuthCodesCommand::List(filter)),
            ..
        }) = cli.command
        else {
            panic!()
        };
        assert_eq!(
            (filter.state(), filter.limit),
            (Some(AuthCodeState::Exchanged), 5)
        );
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let err = parse(&["rotate-secrets", "--batch", "0"]).unwrap_err();
        assert!(err.to_string().contains("--batch"), "{err}");
        let err = parse(&["tenants", "list", "--status", "gone"]).unwrap_err();
        assert!(err.to_string().contains("unknown tenant status"), "{err}");
    }

    #[test]
    fn api_key_commands_parse() {
        let cli = parse(&[
            "api-keys",
            "create",
            "--name",
            "crm",
            "--scope",
            "tokens,jssdk",
            "--scope",
            "tenants:read",
            "--suite",
            "dk1",
            "--suite",
            "dk2",
            "--rate-limit",
            "50",
        ])
        .unwrap();
        let Command::ApiKeys(ApiKeysCommand::Create {
            name,
            scopes,
            suites,
            rate_limit,
        }) = cli.command
        else {
            panic!("{cli:?}")
        };
        assert_eq!(name, "crm");
        assert_eq!(
            ApiKeysCommand::scopes(&scopes),
            [Scope::TenantsRead, Scope::Tokens, Scope::Jssdk]
        );
        assert_eq!(suites, ["dk1", "dk2"]);
        assert_eq!(rate_limit, Some(50));
        let cli = parse(&["api-keys", "create", "--name", "x", "--scope", "all"]).unwrap();
        let Command::ApiKeys(ApiKeysCommand::Create { scopes, .. }) = cli.command else {
            panic!()
        };
        assert_eq!(ApiKeysCommand::scopes(&scopes), Scope::ALL);
        assert!(
            parse(&["api-keys", "create", "--name", "x"]).is_err(),
            "a scope is required"
        );
        let err = parse(&["api-keys", "create", "--name", "x", "--scope", "admin"]).unwrap_err();
        assert!(err.to_string().contains("unknown scope"), "{err}");
        assert!(parse(&["api-keys", "revoke", "abc"]).is_ok());
    }

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("90s"), Ok(chrono::TimeDelta::seconds(90)));
        assert_eq!(parse_age("7d"), Ok(chrono::TimeDelta::days(7)));
        assert!(parse_age("7").is_err());
        assert!(parse_age("-1h").is_err());
        assert!(parse_age("1w").is_err());
    }
}
