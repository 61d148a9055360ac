//! Configuration: environment variables (`LETHE_*`) over an optional TOML file
//! (`--config` / `LETHE_CONFIG`; keys are the variable names without the
//! prefix, in lower case). Defaults need nothing installed. A bad value stops
//! start-up with a message that names the setting.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use rand::RngCore;

use crate::domain::outbox::{Retention, WorkflowPolicy};
use crate::domain::secret::Secret;
use crate::domain::subject_key::SubjectKey;
use crate::domain::support::{DigestPolicy, LockoutPolicy, SupportPolicy};
use crate::store::{Backend, DatabaseUrl, StoreOptions};

/// Every setting lethe reads, with its default and meaning. The README's
/// configuration table is checked against this list by a test.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    ("LETHE_CONFIG", "(none)", "Path of a TOML file with any of these settings (keys in lower case, without `LETHE_`)."),
    ("LETHE_BIND", "127.0.0.1:8080", "Address and port the HTTP server listens on."),
    ("LETHE_DATABASE_URL", "sqlite://lethe.db", "`sqlite://path` (embedded) or `postgres://user@host/db`."),
    ("LETHE_PUBLIC_URL", "http://<LETHE_BIND>", "Base URL of links in emails (approval pages)."),
    ("LETHE_SMTP_URL", "(none)", "`smtp://host:port`, `smtp://host?tls=required` (STARTTLS) or `smtps://user:pass@host`; unset: mail is written as .eml files to LETHE_OUTBOX_DIR."),
    ("LETHE_OUTBOX_DIR", "./outbox", "Folder for .eml files when no SMTP server is configured."),
    ("LETHE_ADMIN_TOKEN", "(none)", "Bearer token of the admin API (`/v1/tenants`); unset: the admin API is disabled (use the CLI). At least 16 characters."),
    ("LETHE_SECRET_KEY", "(generated)", "Server secret (base64 or hex, at least 32 bytes) keying the subject hashes kept after scrubbing. Required with PostgreSQL; with SQLite it is generated into LETHE_SECRET_KEY_FILE."),
    ("LETHE_SECRET_KEY_FILE", "<database file>.key", "File holding the server secret when LETHE_SECRET_KEY is not set."),
    ("LETHE_OPENDSR_KEY_FILE", "(none)", "PEM RSA private key (PKCS#8 or PKCS#1) that signs OpenDSR responses and status callbacks. Unset: the OpenDSR endpoints answer 503 (set both files to enable them)."),
    ("LETHE_OPENDSR_CERT_FILE", "(none)", "PEM X.509 certificate of LETHE_OPENDSR_KEY_FILE's public key, served at `/opendsr/v1/certificate` for controllers to verify signatures."),
    ("LETHE_MAIL_FROM", "lethe <lethe@localhost>", "From address of every email lethe sends."),
    ("LETHE_MAIL_SUBJECT_PREFIX", "[Erasure request]", "Start of the subject line of approval emails."),
    ("LETHE_SMTP_TIMEOUT_SECS", "15", "Timeout of one SMTP conversation."),
    ("LETHE_SMTP_CONNECTIONS", "64", "SMTP connections kept open to the mail server, and the most emails sent at once; further emails wait for a free connection rather than open and close one of their own. Lower it to what the mail server allows one client (far fewer than the jobs that mail at once slows them: bench/pipeline erased a quarter to a third fewer requests per second with 16 or 10 than with 64; 128 was no faster than 64)."),
    ("LETHE_APPROVAL_LINK_TTL_DAYS", "14", "Days an approval link stays valid."),
    ("LETHE_CALLBACKS_ALLOW_PRIVATE", "false", "Let callback_url and OpenDSR status_callback_urls reach private, loopback and link-local addresses (refused by default, also when a name resolves to one: they are supplied by API callers). Erasure targets, registered by the operator, may be anywhere."),
    ("LETHE_OWNER_REMINDER_DAYS", "3", "Days between reminders to the owner of a manual erasure target (a new link each time) until they confirm; 0: no reminders."),
    ("LETHE_REMINDER_DAYS", "3,7", "Days after the approval email at which the privacy contact is reminded (a new link; the old one is voided). Empty: no reminders."),
    ("LETHE_ESCALATE_DAYS_BEFORE_DUE", "7", "An undecided request is flagged for support this many days before its deadline."),
    ("LETHE_RETENTION_ERASED_DAYS", "0", "Days an erased request keeps its personal fields (subject id, email, reason) before they are scrubbed; the keyed hash stays."),
    ("LETHE_RETENTION_REJECTED_DAYS", "30", "Days a rejected request keeps its personal fields."),
    ("LETHE_RETENTION_CANCELLED_DAYS", "30", "Days a cancelled request keeps its personal fields."),
    ("LETHE_JOB_WORKERS", "128", "Background jobs (email, reminders, erasure calls) run at once per process, 0 to 1024; 0 runs none. One dispatcher claims due jobs for the free slots, up to 16 in one statement. Most of a job is waiting (for SMTP, a target, its group's commit), so more slots keep the cores busier: on 2 cores bench/pipeline erased about 8 % more requests per second with 128 than with 64 on PostgreSQL (cores 90 % busy instead of 82 %, three pairs) and about 12 % more on SQLite (two pairs: 4 % and 22 %)."),
    ("LETHE_JOB_POLL_MS", "1000", "How often idle workers look for due jobs."),
    ("LETHE_JOB_LEASE_SECS", "300", "How long a claimed job is held; a replica that dies mid-job loses its claims after this. Keep it above the SMTP and target timeouts."),
    ("LETHE_DB_POOL_SIZE", "8", "PostgreSQL connections per process. More than the cores can keep busy only adds database backends competing for them: on 2 cores, bench/pipeline erased 285 requests/s with 8 against 261/s with 16, and the process kept 1.7 MiB less under load. Raise it with more cores."),
    ("LETHE_SQLITE_SYNCHRONOUS", "full", "`full` (survives power loss) or `normal` (survives a process crash; faster)."),
    ("LETHE_HTTP_WORKERS", "(cores)", "HTTP worker threads."),
    ("LETHE_HTTP_CLIENT_REQUEST_TIMEOUT_MS", "5000", "Time a client has to send a request's head before it gets 408 and the connection closes."),
    ("LETHE_HTTP_REQUEST_TIMEOUT_SECS", "30", "Time a whole request (head, body and handling) may take; a client trickling its body gets 408 and the connection closes."),
    ("LETHE_HTTP_KEEP_ALIVE_SECS", "5", "How long an idle keep-alive connection stays open."),
    ("LETHE_RATE_LIMIT_PER_MINUTE", "120", "Requests per minute per client address on every endpoint without an API key (approval and status pages, target confirmations, Facebook callback, OpenDSR discovery and certificate, receipts key, support login); past it: 429 with Retry-After. 0: no limit."),
    ("LETHE_RATE_LIMIT_BURST", "60", "Requests a client address may make at once before LETHE_RATE_LIMIT_PER_MINUTE applies."),
    ("LETHE_RATE_LIMIT_LOGIN_PER_MINUTE", "30", "Support login attempts per minute per client address (on top of the account lock-out). 0: no limit."),
    ("LETHE_RATE_LIMIT_UNKNOWN_TOKENS_PER_HOUR", "60", "Unknown approval links or status codes a client address may present per hour; past it, its look-ups get 429. Each one is logged (without the token) and counted in `lethe_unknown_tokens_total`. 0: no limit."),
    ("LETHE_TRUST_FORWARDED_FOR", "false", "`true` behind a reverse proxy: rate limits key on the last `X-Forwarded-For` address instead of the connection's. Never set it when clients connect directly."),
    ("LETHE_LOG", "info", "Log filter, e.g. `info` or `lethe=debug,actix_web=warn`."),
    ("LETHE_LOG_FORMAT", "text", "`text` or `json`."),
    ("LETHE_METRICS_MAX_AGE_SECS", "10", "How old the database figures of `/metrics` (requests by state, overdue, job queues, dead jobs) may be, 0 to 3600: each process reads them at most once per this many seconds however often it is scraped (the endpoint needs no key), and scrapes meanwhile get the same figures; 0: read on every scrape. Counting every request costs the database about half a second at a million requests."),
    ("LETHE_SUPPORT_SESSION_HOURS", "12", "How long a support dashboard login lasts."),
    ("LETHE_SUPPORT_MAX_FAILED_LOGINS", "5", "Consecutive failed logins that lock a support account."),
    ("LETHE_SUPPORT_LOCKOUT_MINUTES", "15", "How long a locked support account stays locked."),
    ("LETHE_SUPPORT_DIGEST_TO", "(none)", "Email address of the support team's daily digest (new, overdue, failed requests); unset: no digest."),
    ("LETHE_SUPPORT_DIGEST_HOUR", "7", "Hour of the day (UTC, 0 to 23) the daily digest goes out."),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_owned(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Validated settings, passed down explicitly (no global).
#[derive(Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub database_url: DatabaseUrl,
    pub public_url: url::Url,
    pub smtp_url: Option<url::Url>,
    pub outbox_dir: PathBuf,
    pub admin_token: Option<Secret>,
    pub subject_key: SubjectKey,
    pub store: StoreOptions,
    pub http_workers: Option<usize>,
    /// Callbacks may go to private, loopback and link-local addresses.
    pub callbacks_allow_private: bool,
    pub mail_from: lettre::message::Mailbox,
    pub mail_subject_prefix: String,
    pub smtp_timeout: Duration,
    pub smtp_connections: u32,
    pub workflow: WorkflowPolicy,
    pub job_workers: usize,
    pub job_poll: Duration,
    pub job_lease: Duration,
    pub log_filter: String,
    pub log_format: LogFormat,
    /// How long the database figures of `/metrics` are reused.
    pub metrics_max_age: Duration,
    /// OpenDSR processor signing key and certificate; `None`: OpenDSR is off.
    pub opendsr: Option<std::sync::Arc<crate::domain::opendsr::ProcessorKey>>,
    pub support: SupportPolicy,
    /// Rate limits and HTTP timeouts.
    pub http: crate::http::limit::HttpPolicy,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("bind", &self.bind)
            .field("database_url", &self.database_url)
            .field("public_url", &self.public_url.as_str())
            .field(
                "smtp",
                &self.smtp_url.as_ref().map(|u| u.host_str().unwrap_or("")),
            )
            .field("outbox_dir", &self.outbox_dir)
            .field("admin_api", &self.admin_token.is_some())
            .finish_non_exhaustive()
    }
}

