//! The command line, parsed into one [`Command`] (no argument-parsing dependency: the grammar is
//! a handful of subcommands with at most one option each).

use store::api_keys::Scope;
use store::auth_codes::AuthCodeState;
use store::tenants::TenantStatus;

/// `daikai help` text.
pub const USAGE: &str = "\
daikai — operator CLI for the daikai WeCom 代开发 backend

USAGE:
    daikai <command> [options]

COMMANDS:
    migrate                          apply the database migrations this binary carries
    check-schema                     exit 0 if the database schema fits this binary
    tenants list [--status S]        list tenants (S: pending|active|suspended|revoked)
    auth-codes list [--state S] [--limit N]
                                     recent AuthCodes (S: received|exchanged|failed; N default 50)
    secrets status                   how many stored secrets each key id seals
    rotate-secrets [--batch N]       re-seal every stored secret under the active key
    secret-key generate [--id ID]    print a new DAIKAI_SECRET_KEY value (`ID:base64`)
    api-keys create --name NAME --scope S [--scope S…] [--suite ID…] [--rate-limit N]
                                     create a provider API key and print it (once); S:
                                     tenants:read|tokens|jssdk|login|directory:read (or `all`,
                                     or comma lists); without --suite the key serves every
                                     suite; N: requests per second per API replica
    api-keys list                    every key: id, name, scopes, suites, last use, revoked
    api-keys revoke ID               revoke a key (it answers 401 from then on)
    help                             this text

ENVIRONMENT:
    DATABASE_URL                     Postgres URL (every command but secret-key and help)
    DAIKAI_SECRET_KEY                active key, `ID:base64-of-32-bytes` or bare base64
                                     (secrets status, rotate-secrets)
    DAIKAI_SECRET_KEYS_PREVIOUS      old keys still needed for decryption, comma-separated
";

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Apply migrations.
    Migrate,
    /// Check the schema version.
    CheckSchema,
    /// List tenants.
    TenantsList {
        /// Only this status.
        status: Option<TenantStatus>,
    },
    /// List AuthCodes.
    AuthCodesList {
        /// Only this state.
        state: Option<AuthCodeState>,
        /// At most this many.
        limit: i64,
    },
    /// Count secrets per key id.
    SecretsStatus,
    /// Re-seal every secret under the active key.
    RotateSecrets {
        /// Rows per transaction.
        batch: i64,
    },
    /// Print a new key.
    GenerateKey {
        /// Its id (default: `k` + today's date).
        id: Option<String>,
    },
    /// Create a provider API key.
    ApiKeysCreate {
        /// Its name.
        name: String,
        /// What it may do.
        scopes: Vec<Scope>,
        /// The suites it may act for; `None` for every suite.
        suites: Option<Vec<String>>,
        /// Requests per second per API replica; `None` for the API's default.
        rate_limit: Option<i32>,
    },
    /// List the provider API keys.
    ApiKeysList,
    /// Revoke a provider API key.
    ApiKeysRevoke {
        /// Its id.
        id: String,
    },
    /// Print the usage text.
    Help,
}

/// A command line that does not parse; its message says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (see `daikai help`)", self.0)
    }
}

impl std::error::Error for UsageError {}

