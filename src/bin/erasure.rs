//! `erasure`: the operator's command line — tenants, fixtures, local tables and queues, the
//! local SQS → worker bridge, and a user's data export.

#[path = "erasure/ops.rs"]
mod ops;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use erasure::bridge::function::{self, FunctionConfig, LocalFunction};
use erasure::bridge::{self, gateway, BridgeConfig};
use erasure::control::{generate_auth_token, ControlStore, LiftOutcome};
use erasure::domain::ids::{ApiKey, OrganizationId, UserId};
use erasure::domain::tenant::Tenant;
use erasure::infra;
use erasure::lift::{lift, LiftRequest};
use erasure::queue::TaskQueue;
use erasure::store::export::{Cursors, ExportData};
use erasure::store::fixture::Fixture;
use erasure::store::synthetic::Synthetic;
use erasure::store::DataStore;
use erasure::webhook::signing;
use erasure::webhook::url_policy::{UrlPolicy, WebhookUrl};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    version,
    about = "Operate erasure: tenants, fixtures, local infrastructure"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct TableArgs {
    /// The data store table.
    #[arg(long, env = "DATA_TABLE")]
    data_table: String,
    /// The control table (tenants, jobs).
    #[arg(long, env = "CONTROL_TABLE")]
    control_table: String,
}

#[derive(Subcommand)]
enum Command {
    /// Manage tenants (API keys and their auth tokens).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Load a fixture file (CONTRACT §4) into the data store for one API key, or with
    /// `--synthetic` a generated world of any size.
    Seed {
        #[arg(required_unless_present = "synthetic")]
        file: Option<std::path::PathBuf>,
        #[arg(long)]
        api_key: String,
        #[command(flatten)]
        tables: TableArgs,
        #[command(flatten)]
        synthetic: SyntheticArgs,
    },
    /// Create the tables and queues (local stack); prints the task queue URL last.
    #[command(subcommand)]
    Infra(InfraCommand),
    /// Where a job stands; with --watch, a progress bar until it settles.
    Status {
        job_id: String,
        #[arg(long)]
        watch: bool,
        #[arg(long, env = "CONTROL_TABLE")]
        control_table: String,
    },
    /// A tenant's jobs, newest first: status, tasks left, failed task ids, created and
    /// completed times. Listed from a secondary index, which is eventually consistent: a job
    /// accepted in the last second or so may be missing; each listed job is read fresh.
    Jobs {
        /// The tenant's API key.
        #[arg(long = "tenant")]
        api_key: String,
        /// Only jobs in this status (`partial`: what needs attention).
        #[arg(long, value_enum)]
        status: Option<ops::StatusFilter>,
        /// Only jobs created this long ago or less: a number and `s`, `m`, `h` or `d` (`7d`).
        #[arg(long, value_parser = ops::parse_age)]
        since: Option<std::time::Duration>,
        #[arg(long, env = "CONTROL_TABLE")]
        control_table: String,
    },
    /// Users' tombstones (the write path's refusal of an erased user's data).
    #[command(subcommand)]
    Tombstone(TombstoneCommand),
    /// Move the dead-letter queue's tasks back to the task queue once their cause is fixed
    /// (on AWS, SQS's "start DLQ redrive" does the same).
    Redrive {
        #[arg(long, env = "TASK_DEAD_LETTER_QUEUE_URL")]
        dead_letter_queue_url: String,
        #[arg(long, env = "TASK_QUEUE_URL")]
        queue_url: String,
    },
    /// Serve the api locally as API Gateway and Lambda do: each request an HTTP API event to the
    /// api binary, run with its timeout; every answer is the function's own.
    Gateway {
        #[arg(long, default_value_t = 9001)]
        port: u16,
        /// The api's binary (built by `cargo build --bins`).
        #[arg(long, default_value = "target/debug/api")]
        api_binary: std::path::PathBuf,
        /// The api's environment, as for `cargo lambda watch --env-file`.
        #[arg(long)]
        env_file: Option<std::path::PathBuf>,
    },
    /// Export a user's data in one organization (every page, as the API's export gives them)
    /// to standard output as one JSON document.
    Export(ExportArgs),
    /// Do locally what Lambda and its SQS event source mapping do for the worker: run it with
    /// its timeout and deadline, feed it batches, restart it when it dies.
    Bridge {
        #[arg(long, env = "TASK_QUEUE_URL")]
        queue_url: String,
        /// The worker's binary (built by `cargo build --bins`).
        #[arg(long, default_value = "target/debug/worker")]
        worker_binary: std::path::PathBuf,
        /// The worker's environment, as for `cargo lambda watch --env-file`.
        #[arg(long)]
        env_file: Option<std::path::PathBuf>,
        /// The worker's timeout; defaults to the template's.
        #[arg(long, default_value_t = infra::WORKER_TIMEOUT_SECONDS)]
        timeout_seconds: u32,
        #[arg(long, default_value_t = 10)]
        batch_size: i32,
    },
}