/// Where raw values come from: the environment first, then the file.
pub struct Sources {
    env: BTreeMap<String, String>,
    file: BTreeMap<String, String>,
    file_name: Option<String>,
}

impl Sources {
    /// Read the process environment and the TOML file it (or `config`) names.
    pub fn load(config: Option<&Path>) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("LETHE_"))
            .collect();
        let path = config
            .map(Path::to_path_buf)
            .or_else(|| env.get("LETHE_CONFIG").map(PathBuf::from));
        Self::from_parts(env, path.as_deref())
    }

    pub fn from_parts(
        env: BTreeMap<String, String>,
        file: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                err(
                    "LETHE_CONFIG",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let table: toml::Table = text.parse().map_err(|e| {
                err(
                    "LETHE_CONFIG",
                    format!("{} is not valid TOML: {e}", path.display()),
                )
            })?;
            for (key, value) in table {
                let name = format!("LETHE_{}", key.to_ascii_uppercase());
                if !SETTINGS.iter().any(|(n, _, _)| *n == name) {
                    return Err(err(&key, format!("unknown setting in {}", path.display())));
                }
                let value = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(err(
                            &key,
                            format!("must be a string or number, not {}", other.type_str()),
                        ))
                    }
                };
                values.insert(name, value);
            }
        }
        Ok(Self {
            env,
            file: values,
            file_name: file.map(|p| p.display().to_string()),
        })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .or_else(|| self.file.get(name))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn label(&self, name: &str) -> String {
        match (&self.file_name, self.env.contains_key(name)) {
            (Some(f), false) if self.file.contains_key(name) => {
                format!(
                    "{} (in {f})",
                    name.trim_start_matches("LETHE_").to_ascii_lowercase()
                )
            }
            _ => name.to_owned(),
        }
    }

    fn parse<T>(
        &self,
        name: &str,
        default: T,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => f(v).map_err(|m| err(&self.label(name), m)),
        }
    }
}

