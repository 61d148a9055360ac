//! The command line: `lethe serve` (default), `migrate`, `tenant`, `api-key`,
//! `audit verify`, `support-user`, `support-token`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Settings, Sources};
use crate::domain::tenant::{ApprovalPolicy, Locale, PrivacyContact, TenantSettings};
use crate::domain::values::{EmailAddress, Name};
use crate::domain::{ApiKeyId, TenantId};
use crate::store::{api_keys, audit, tenants, Store, StoreOptions};
use crate::{admin, startup, telemetry};

#[derive(Parser, Debug)]
#[command(name = "lethe", version, about = "GDPR erasure workflow service", long_about = None)]
pub struct Cli {
    /// TOML file with settings (same names as the LETHE_* variables, lower case, without the prefix).
    #[arg(long, global = true, env = "LETHE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage a tenant's API keys.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Check the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage support accounts (the support dashboard at /support).
    #[command(subcommand, name = "support-user")]
    SupportUser(SupportUserCommand),
    /// Manage support API tokens (the JSON API at /v1/support).
    #[command(subcommand, name = "support-token")]
    SupportToken(SupportTokenCommand),
    /// Manage a tenant's erasure targets.
    #[command(subcommand)]
    Target(TargetCommand),
    /// Check certificates of erasure.
    #[command(subcommand)]
    Receipt(ReceiptCommand),
}