#[derive(Args)]
struct ExportArgs {
    #[arg(long)]
    api_key: String,
    #[arg(long)]
    organization_id: String,
    #[arg(long)]
    user_id: String,
    /// The data store table.
    #[arg(long, env = "DATA_TABLE")]
    data_table: String,
}

/// Every page of a user's export, gathered into one document; progress on standard error.
async fn export(dynamodb: aws_sdk_dynamodb::Client, args: ExportArgs) -> Result<(), Failure> {
    let tenant = Tenant::from_api_key(api_key(&args.api_key)?.as_str());
    let organization = OrganizationId::parse(args.organization_id)
        .map_err(|e| format!("--organization-id {e}"))?;
    let user = UserId::parse(args.user_id).map_err(|e| format!("--user-id {e}"))?;
    let store = DataStore::new(dynamodb, args.data_table);
    let bar = ProgressBar::new_spinner().with_style(ProgressStyle::with_template(
        "{spinner} {pos} items exported, page {msg} ({per_sec})",
    )?);
    let mut all = ExportData::default();
    let mut cursors = Cursors::start();
    for page in 1.. {
        bar.set_message(page.to_string());
        let read = store
            .export_page(&tenant, &user, &organization, &cursors)
            .await?;
        bar.inc(read.data.len() as u64);
        all.extend(read.data);
        match read.next {
            Some(next) => cursors = next,
            None => break,
        }
    }
    bar.finish_and_clear();
    let document = serde_json::json!({
        "organizationId": organization,
        "userId": user,
        "data": all,
    });
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(())
}

#[derive(Args)]
struct SyntheticArgs {
    /// Generate the data instead of reading a file: users `synthetic-<t>-<i>` in organization
    /// `synthetic-org`, next to other users' documents.
    #[arg(long, conflicts_with = "file")]
    synthetic: bool,
    /// Tenants: the API key alone when 1, else `<api-key>-0` … `<api-key>-<n-1>`.
    #[arg(long, default_value_t = 1, requires = "synthetic")]
    tenants: usize,
    /// Users per tenant.
    #[arg(long, default_value_t = 10, requires = "synthetic")]
    users: usize,
    /// Entities each user owns (half document access, half comments).
    #[arg(long, default_value_t = 1000, requires = "synthetic")]
    entities_per_user: usize,
    /// Other users' entities per tenant.
    #[arg(long, default_value_t = 10_000, requires = "synthetic")]
    background: usize,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant or rotate its token; prints a generated token once.
    Create {
        #[arg(long)]
        api_key: String,
        /// The token to use; a strong one is generated when absent.
        #[arg(long)]
        auth_token: Option<String>,
        /// Where to POST a signed event when a job settles: https to a public host
        /// (http://127.0.0.1 only with WEBHOOK_ALLOW_LOOPBACK=true, the local stack). Its
        /// signing secret is generated and printed once.
        #[arg(long)]
        webhook_url: Option<String>,
        #[arg(long, env = "CONTROL_TABLE")]
        control_table: String,
    },
    /// Revoke a tenant's API key.
    Revoke {
        #[arg(long)]
        api_key: String,
        #[arg(long, env = "CONTROL_TABLE")]
        control_table: String,
    },
}