impl Settings {
    /// Settings for the database only (CLI commands that do not serve).
    pub fn database_url(src: &Sources) -> Result<DatabaseUrl, ConfigError> {
        src.parse(
            "LETHE_DATABASE_URL",
            DatabaseUrl::parse("sqlite://lethe.db").expect("default is valid"),
            DatabaseUrl::parse,
        )
    }

    pub fn from_sources(src: &Sources) -> Result<Self, ConfigError> {
        let bind: SocketAddr = src.parse(
            "LETHE_BIND",
            "127.0.0.1:8080".parse().expect("valid"),
            |v| {
                v.parse().map_err(|_| {
                    format!("must be an address and port like 127.0.0.1:8080 (got {v:?})")
                })
            },
        )?;
        let database_url = Self::database_url(src)?;
        let public_url = src.parse(
            "LETHE_PUBLIC_URL",
            url::Url::parse(&format!("http://{bind}"))
                .map_err(|e| err("LETHE_BIND", e.to_string()))?,
            |v| {
                let u = url::Url::parse(v).map_err(|e| format!("must be an absolute URL ({e})"))?;
                if !matches!(u.scheme(), "http" | "https") {
                    return Err("must be an http or https URL".into());
                }
                Ok(u)
            },
        )?;
        let smtp_url = src.parse("LETHE_SMTP_URL", None, |v| {
            let u = url::Url::parse(v)
                .map_err(|e| format!("must be a URL like smtp://host:25 ({e})"))?;
            if !matches!(u.scheme(), "smtp" | "smtps") || u.host_str().is_none() {
                return Err("must be smtp://host[:port] or smtps://host[:port]".into());
            }
            Ok(Some(u))
        })?;
        let outbox_dir = src.parse("LETHE_OUTBOX_DIR", PathBuf::from("./outbox"), |v| {
            Ok(PathBuf::from(v))
        })?;
        let admin_token = src.parse("LETHE_ADMIN_TOKEN", None, |v| {
            if v.len() < 16 {
                return Err("must be at least 16 characters".into());
            }
            Ok(Some(Secret::from_presented(v)))
        })?;
        let pg_pool_size = src.parse("LETHE_DB_POOL_SIZE", 8u32, |v| match v.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(format!("must be a number from 1 to 1000 (got {v:?})")),
        })?;
        let callbacks_allow_private =
            src.parse("LETHE_CALLBACKS_ALLOW_PRIVATE", false, |v| {
                match v.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => Ok(true),
                    "false" | "0" | "no" => Ok(false),
                    _ => Err(format!("must be true or false (got {v:?})")),
                }
            })?;
        let sqlite_synchronous_full = src.parse("LETHE_SQLITE_SYNCHRONOUS", true, |v| {
            match v.to_ascii_lowercase().as_str() {
                "full" => Ok(true),
                "normal" => Ok(false),
                _ => Err(format!("must be full or normal (got {v:?})")),
            }
        })?;
        let http_workers = src.parse("LETHE_HTTP_WORKERS", None, |v| match v.parse::<usize>() {
            Ok(n) if (1..=256).contains(&n) => Ok(Some(n)),
            _ => Err(format!("must be a number from 1 to 256 (got {v:?})")),
        })?;
        let log_filter = src.parse("LETHE_LOG", "info".to_owned(), |v| {
            tracing_subscriber::EnvFilter::try_new(v)
                .map(|_| v.to_owned())
                .map_err(|e| format!("is not a valid log filter: {e}"))
        })?;
        let log_format = src.parse("LETHE_LOG_FORMAT", LogFormat::Text, |v| match v {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("must be text or json (got {v:?})")),
        })?;
        let mail_from = src.parse(
            "LETHE_MAIL_FROM",
            "lethe <lethe@localhost>".parse().expect("valid"),
            |v| {
                v.parse::<lettre::message::Mailbox>().map_err(|e| {
                    format!("must be an address like \"lethe <privacy@example.org>\" ({e})")
                })
            },
        )?;
        let mail_subject_prefix = src.parse(
            "LETHE_MAIL_SUBJECT_PREFIX",
            "[Erasure request]".to_owned(),
            |v| {
                if v.chars().any(|c| c.is_control()) || v.len() > 100 {
                    return Err("must be one line of at most 100 characters".into());
                }
                Ok(v.to_owned())
            },
        )?;
        let smtp_timeout = src.parse("LETHE_SMTP_TIMEOUT_SECS", Duration::from_secs(15), |v| {
            number(v, 1, 600).map(Duration::from_secs)
        })?;
        let smtp_connections = src.parse("LETHE_SMTP_CONNECTIONS", 64, |v| {
            number(v, 1, 256).map(|n| n as u32)
        })?;
        let link_ttl_days = src.parse("LETHE_APPROVAL_LINK_TTL_DAYS", 14, |v| {
            number(v, 1, 90).map(|n| n as u32)
        })?;
        let reminder_days = src.parse("LETHE_REMINDER_DAYS", vec![3, 7], |v| {
            v.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| number(p, 1, 90).map(|n| n as u32))
                .collect::<Result<Vec<u32>, String>>()
                .map(|mut days| {
                    // Reminders go out one after another, earliest first.
                    days.sort_unstable();
                    days.dedup();
                    days
                })
                .map_err(|_| {
                    format!("must be a comma-separated list of days from 1 to 90 (got {v:?})")
                })
        })?;
        let owner_reminder_days = src.parse("LETHE_OWNER_REMINDER_DAYS", 3, |v| {
            number(v, 0, 90).map(|n| n as u32)
        })?;
        let escalate_before_days = src.parse("LETHE_ESCALATE_DAYS_BEFORE_DUE", 7, |v| {
            number(v, 0, 60).map(|n| n as u32)
        })?;
        let retention = Retention {
            erased_days: src.parse("LETHE_RETENTION_ERASED_DAYS", 0, |v| {
                number(v, 0, 3650).map(|n| n as u32)
            })?,
            rejected_days: src.parse("LETHE_RETENTION_REJECTED_DAYS", 30, |v| {
                number(v, 0, 3650).map(|n| n as u32)
            })?,
            cancelled_days: src.parse("LETHE_RETENTION_CANCELLED_DAYS", 30, |v| {
                number(v, 0, 3650).map(|n| n as u32)
            })?,
        };
        let job_workers = src.parse("LETHE_JOB_WORKERS", 128, |v| {
            number(v, 0, 1024).map(|n| n as usize)
        })?;
        let job_poll = src.parse("LETHE_JOB_POLL_MS", Duration::from_millis(1000), |v| {
            number(v, 10, 60_000).map(Duration::from_millis)
        })?;
        let metrics_max_age =
            src.parse("LETHE_METRICS_MAX_AGE_SECS", Duration::from_secs(10), |v| {
                number(v, 0, 3600).map(Duration::from_secs)
            })?;
        let job_lease = src.parse("LETHE_JOB_LEASE_SECS", Duration::from_secs(300), |v| {
            number(v, 2, 86_400).map(Duration::from_secs)
        })?;
        let subject_key = load_subject_key(src, &database_url)?;
        let opendsr = load_opendsr_key(src)?;
        let support = support_policy(src)?;
        let http = http_policy(src)?;
        Ok(Self {
            http,
            opendsr,
            bind,
            database_url,
            public_url,
            smtp_url,
            outbox_dir,
            admin_token,
            subject_key,
            store: StoreOptions {
                pg_pool_size,
                sqlite_synchronous_full,
                ..StoreOptions::default()
            },
            http_workers,
            callbacks_allow_private,
            mail_from,
            mail_subject_prefix,
            smtp_timeout,
            smtp_connections,
            workflow: WorkflowPolicy {
                reminder_days,
                escalate_before_days,
                link_ttl_days,
                owner_reminder_days,
                retention,
            },
            job_workers,
            job_poll,
            job_lease,
            log_filter,
            log_format,
            metrics_max_age,
            support,
        })
    }
}