impl Command {
    /// Parses the arguments after the program name.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Self, UsageError> {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        match args.as_slice() {
            [] | ["help" | "--help" | "-h"] => Ok(Self::Help),
            ["migrate"] => Ok(Self::Migrate),
            ["check-schema"] => Ok(Self::CheckSchema),
            ["tenants", "list", rest @ ..] => {
                let mut opts = Options::parse(rest, &["--status"])?;
                let status = opts.take("--status").map(parse_status).transpose()?;
                Ok(Self::TenantsList { status })
            }
            ["auth-codes", "list", rest @ ..] => {
                let mut opts = Options::parse(rest, &["--state", "--limit"])?;
                let state = opts.take("--state").map(parse_state).transpose()?;
                let limit = opts
                    .take("--limit")
                    .map(|v| parse_positive("--limit", v))
                    .transpose()?
                    .unwrap_or(50);
                Ok(Self::AuthCodesList { state, limit })
            }
            ["secrets", "status"] => Ok(Self::SecretsStatus),
            ["rotate-secrets", rest @ ..] => {
                let mut opts = Options::parse(rest, &["--batch"])?;
                let batch = opts
                    .take("--batch")
                    .map(|v| parse_positive("--batch", v))
                    .transpose()?
                    .unwrap_or(500);
                Ok(Self::RotateSecrets { batch })
            }
            ["secret-key", "generate", rest @ ..] => {
                let mut opts = Options::parse(rest, &["--id"])?;
                Ok(Self::GenerateKey {
                    id: opts.take("--id").map(str::to_owned),
                })
            }
            ["api-keys", "create", rest @ ..] => parse_api_key(rest),
            ["api-keys", "list"] => Ok(Self::ApiKeysList),
            ["api-keys", "revoke", id] => Ok(Self::ApiKeysRevoke {
                id: (*id).to_owned(),
            }),
            _ => Err(UsageError(format!("unknown command `{}`", args.join(" ")))),
        }
    }

    /// True when the command needs `DATABASE_URL`.
    pub fn needs_database(&self) -> bool {
        !matches!(self, Self::Help | Self::GenerateKey { .. })
    }
}

/// `api-keys create --name NAME --scope S… [--suite ID…] [--rate-limit N]`.
fn parse_api_key(rest: &[&str]) -> Result<Command, UsageError> {
    let mut opts = Options::parse_repeatable(
        rest,
        &["--name", "--scope", "--suite", "--rate-limit"],
        &["--scope", "--suite"],
    )?;
    let name = opts
        .take("--name")
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| UsageError("api-keys create needs `--name NAME`".to_owned()))?
        .to_owned();
    let mut scopes = Vec::new();
    for value in opts.take_all("--scope").iter().flat_map(|v| v.split(',')) {
        match value.trim() {
            "all" => scopes.extend(Scope::ALL),
            name => scopes.push(
                Scope::parse(name).map_err(|_| UsageError(format!("unknown scope `{name}`")))?,
            ),
        }
    }
    if scopes.is_empty() {
        return Err(UsageError(
            "api-keys create needs at least one `--scope`".to_owned(),
        ));
    }
    scopes.sort_unstable();
    scopes.dedup();
    let suites: Vec<String> = opts
        .take_all("--suite")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let rate_limit = opts
        .take("--rate-limit")
        .map(|v| parse_positive("--rate-limit", v))
        .transpose()?
        .map(|n| {
            i32::try_from(n)
                .map_err(|_| UsageError("option `--rate-limit` is too large".to_owned()))
        })
        .transpose()?;
    Ok(Command::ApiKeysCreate {
        name,
        scopes,
        suites: (!suites.is_empty()).then_some(suites),
        rate_limit,
    })
}

/// `--name value` pairs, each allowed at most once unless repeatable.
struct Options<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Options<'a> {
    fn parse(args: &[&'a str], allowed: &[&str]) -> Result<Self, UsageError> {
        Self::parse_repeatable(args, allowed, &[])
    }

    fn parse_repeatable(
        args: &[&'a str],
        allowed: &[&str],
        repeatable: &[&str],
    ) -> Result<Self, UsageError> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        let mut iter = args.iter();
        while let Some(name) = iter.next() {
            if !allowed.contains(name) {
                return Err(UsageError(format!("unknown option `{name}`")));
            }
            let Some(value) = iter.next() else {
                return Err(UsageError(format!("option `{name}` needs a value")));
            };
            if !repeatable.contains(name) && pairs.iter().any(|(n, _)| n == name) {
                return Err(UsageError(format!("option `{name}` given twice")));
            }
            pairs.push((name, value));
        }
        Ok(Self(pairs))
    }

    fn take(&mut self, name: &str) -> Option<&'a str> {
        let index = self.0.iter().position(|(n, _)| *n == name)?;
        Some(self.0.remove(index).1)
    }

    fn take_all(&mut self, name: &str) -> Vec<&'a str> {
        let mut values = Vec::new();
        while let Some(value) = self.take(name) {
            values.push(value);
        }
        values
    }
}