#[derive(Subcommand)]
enum TombstoneCommand {
    /// Remove a user's tombstone (every scope) so that new data naming them is accepted
    /// again; erased data does not come back. Refused while an open job names the user.
    /// Audited in the control table (user as key hash only). docs/OPERATIONS.md says when.
    Lift {
        #[arg(long)]
        api_key: String,
        #[arg(long)]
        user_id: String,
        /// Why (kept in the audit record; never the user's id).
        #[arg(long)]
        reason: Option<String>,
        /// Who lifts it, for the audit record.
        #[arg(long, env = "USER", default_value = "unknown")]
        operator: String,
        #[command(flatten)]
        tables: TableArgs,
    },
}

#[derive(Subcommand)]
enum InfraCommand {
    Create {
        #[command(flatten)]
        tables: TableArgs,
        /// The task queue's name; its DLQ is `<name>-dlq`.
        #[arg(long)]
        queue: String,
        #[arg(long, default_value_t = infra::VISIBILITY_TIMEOUT_SECONDS)]
        visibility_timeout: u32,
    },
}

type Failure = Box<dyn std::error::Error>;

fn api_key(raw: &str) -> Result<ApiKey, Failure> {
    ApiKey::parse(raw).ok_or_else(|| "the API key must be 1-512 printable ASCII characters".into())
}