#[derive(Subcommand, Debug)]
pub enum TargetCommand {
    /// Register an erasure target; its signing secret is printed once.
    Create {
        #[arg(long)]
        tenant: String,
        /// A short name, e.g. profile-service.
        #[arg(long)]
        name: String,
        /// The URL lethe POSTs the signed erasure call to (webhook targets).
        #[arg(
            long,
            required_unless_present = "owner_email",
            conflicts_with = "owner_email"
        )]
        url: Option<String>,
        /// A system with no API: email this owner a link to confirm each
        /// erasure by hand (a manual target).
        #[arg(long)]
        owner_email: Option<String>,
        /// Timeout of one call, in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: i32,
    },
    /// List a tenant's erasure targets.
    List {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReceiptCommand {
    /// Verify a receipt file's Ed25519 signature (and, when this server's
    /// secret is configured, that this lethe signed it); exits 1 if not.
    Verify {
        /// The receipt, as returned by GET /v1/erasure-requests/{id}/receipt.
        file: PathBuf,
        /// The expected public key (base64), from GET /v1/receipts/public-key.
        #[arg(long)]
        public_key: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum SupportUserCommand {
    /// Create a support user and print its id. Without --password-stdin a
    /// password is generated and printed once, on the line after the id.
    Create {
        /// The login: the user's email address.
        #[arg(long)]
        email: String,
        /// The name shown on the dashboard.
        #[arg(long)]
        name: String,
        /// Read the password (at least 12 characters) from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a support user at once: their sessions end and their tokens stop working.
    Disable {
        /// The user's id or email.
        #[arg(long)]
        user: String,
    },
    /// Set a new password (read from stdin) and lift a lock-out.
    SetPassword {
        /// The user's id or email.
        #[arg(long)]
        user: String,
    },
    /// List support users.
    List,
}

#[derive(Subcommand, Debug)]
pub enum SupportTokenCommand {
    /// Create an API token for a support user; it is printed once and only its hash is kept.
    Create {
        /// The user's id or email.
        #[arg(long)]
        user: String,
        /// A label for the token (e.g. the script that uses it).
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// List a support user's tokens (never the secrets).
    List {
        /// The user's id or email.
        #[arg(long)]
        user: String,
    },
    /// Revoke a token at once.
    Revoke {
        /// The token's id (not the secret).
        #[arg(long)]
        id: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PolicyArg {
    /// EU tenant: the privacy contact approves every erasure.
    PrivacyContact,
    /// No approval: erasure starts on submission.
    None,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LocaleArg {
    En,
    De,
    Fr,
}

#[derive(Args, Debug)]
pub struct TenantCreate {
    /// The tenant's display name.
    #[arg(long)]
    pub name: String,
    /// Who must approve erasures.
    #[arg(long, value_enum, default_value = "privacy-contact")]
    pub approval_policy: PolicyArg,
    /// The privacy contact's email (required with privacy-contact).
    #[arg(long)]
    pub contact_email: Option<String>,
    /// The privacy contact's name.
    #[arg(long)]
    pub contact_name: Option<String>,
    /// Language of emails and pages for this tenant.
    #[arg(long, value_enum, default_value = "en")]
    pub locale: LocaleArg,
    /// Email data subjects about their request (receipt, rejection, completion).
    #[arg(long)]
    pub notify_subject: bool,
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant and print its id.
    Create(TenantCreate),
    /// List tenants.
    List,
}

#[derive(Subcommand, Debug)]
pub enum ApiKeyCommand {
    /// Create an API key; the key is printed once and only its hash is kept.
    Create {
        /// The tenant's id.
        #[arg(long)]
        tenant: String,
        /// A label for the key (e.g. the calling service).
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// List a tenant's API keys (never the secrets).
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Revoke an API key at once.
    Revoke {
        #[arg(long)]
        tenant: String,
        /// The key's id (not the secret).
        #[arg(long)]
        key: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Verify every request's hash chain; exits 1 at the first broken link.
    Verify,
}

async fn open_store(sources: &Sources) -> anyhow::Result<Store> {
    let url = Settings::database_url(sources)?;
    let store = Store::open(&url, &StoreOptions::default())?;
    store
        .migrate()
        .await
        .map_err(|e| anyhow::anyhow!("LETHE_DATABASE_URL: cannot prepare the database: {e}"))?;
    Ok(store)
}

fn parse_tenant(s: &str) -> anyhow::Result<TenantId> {
    s.parse()
        .map_err(|_| anyhow::anyhow!("--tenant: {s:?} is not a tenant id (a UUID)"))
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let sources = Sources::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let settings = Settings::from_sources(&sources)?;
            telemetry::init(&settings.log_filter, settings.log_format);
            let app = startup::Application::build(&settings).await?;
            tracing::info!(
                port = app.port(),
                backend = ?settings.database_url.backend(),
                mail = if settings.smtp_url.is_some() { "smtp" } else { "outbox folder" },
                "lethe is listening on {}:{}",
                settings.bind.ip(),
                app.port()
            );
            app.run_until_stopped().await?;
            tracing::info!("lethe stopped");
        }
        Command::Migrate => {
            let url = Settings::database_url(&sources)?;
            let store = Store::open(&url, &StoreOptions::default())?;
            let applied = store.migrate().await?;
            println!("{} migration(s) applied", applied.len());
        }
        Command::Tenant(TenantCommand::Create(c)) => {
            let store = open_store(&sources).await?;
            let contact = match c.contact_email {
                Some(e) => Some(PrivacyContact {
                    name: c
                        .contact_name
                        .as_deref()
                        .map(|n| Name::parse("--contact-name", n))
                        .transpose()?,
                    email: EmailAddress::parse("--contact-email", &e)?,
                }),
                None => None,
            };
            let policy = match c.approval_policy {
                PolicyArg::PrivacyContact => ApprovalPolicy::PrivacyContact,
                PolicyArg::None => ApprovalPolicy::None,
            };
            let locale = match c.locale {
                LocaleArg::En => Locale::En,
                LocaleArg::De => Locale::De,
                LocaleArg::Fr => Locale::Fr,
            };
            let mut settings =
                TenantSettings::new(Name::parse("--name", &c.name)?, policy, contact, locale)
                    .map_err(|e| anyhow::anyhow!("--contact-email: {}", e.message))?;
            settings.notify_subject = c.notify_subject;
            let sealer =
                crate::domain::sealed::Sealer::new(&Settings::from_sources(&sources)?.subject_key);
            let (tenant, callback_secret) = admin::create_tenant(&store, &sealer, settings).await?;
            eprintln!(
                "tenant created; its callback signing secret (shown once): {}",
                callback_secret.expose()
            );
            println!("{}", tenant.id);
        }
        Command::Tenant(TenantCommand::List) => {
            let store = open_store(&sources).await?;
            let all = store
                .read(|conn| tenants::list(conn, None, i64::MAX))
                .await?;
            for t in all {
                println!(
                    "{}\t{}\t{}",
                    t.id,
                    t.settings.policy.as_str(),
                    t.settings.name.as_str()
                );
            }
        }
        Command::ApiKey(ApiKeyCommand::Create { tenant, name }) => {
            let tenant = parse_tenant(&tenant)?;
            let store = open_store(&sources).await?;
            let (key, secret) = admin::create_api_key(&store, tenant, name)
                .await
                .map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
            eprintln!("API key {} created; it is shown only this once:", key.id);
            println!("{}", secret.expose());
        }
        Command::ApiKey(ApiKeyCommand::List { tenant }) => {
            let tenant = parse_tenant(&tenant)?;
            let store = open_store(&sources).await?;
            for k in store.read(move |conn| api_keys::list(conn, tenant)).await? {
                let status = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!("{}\t{}\t{}…\t{}", k.id, status, k.prefix, k.name);
            }
        }
        Command::ApiKey(ApiKeyCommand::Revoke { tenant, key }) => {
            let tenant = parse_tenant(&tenant)?;
            let key: ApiKeyId = key
                .parse()
                .map_err(|_| anyhow::anyhow!("--key: not a key id"))?;
            let store = open_store(&sources).await?;
            store
                .write(move |conn| {
                    api_keys::revoke(conn, tenant, key, crate::domain::deadline::now())
                })
                .await?;
            println!("revoked {key}");
        }
        Command::Target(TargetCommand::Create {
            tenant,
            name,
            url,
            owner_email,
            timeout_ms,
        }) => {
            let tenant = parse_tenant(&tenant)?;
            let destination = match (url, owner_email) {
                (Some(url), _) => crate::domain::target::Destination::Webhook(
                    crate::domain::values::CallbackUrl::parse("--url", &url)?,
                ),
                (None, Some(owner)) => crate::domain::target::Destination::Manual(
                    crate::domain::values::EmailAddress::parse("--owner-email", &owner)?,
                ),
                (None, None) => anyhow::bail!("give --url or --owner-email"),
            };
            let manual = destination.kind() == crate::domain::target::TargetKind::Manual;
            let settings = Settings::from_sources(&sources)?;
            let store = open_store(&sources).await?;
            let sealer = crate::domain::sealed::Sealer::new(&settings.subject_key);
            let (row, secret) =
                admin::create_target(&store, &sealer, tenant, name, destination, timeout_ms)
                    .await?;
            if manual {
                // Nothing is signed for a manual target: print its id.
                eprintln!("manual target created; its owner is emailed a link for each erasure");
                println!("{}", row.id);
            } else {
                eprintln!(
                    "target {} created; its signing secret is shown only this once:",
                    row.id
                );
                println!("{}", secret.expose());
            }
        }
        Command::Target(TargetCommand::List { tenant }) => {
            let tenant = parse_tenant(&tenant)?;
            let store = open_store(&sources).await?;
            for t in store
                .read(move |conn| crate::store::targets::list(conn, tenant))
                .await?
            {
                let status = if t.enabled { "enabled" } else { "disabled" };
                let to = t.url().or(t.owner_email.as_deref()).unwrap_or("");
                println!("{}\t{}\t{}\t{}\t{}", t.id, status, t.kind, t.name, to);
            }
        }
        Command::Receipt(ReceiptCommand::Verify { file, public_key }) => {
            let bytes =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            match crate::domain::receipt::verify(&bytes, public_key.as_deref()) {
                Ok(body) => {
                    println!(
                        "receipt valid: request {} of tenant {}, erased {}",
                        body.request_id, body.tenant_id, body.erased_at
                    );
                    if public_key.is_none() {
                        println!("(signature checked against the key in the file; pass --public-key with the key from /v1/receipts/public-key to check who signed it)");
                    }
                }
                Err(e) => {
                    println!("receipt INVALID: {e}");
                    return Ok(ExitCode::from(1));
                }
            }
        }
        Command::SupportUser(c) => return support_user(&sources, c).await,
        Command::SupportToken(c) => return support_token(&sources, c).await,
        Command::Audit(AuditCommand::Verify) => {
            let store = open_store(&sources).await?;
            let report = store.read(|conn| audit::verify(conn, 500)).await?;
            match report.broken {
                None => println!(
                    "audit trail intact: {} requests, {} events verified",
                    report.requests, report.events
                ),
                Some(b) => {
                    println!(
                        "audit trail BROKEN at request {} event {}: {}",
                        b.request_id, b.seq, b.problem
                    );
                    return Ok(ExitCode::from(1));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_password() -> anyhow::Result<crate::domain::support::Password> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| anyhow::anyhow!("cannot read the password from stdin: {e}"))?;
    let line = line.trim_end_matches(['\n', '\r']);
    Ok(crate::domain::support::Password::parse(line)?)
}

async fn support_user(sources: &Sources, c: SupportUserCommand) -> anyhow::Result<ExitCode> {
    use crate::domain::support::Password;
    let store = open_store(sources).await?;
    match c {
        SupportUserCommand::Create {
            email,
            name,
            password_stdin,
        } => {
            let email = EmailAddress::parse("--email", &email)?;
            let name = Name::parse("--name", &name)?;
            let (password, generated) = if password_stdin {
                (read_password()?, false)
            } else {
                let secret = crate::domain::secret::Secret::generate("");
                (Password::parse(&secret.expose()[..24])?, true)
            };
            let shown = generated.then(|| password.expose().to_owned());
            let user = crate::support::create_user(&store, &email, &name, password)
                .await
                .map_err(|e| anyhow::anyhow!("--email: {e}"))?;
            eprintln!("support user {} created for {}", user.id, user.email);
            println!("{}", user.id);
            if let Some(p) = shown {
                eprintln!("its password is shown only this once:");
                println!("{p}");
            }
        }
        SupportUserCommand::Disable { user } => {
            let (u, changed) = crate::support::disable_user(&store, &user)
                .await
                .map_err(|e| anyhow::anyhow!("--user: {e}"))?;
            if changed {
                println!(
                    "disabled {} ({}): sessions ended, tokens revoked",
                    u.id, u.email
                );
            } else {
                println!("{} ({}) was already disabled", u.id, u.email);
            }
        }
        SupportUserCommand::SetPassword { user } => {
            let password = read_password()?;
            let u = crate::support::set_password(&store, &user, password)
                .await
                .map_err(|e| anyhow::anyhow!("--user: {e}"))?;
            println!("password set for {} ({})", u.id, u.email);
        }
        SupportUserCommand::List => {
            let users = store
                .read(|conn| crate::store::support::accounts::list(conn, 10_000))
                .await?;
            for u in users {
                let status = if u.disabled_at.is_some() {
                    "disabled"
                } else {
                    "active"
                };
                println!("{}\t{status}\t{}\t{}", u.id, u.email, u.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn support_token(sources: &Sources, c: SupportTokenCommand) -> anyhow::Result<ExitCode> {
    use crate::store::support::accounts;
    let store = open_store(sources).await?;
    match c {
        SupportTokenCommand::Create { user, name } => {
            let (u, id, secret) = crate::support::create_token(&store, &user, &name)
                .await
                .map_err(|e| anyhow::anyhow!("--user: {e}"))?;
            eprintln!(
                "support token {id} created for {}; it is shown only this once:",
                u.email
            );
            println!("{}", secret.expose());
        }
        SupportTokenCommand::List { user } => {
            let tokens = store
                .read(move |conn| {
                    let u = accounts::find(conn, &user)?;
                    accounts::list_tokens(conn, u.id)
                })
                .await
                .map_err(|e| anyhow::anyhow!("--user: {e}"))?;
            for t in tokens {
                let status = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!("{}\t{status}\t{}…\t{}", t.id, t.prefix, t.name);
            }
        }
        SupportTokenCommand::Revoke { id } => {
            let key = id.clone();
            store
                .write(move |conn| {
                    accounts::revoke_token(conn, &key, crate::domain::deadline::now())
                })
                .await
                .map_err(|e| anyhow::anyhow!("--id: {e}"))?;
            println!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