fn http_policy(src: &Sources) -> Result<crate::http::limit::HttpPolicy, ConfigError> {
    let d = crate::http::limit::HttpPolicy::default();
    let count = |name: &str, default: u32, max: u64| {
        src.parse(name, default, |v| number(v, 0, max).map(|n| n as u32))
    };
    Ok(crate::http::limit::HttpPolicy {
        public_per_minute: count(
            "LETHE_RATE_LIMIT_PER_MINUTE",
            d.public_per_minute,
            1_000_000,
        )?,
        public_burst: src.parse("LETHE_RATE_LIMIT_BURST", d.public_burst, |v| {
            number(v, 1, 1_000_000).map(|n| n as u32)
        })?,
        login_per_minute: count(
            "LETHE_RATE_LIMIT_LOGIN_PER_MINUTE",
            d.login_per_minute,
            10_000,
        )?,
        unknown_tokens_per_hour: count(
            "LETHE_RATE_LIMIT_UNKNOWN_TOKENS_PER_HOUR",
            d.unknown_tokens_per_hour,
            1_000_000,
        )?,
        trust_forwarded_for: src.parse("LETHE_TRUST_FORWARDED_FOR", false, |v| {
            match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(format!("must be true or false (got {v:?})")),
            }
        })?,
        client_request_timeout: src.parse(
            "LETHE_HTTP_CLIENT_REQUEST_TIMEOUT_MS",
            d.client_request_timeout,
            |v| number(v, 100, 600_000).map(Duration::from_millis),
        )?,
        keep_alive: src.parse("LETHE_HTTP_KEEP_ALIVE_SECS", d.keep_alive, |v| {
            number(v, 0, 3600).map(Duration::from_secs)
        })?,
        request_timeout: src.parse("LETHE_HTTP_REQUEST_TIMEOUT_SECS", d.request_timeout, |v| {
            number(v, 1, 3600).map(Duration::from_secs)
        })?,
    })
}