/// A function's environment from an env file (`KEY=VALUE` lines), or none.
fn read_env(file: Option<std::path::PathBuf>) -> Result<Vec<(String, String)>, Failure> {
    Ok(match file {
        Some(path) => function::read_env_file(&std::fs::read_to_string(path)?),
        None => Vec::new(),
    })
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let aws = erasure::aws::config(erasure::aws::cli_timeouts()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let now = erasure::clock::now_ms();
    match cli.command {
        Command::Tenant(TenantCommand::Create {
            api_key: key,
            auth_token,
            webhook_url,
            control_table,
        }) => {
            let key = api_key(&key)?;
            // Checked before anything is written: a refused URL leaves no tenant behind.
            let policy = UrlPolicy::from_env();
            let webhook = match webhook_url {
                Some(raw) => {
                    let url = WebhookUrl::parse(&raw, policy)?;
                    url.resolve(policy).await?;
                    Some(url)
                }
                None => None,
            };
            let generated = auth_token.is_none();
            let token = auth_token.unwrap_or_else(generate_auth_token);
            let control = ControlStore::new(dynamodb, control_table);
            control.put_tenant(&key, &token, now).await?;
            if generated {
                println!("auth token (shown once, store it now): {token}");
            } else {
                println!("tenant created");
            }
            if let Some(url) = webhook {
                let secret = signing::generate_secret();
                control.set_webhook(&key, url.as_str(), &secret).await?;
                println!("webhook: {}", url.as_str());
                println!("webhook secret (shown once, store it now): {secret}");
            }
        }
        Command::Tenant(TenantCommand::Revoke {
            api_key: key,
            control_table,
        }) => {
            let existed = ControlStore::new(dynamodb, control_table)
                .revoke_tenant(&api_key(&key)?)
                .await?;
            println!(
                "{}",
                if existed {
                    "revoked"
                } else {
                    "no such API key"
                }
            );
        }
        Command::Seed {
            synthetic: args,
            api_key: key,
            tables,
            ..
        } if args.synthetic => {
            let store = DataStore::new(dynamodb, tables.data_table);
            let bar = ProgressBar::new_spinner().with_style(ProgressStyle::with_template(
                "{spinner} {pos} entities written ({per_sec})",
            )?);
            let keys: Vec<String> = match args.tenants {
                1 => vec![key],
                n => (0..n).map(|t| format!("{key}-{t}")).collect(),
            };
            let mut total = 0;
            for (t, key) in keys.iter().enumerate() {
                let world = Synthetic {
                    organization: "synthetic-org".into(),
                    users: args.users,
                    user_prefix: format!("synthetic-{t}"),
                    entities_per_user: args.entities_per_user,
                    background: args.background,
                };
                let tenant = Tenant::from_api_key(api_key(key)?.as_str());
                total += world.seed(&store, &tenant, |n| bar.inc(n as u64)).await?;
            }
            bar.finish_and_clear();
            println!(
                "seeded {total} synthetic entities in {} tenant(s)",
                keys.len()
            );
        }
        Command::Seed {
            file,
            api_key: key,
            tables,
            ..
        } => {
            let file = file.ok_or("a fixture file or --synthetic is needed")?;
            let fixture = Fixture::parse(&std::fs::read_to_string(&file)?)?;
            let tenant = Tenant::from_api_key(api_key(&key)?.as_str());
            let bar = ProgressBar::new_spinner().with_style(ProgressStyle::with_template(
                "{spinner} {pos} entities written ({per_sec})",
            )?);
            let total = DataStore::new(dynamodb, tables.data_table)
                .load_fixture(&tenant, fixture, |n| bar.inc(n as u64))
                .await?;
            bar.finish_and_clear();
            println!("seeded {total} entities from {}", file.display());
        }
        Command::Infra(InfraCommand::Create {
            tables,
            queue,
            visibility_timeout,
        }) => {
            infra::ensure_table(&dynamodb, &tables.data_table, &infra::DATA_TABLE).await?;
            infra::ensure_table(&dynamodb, &tables.control_table, &infra::CONTROL_TABLE).await?;
            let sqs = aws_sdk_sqs::Client::new(&aws);
            let queues = infra::ensure_queues(&sqs, &queue, visibility_timeout).await?;
            println!("dead-letter queue: {}", queues.dead_letter_queue_url);
            println!("{}", queues.task_queue_url);
        }
        Command::Status {
            job_id,
            watch,
            control_table,
        } => ops::status(&ControlStore::new(dynamodb, control_table), &job_id, watch).await?,
        Command::Jobs {
            api_key: key,
            status,
            since,
            control_table,
        } => {
            let tenant = Tenant::from_api_key(api_key(&key)?.as_str());
            let control = ControlStore::new(dynamodb, control_table);
            ops::jobs(&control, &tenant, status, since, now).await?;
        }
        Command::Tombstone(TombstoneCommand::Lift {
            api_key: key,
            user_id,
            reason,
            operator,
            tables,
        }) => {
            let request = LiftRequest {
                tenant: Tenant::from_api_key(api_key(&key)?.as_str()),
                user: UserId::parse(user_id).map_err(|e| format!("--user-id {e}"))?,
                operator,
                reason,
            };
            let control = ControlStore::new(dynamodb.clone(), tables.control_table);
            let data = DataStore::new(dynamodb, tables.data_table);
            let outcome = lift(&control, &data, request, now).await?;
            println!(
                "{}",
                match outcome {
                    LiftOutcome::Absent => "no tombstone: the user's data is already accepted",
                    _ => "tombstone lifted: new data for the user is accepted (erased data stays erased)",
                }
            );
        }
        Command::Redrive {
            dead_letter_queue_url,
            queue_url,
        } => {
            let queue = TaskQueue::new(aws_sdk_sqs::Client::new(&aws), queue_url);
            ops::redrive(&queue, &dead_letter_queue_url).await?;
        }
        Command::Gateway {
            port,
            api_binary,
            env_file,
        } => {
            let api = LocalFunction::start(FunctionConfig {
                name: "api".into(),
                binary: api_binary,
                env: read_env(env_file)?,
                timeout: std::time::Duration::from_secs(infra::API_TIMEOUT_SECONDS.into()),
                memory_mb: infra::API_MEMORY_MB,
            })
            .await?;
            gateway::serve(([127, 0, 0, 1], port).into(), api).await?;
        }
        Command::Export(args) => export(dynamodb, args).await?,
        Command::Bridge {
            queue_url,
            worker_binary,
            env_file,
            timeout_seconds,
            batch_size,
        } => {
            let worker = LocalFunction::start(FunctionConfig {
                name: "worker".into(),
                binary: worker_binary,
                env: read_env(env_file)?,
                timeout: std::time::Duration::from_secs(timeout_seconds.into()),
                memory_mb: infra::WORKER_MEMORY_MB,
            })
            .await?;
            let config = BridgeConfig {
                queue_url,
                batch_size,
            };
            bridge::run(aws_sdk_sqs::Client::new(&aws), &worker, config).await;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    erasure::telemetry::init_cli();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprint!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprint!(": {cause}");
                source = cause.source();
            }
            eprintln!();
            ExitCode::FAILURE
        }
    }
}