fn parse_status(value: &str) -> Result<TenantStatus, UsageError> {
    TenantStatus::parse(value).map_err(|_| UsageError(format!("unknown tenant status `{value}`")))
}

fn parse_state(value: &str) -> Result<AuthCodeState, UsageError> {
    match value {
        "received" => Ok(AuthCodeState::Received),
        "exchanged" => Ok(AuthCodeState::Exchanged),
        "failed" => Ok(AuthCodeState::Failed),
        other => Err(UsageError(format!("unknown AuthCode state `{other}`"))),
    }
}

fn parse_positive(name: &str, value: &str) -> Result<i64, UsageError> {
    match value.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(UsageError(format!(
            "option `{name}` needs a positive integer"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(Command::parse::<&str>(&[]), Ok(Command::Help));
        assert_eq!(Command::parse(&["migrate"]), Ok(Command::Migrate));
        assert_eq!(
            Command::parse(&["tenants", "list", "--status", "revoked"]),
            Ok(Command::TenantsList {
                status: Some(TenantStatus::Revoked)
            })
        );
        assert_eq!(
            Command::parse(&["auth-codes", "list", "--state", "failed", "--limit", "5"]),
            Ok(Command::AuthCodesList {
                state: Some(AuthCodeState::Failed),
                limit: 5
            })
        );
        assert_eq!(
            Command::parse(&["rotate-secrets"]),
            Ok(Command::RotateSecrets { batch: 500 })
        );
        assert_eq!(
            Command::parse(&["secret-key", "generate", "--id", "k2"]),
            Ok(Command::GenerateKey {
                id: Some("k2".to_owned())
            })
        );
    }

    #[test]
    fn api_key_commands_parse() {
        assert_eq!(
            Command::parse(&[
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
                "50"
            ]),
            Ok(Command::ApiKeysCreate {
                name: "crm".to_owned(),
                scopes: vec![Scope::TenantsRead, Scope::Tokens, Scope::Jssdk],
                suites: Some(vec!["dk1".to_owned(), "dk2".to_owned()]),
                rate_limit: Some(50),
            })
        );
        assert_eq!(
            Command::parse(&["api-keys", "create", "--name", "all", "--scope", "all"]),
            Ok(Command::ApiKeysCreate {
                name: "all".to_owned(),
                scopes: Scope::ALL.to_vec(),
                suites: None,
                rate_limit: None,
            })
        );
        assert_eq!(
            Command::parse(&["api-keys", "revoke", "abc"]),
            Ok(Command::ApiKeysRevoke {
                id: "abc".to_owned()
            })
        );
        for (args, message) in [
            (&["api-keys", "create", "--scope", "tokens"][..], "--name"),
            (&["api-keys", "create", "--name", "x"][..], "--scope"),
            (
                &["api-keys", "create", "--name", "x", "--scope", "admin"][..],
                "unknown scope",
            ),
            (
                &[
                    "api-keys", "create", "--name", "x", "--name", "y", "--scope", "tokens",
                ][..],
                "twice",
            ),
        ] {
            let err = Command::parse(args).unwrap_err().to_string();
            assert!(err.contains(message), "{args:?}: {err}");
        }
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        let err = Command::parse(&["migrat"]).unwrap_err();
        assert!(err.to_string().contains("unknown command `migrat`"));
        let err = Command::parse(&["tenants", "list", "--status"]).unwrap_err();
        assert!(err.to_string().contains("needs a value"));
        let err = Command::parse(&["rotate-secrets", "--batch", "0"]).unwrap_err();
        assert!(err.to_string().contains("positive integer"));
        let err = Command::parse(&["tenants", "list", "--status", "gone"]).unwrap_err();
        assert!(err.to_string().contains("unknown tenant status"));
    }
}