fn support_policy(src: &Sources) -> Result<SupportPolicy, ConfigError> {
    let session_hours = src.parse("LETHE_SUPPORT_SESSION_HOURS", 12, |v| number(v, 1, 168))?;
    let max_failures = src.parse("LETHE_SUPPORT_MAX_FAILED_LOGINS", 5, |v| {
        number(v, 1, 100).map(|n| n as u32)
    })?;
    let lock_minutes = src.parse("LETHE_SUPPORT_LOCKOUT_MINUTES", 15, |v| {
        number(v, 1, 24 * 60)
    })?;
    let digest_to = src.parse("LETHE_SUPPORT_DIGEST_TO", None, |v| {
        crate::domain::values::EmailAddress::parse("LETHE_SUPPORT_DIGEST_TO", v)
            .map(Some)
            .map_err(|e| e.message)
    })?;
    let digest_hour = src.parse("LETHE_SUPPORT_DIGEST_HOUR", 7, |v| {
        number(v, 0, 23).map(|n| n as u32)
    })?;
    Ok(SupportPolicy {
        session_ttl: chrono::Duration::hours(session_hours as i64),
        lockout: LockoutPolicy {
            max_failures,
            lock_for: chrono::Duration::minutes(lock_minutes as i64),
        },
        digest: digest_to.map(|to| DigestPolicy {
            to,
            hour: digest_hour,
        }),
    })
}

fn number(v: &str, min: u64, max: u64) -> Result<u64, String> {
    match v.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("must be a number from {min} to {max} (got {v:?})")),
    }
}

fn decode_key(v: &str) -> Result<SubjectKey, String> {
    let v = v.trim();
    let bytes = if v.len() >= 64 && v.chars().all(|c| c.is_ascii_hexdigit()) {
        hex::decode(v).map_err(|e| e.to_string())?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v))
            .map_err(|_| "must be base64 or hex".to_owned())?
    };
    SubjectKey::new(bytes)
        .ok_or_else(|| format!("must hold at least {} bytes", SubjectKey::MIN_LEN))
}

fn load_subject_key(src: &Sources, db: &DatabaseUrl) -> Result<SubjectKey, ConfigError> {
    if let Some(v) = src.get("LETHE_SECRET_KEY") {
        return decode_key(v).map_err(|m| err(&src.label("LETHE_SECRET_KEY"), m));
    }
    let path = match (src.get("LETHE_SECRET_KEY_FILE"), db.backend()) {
        (Some(p), _) => PathBuf::from(p),
        (None, Backend::Sqlite) => PathBuf::from(format!("{}.key", db.target())),
        (None, Backend::Postgres) => {
            return Err(err(
                "LETHE_SECRET_KEY",
                "is required with PostgreSQL (every replica must share it); generate one with `openssl rand -base64 32`",
            ))
        }
    };
    let label = src.label("LETHE_SECRET_KEY_FILE");
    match std::fs::read_to_string(&path) {
        Ok(text) => decode_key(&text).map_err(|m| err(&label, format!("{}: {m}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = vec![0u8; 32];
            rand::thread_rng().fill_bytes(&mut bytes);
            let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
            write_private(&path, &text)
                .map_err(|e| err(&label, format!("cannot create {}: {e}", path.display())))?;
            Ok(SubjectKey::new(bytes).expect("32 bytes"))
        }
        Err(e) => Err(err(&label, format!("cannot read {}: {e}", path.display()))),
    }
}

fn load_opendsr_key(
    src: &Sources,
) -> Result<Option<std::sync::Arc<crate::domain::opendsr::ProcessorKey>>, ConfigError> {
    let (key, cert) = (
        src.get("LETHE_OPENDSR_KEY_FILE"),
        src.get("LETHE_OPENDSR_CERT_FILE"),
    );
    let (key_path, cert_path) = match (key, cert) {
        (None, None) => return Ok(None),
        (Some(k), Some(c)) => (k, c),
        (Some(_), None) => {
            return Err(err(
                "LETHE_OPENDSR_CERT_FILE",
                "is required with LETHE_OPENDSR_KEY_FILE",
            ))
        }
        (None, Some(_)) => {
            return Err(err(
                "LETHE_OPENDSR_KEY_FILE",
                "is required with LETHE_OPENDSR_CERT_FILE",
            ))
        }
    };
    let read = |name: &str, path: &str| {
        std::fs::read_to_string(path)
            .map_err(|e| err(&src.label(name), format!("cannot read {path}: {e}")))
    };
    let key_pem = read("LETHE_OPENDSR_KEY_FILE", key_path)?;
    let cert_pem = read("LETHE_OPENDSR_CERT_FILE", cert_path)?;
    crate::domain::opendsr::certificate_public_key(&cert_pem).map_err(|m| {
        err(
            &src.label("LETHE_OPENDSR_CERT_FILE"),
            format!("{cert_path}: {m}"),
        )
    })?;
    crate::domain::opendsr::ProcessorKey::from_pem(&key_pem, &cert_pem)
        .map(|k| Some(std::sync::Arc::new(k)))
        .map_err(|m| {
            err(
                &src.label("LETHE_OPENDSR_KEY_FILE"),
                format!("{key_path}: {m}"),
            )
        })
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Grace period for in-flight requests on shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(pairs: &[(&str, &str)]) -> Sources {
        let env = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Sources::from_parts(env, None).unwrap()
    }

    fn key() -> (&'static str, &'static str) {
        (
            "LETHE_SECRET_KEY",
            "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
        )
    }

    #[test]
    fn defaults_need_nothing() {
        let s = Settings::from_sources(&sources(&[key()])).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url.backend(), Backend::Sqlite);
        assert!(s.smtp_url.is_none());
        assert_eq!(s.public_url.as_str(), "http://127.0.0.1:8080/");
    }

    #[test]
    fn bad_values_name_the_setting() {
        for (name, value) in [
            ("LETHE_BIND", "nope"),
            ("LETHE_DATABASE_URL", "mysql://x"),
            ("LETHE_SMTP_URL", "http://x"),
            ("LETHE_PUBLIC_URL", "ftp://x"),
            ("LETHE_ADMIN_TOKEN", "short"),
            ("LETHE_DB_POOL_SIZE", "0"),
            ("LETHE_LOG_FORMAT", "xml"),
            ("LETHE_SECRET_KEY", "dG9vc2hvcnQ="),
            ("LETHE_MAIL_FROM", "not an address"),
            ("LETHE_REMINDER_DAYS", "3,x"),
            ("LETHE_JOB_WORKERS", "-1"),
            ("LETHE_RETENTION_REJECTED_DAYS", "x"),
            ("LETHE_SUPPORT_SESSION_HOURS", "0"),
            ("LETHE_SUPPORT_DIGEST_TO", "support"),
            ("LETHE_SUPPORT_DIGEST_HOUR", "24"),
            ("LETHE_RATE_LIMIT_PER_MINUTE", "x"),
            ("LETHE_RATE_LIMIT_BURST", "0"),
            ("LETHE_TRUST_FORWARDED_FOR", "maybe"),
            ("LETHE_HTTP_CLIENT_REQUEST_TIMEOUT_MS", "10"),
            ("LETHE_HTTP_REQUEST_TIMEOUT_SECS", "0"),
        ] {
            let mut pairs = vec![key()];
            pairs.push((name, value));
            let e = Settings::from_sources(&sources(&pairs)).unwrap_err();
            assert_eq!(e.setting, name, "{e}");
        }
    }

    #[test]
    fn reminder_days_go_out_earliest_first() {
        let s =
            Settings::from_sources(&sources(&[key(), ("LETHE_REMINDER_DAYS", "7, 3,7")])).unwrap();
        assert_eq!(s.workflow.reminder_days, vec![3, 7]);
    }

    #[test]
    fn postgres_needs_a_shared_key() {
        let e = Settings::from_sources(&sources(&[(
            "LETHE_DATABASE_URL",
            "postgres://localhost/x",
        )]))
        .unwrap_err();
        assert_eq!(e.setting, "LETHE_SECRET_KEY");
    }

    #[test]
    fn file_values_yield_to_env_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lethe.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:9000\"\noutbox_dir = \"/tmp/x\"\n",
        )
        .unwrap();
        let env = [
            ("LETHE_OUTBOX_DIR".to_string(), "/tmp/y".to_string()),
            (key().0.into(), key().1.into()),
        ];
        let s = Settings::from_sources(
            &Sources::from_parts(env.into_iter().collect(), Some(&path)).unwrap(),
        )
        .unwrap();
        assert_eq!(s.bind.port(), 9000);
        assert_eq!(s.outbox_dir, PathBuf::from("/tmp/y"));
        std::fs::write(&path, "bnid = \"x\"\n").unwrap();
        assert!(Sources::from_parts(BTreeMap::new(), Some(&path)).is_err());
    }

    #[test]
    fn opendsr_files_come_in_pairs_and_must_match() {
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let rsa_key = |bits| {
            rsa::RsaPrivateKey::new(&mut rand::thread_rng(), bits)
                .unwrap()
                .to_pkcs8_pem(LineEnding::LF)
                .unwrap()
                .to_string()
        };
        let (a, b) = (rsa_key(2048), rsa_key(2048));
        let a_cert = rcgen::CertificateParams::new(vec!["lethe.example".to_owned()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::from_pem(&a).unwrap())
            .unwrap()
            .pem();
        let (key_a, key_b, cert_a) = (
            write("a.pem", &a),
            write("b.pem", &b),
            write("a.crt", &a_cert),
        );
        let with = |pairs: &[(&str, &str)]| {
            let mut all = vec![key()];
            all.extend_from_slice(pairs);
            Settings::from_sources(&sources(&all))
        };
        let s = with(&[
            ("LETHE_OPENDSR_KEY_FILE", &key_a),
            ("LETHE_OPENDSR_CERT_FILE", &cert_a),
        ])
        .unwrap();
        assert!(s.opendsr.is_some());
        assert!(with(&[]).unwrap().opendsr.is_none());
        let e = with(&[("LETHE_OPENDSR_KEY_FILE", &key_a)]).unwrap_err();
        assert_eq!(e.setting, "LETHE_OPENDSR_CERT_FILE");
        let e = with(&[
            ("LETHE_OPENDSR_KEY_FILE", &key_b),
            ("LETHE_OPENDSR_CERT_FILE", &cert_a),
        ])
        .unwrap_err();
        assert_eq!(e.setting, "LETHE_OPENDSR_KEY_FILE", "{e}");
        let e = with(&[
            ("LETHE_OPENDSR_KEY_FILE", &key_a),
            ("LETHE_OPENDSR_CERT_FILE", &key_a),
        ])
        .unwrap_err();
        assert_eq!(e.setting, "LETHE_OPENDSR_CERT_FILE", "{e}");
    }

    #[test]
    fn the_sqlite_key_file_is_generated_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}/l.db", dir.path().display());
        let a = Settings::from_sources(&sources(&[("LETHE_DATABASE_URL", &db)])).unwrap();
        let b = Settings::from_sources(&sources(&[("LETHE_DATABASE_URL", &db)])).unwrap();
        let t = crate::domain::TenantId::new();
        let s = crate::domain::values::SubjectId::parse("x").unwrap();
        assert_eq!(a.subject_key.hash(t, &s), b.subject_key.hash(t, &s));
    }
}
