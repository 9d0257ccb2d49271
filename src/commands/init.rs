//! `civicflow init`: start a new store for a community of one's own (issue 14). It writes the
//! community unit (the top of its chart), a first administrator holding `community_admin`
//! there, and an access token for that grant, acting as the system; then `civicflow serve
//! --data DIR` runs the store, and the administrator builds the rest over the API with the
//! token. It refuses a store whose log holds any event, before it creates or writes anything.
//!
//! The founding is two appends: the chart's part (the unit, the actor, the grant) as one
//! decision (`OrgCommand::All`: all or nothing), then the token (another aggregate's stream).
//! So that a refusal can never leave half a founding behind, every decision is first
//! rehearsed on an empty chart (the domain is pure: `decide` and `apply` with no engine), and
//! only a founding the domain accepts whole is written. A failure of the disk between the two
//! appends can still stop it midway; the message then says so, and the directory is removed
//! and `init` run again.
//!
//! [`found`] takes the parsed [`Founding`] and an engine: `init --config FILE` (units, actors,
//! roles and workflows from one file) sits beside it as another way to make a founding.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use civicflow::core::calendar::Zone;
use civicflow::core::domain::access::{Access, AccessCommand, AccessState};
use civicflow::core::domain::aggregate::{fold, Aggregate};
use civicflow::core::domain::org::{roles, Acting, ActorKind, Org, OrgCommand, OrgEvent, Tier};
use civicflow::core::domain::workflow::DefinitionRegistry;
use civicflow::core::domain::{Context, WallClockOnly};
use civicflow::core::engine::{Command, Engine, EngineError, Storage};
use civicflow::core::{ActorId, Clock, OpenError, Role, SystemClock, Timestamp, UnitId};
use civicflow::http::TokenSecret;
use serde::Serialize;

use super::backend::StoreArgs;
use super::serve::master_key;
use super::store::{self, emit};

/// The first administrator's id when `--admin` is not given.
pub const DEFAULT_ADMIN: &str = "admin";
/// The first administrator's display name when `--admin-name` is not given.
pub const DEFAULT_ADMIN_NAME: &str = "Community administrator";

/// `civicflow init`'s options.
#[derive(clap::Args)]
pub struct InitArgs {
    /// The new store (its directory is created if missing; a store whose log holds any event
    /// is refused).
    #[command(flatten)]
    pub store: StoreArgs,
    /// The community's unit id: a slug (lowercase letters, digits, - _ .; at most 64), e.g.
    /// `tonghui`.
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    pub community: Option<String>,
    /// The community's display name (`通惠社区`).
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    pub name: Option<String>,
    /// A deployment file (TOML: the community, its first administrator, roles, units,
    /// actors with their roles, workflow files; docs/deploy.md): founds the store when it is
    /// empty, and otherwise writes only what differs from it, so that applying the same file
    /// twice changes nothing.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The first administrator's actor id.
    #[arg(long, default_value = DEFAULT_ADMIN)]
    pub admin: String,
    /// The first administrator's display name.
    #[arg(long = "admin-name", default_value = DEFAULT_ADMIN_NAME)]
    pub admin_name: String,
    /// The master key file of the personal-data vault (created when missing), unless
    /// CIVICFLOW_MASTER_KEY is set. Default: DIR/master.key.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// The business calendar's time zone, an IANA name (as `civicflow serve --time-zone`):
    /// the store records it and keeps it. Default: Asia/Shanghai, recorded by nothing.
    #[arg(long = "time-zone", value_name = "NAME", value_parser = super::parse_zone)]
    pub time_zone: Option<Zone>,
}

/// What a new store starts with: its first community and that community's first
/// administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Founding {
    /// The community's unit.
    pub community: UnitId,
    /// Its display name.
    pub name: String,
    /// The first administrator.
    pub admin: ActorId,
    /// Their display name.
    pub admin_name: String,
}

impl Founding {
    /// The founding `init`'s arguments ask for; a malformed id is refused naming its flag.
    ///
    /// # Errors
    /// An id that is not one.
    pub fn from_args(args: &InitArgs) -> Result<Self, String> {
        let community = args.community.as_deref().unwrap_or_default();
        Ok(Self {
            community: UnitId::new(community).map_err(|e| format!("--community: {e}"))?,
            name: args.name.clone().unwrap_or_default(),
            admin: ActorId::new(&args.admin).map_err(|e| format!("--admin: {e}"))?,
            admin_name: args.admin_name.clone(),
        })
    }

    /// Who the administrator acts as: `community_admin` at the community.
    pub fn administrator(&self) -> Acting {
        Acting::new(
            self.admin.clone(),
            Role::new(roles::COMMUNITY_ADMIN).expect("a valid role"),
            self.community.clone(),
        )
    }

    /// The system acting for the community: who writes the founding.
    fn system(&self) -> Acting {
        Acting::system(self.community.clone())
    }

    /// The org chart's commands, in order, each with what it is in the command line's words
    /// (for a refusal's message).
    fn org_commands(&self) -> Vec<(&'static str, OrgCommand)> {
        vec![
            (
                "the community (--community, --name)",
                OrgCommand::CreateUnit {
                    id: self.community.clone(),
                    name: self.name.clone(),
                    tier: Tier::Community,
                    parent: None,
                },
            ),
            (
                "the administrator (--admin, --admin-name)",
                OrgCommand::RegisterActor {
                    id: self.admin.clone(),
                    name: self.admin_name.clone(),
                    kind: ActorKind::Person,
                },
            ),
            (
                "the administrator's grant (--admin, --community)",
                OrgCommand::GrantRole {
                    actor: self.admin.clone(),
                    role: Role::new(roles::COMMUNITY_ADMIN).expect("a valid role"),
                    unit: self.community.clone(),
                },
            ),
        ]
    }

    /// Issuing the administrator's token, whose secret is `secret`.
    fn issue(&self, secret: &TokenSecret) -> AccessCommand {
        AccessCommand::Issue {
            hash: secret.hash(),
            acting: self.administrator(),
            name: format!("issued by civicflow init for {}", self.admin),
        }
    }

    /// Decides every command of the founding on an empty store, each on the chart the ones
    /// before it leave, writing nothing: the domain is pure, so a founding rehearsed whole is
    /// one the engine accepts whole on an empty store.
    ///
    /// # Errors
    /// The first refusal, naming the part of the founding and the domain's reason.
    pub fn rehearse(&self, secret: &TokenSecret, now: Timestamp) -> Result<(), String> {
        let definitions = DefinitionRegistry::built_in();
        let system = self.system();
        let mut events: Vec<OrgEvent> = Vec::new();
        for (what, command) in self.org_commands() {
            let chart = fold::<Org>(&events, &definitions);
            let ctx = Context {
                acting: &system,
                org: &chart,
                definitions: &definitions,
                time: &WallClockOnly,
                now,
            };
            let decision = Org::decide(&(), &chart, &command, &ctx)
                .map_err(|rejection| format!("{what}: refused: {rejection}"))?;
            events.extend(decision.events);
        }
        let chart = fold::<Org>(&events, &definitions);
        let ctx = Context {
            acting: &system,
            org: &chart,
            definitions: &definitions,
            time: &WallClockOnly,
            now,
        };
        Access::decide(&(), &AccessState::default(), &self.issue(secret), &ctx)
            .map_err(|rejection| format!("the administrator's token: refused: {rejection}"))?;
        Ok(())
    }
}

/// What `init` prints: the first administrator's grant and token.
#[derive(Debug, Serialize)]
pub struct Founded {
    /// The administrator's actor id.
    pub actor: String,
    /// Their role (`community_admin`).
    pub role: String,
    /// The community's unit id.
    pub unit_id: String,
    /// The token's secret: shown this once, the log keeps its hash.
    pub token: String,
}

/// Writes `founding` into the store of `engine`, which must hold no org chart yet, as the
/// system: the community, the administrator, their grant, then their token (whose secret is
/// `secret`). Call it with a founding that [`Founding::rehearse`] accepted.
///
/// # Errors
/// A store that has an org chart already (nothing written), or a write that failed (then the
/// message says how far the founding got).
pub fn found(
    engine: &Engine,
    founding: &Founding,
    secret: &TokenSecret,
) -> Result<Founded, String> {
    let chart = engine.org();
    if chart.units().next().is_some() || chart.actors().next().is_some() {
        return Err("the store has an org chart already: init only starts a new store".to_owned());
    }
    let system = founding.system();
    // The chart's part in one append (all or nothing), then the token.
    let chart_part = founding
        .org_commands()
        .into_iter()
        .map(|(_, command)| command)
        .collect();
    let mut commands: Vec<(&str, Command)> = vec![(
        "the community, the administrator and their grant",
        Command::Org(OrgCommand::All(chart_part)),
    )];
    commands.push((
        "the administrator's token",
        Command::Access(founding.issue(secret)),
    ));
    let total = commands.len();
    for (done, (what, command)) in commands.into_iter().enumerate() {
        if let Err(e) = engine.submit(&system, command) {
            let written = if done == 0 {
                "nothing was written".to_owned()
            } else {
                format!(
                    "{done} of its {total} writes are in the log: remove the store's directory and run init again"
                )
            };
            return Err(format!("{what}: {e} (the founding stopped; {written})"));
        }
    }
    let acting = founding.administrator();
    Ok(Founded {
        actor: acting.actor.to_string(),
        role: acting.role.to_string(),
        unit_id: acting.unit.to_string(),
        token: secret.expose().to_owned(),
    })
}

/// Refuses a store whose log holds any event (read-only: nothing is created or written).
fn refuse_unless_empty(store: &StoreArgs) -> Result<(), String> {
    if store.shared().is_none() && !store.data().join("log").join("db").exists() {
        return Ok(());
    }
    let log = store.open_log()?;
    let head = log.head();
    store::close(log)?;
    match head {
        None => Ok(()),
        Some(head) => Err(format!(
            "the store at {} is not empty (its log's head is at position {}): init only starts a new store, and changed nothing; `civicflow serve {}` runs this one",
            store.describe(),
            head.position,
            store.flags()
        )),
    }
}

/// `civicflow init`: checks, rehearses, then founds, and prints one JSON object on stdout.
///
/// # Errors
/// A store that is not empty or in use, an id, name or zone that the domain refuses (each
/// before anything is written), a master key that cannot be made, a write that fails.
pub fn run(args: InitArgs) -> Result<ExitCode, String> {
    if let Some(config) = args.config.clone() {
        return run_config(&args, &config);
    }
    let founding = Founding::from_args(&args)?;
    refuse_unless_empty(&args.store)?;
    let secret = TokenSecret::generate()
        .map_err(|e| format!("no randomness from the operating system: {e}"))?;
    founding.rehearse(&secret, SystemClock.now())?;
    // Owner-only before anything is written into it (the master key, the stores).
    let engine = open_engine(&args)?;
    let founded = found(&engine, &founding, &secret);
    drop(engine);
    let founded = founded?;
    let json = serde_json::to_string(&founded).map_err(|e| e.to_string())?;
    emit(format_args!("{json}"))?;
    eprintln!(
        "civicflow: founded {} with {} as its community administrator; the token is shown only this once (the log keeps its hash). Run it with `civicflow serve {}`",
        founding.community,
        founding.admin,
        args.store.flags()
    );
    Ok(ExitCode::SUCCESS)
}

/// Opens the engine on `args.store` (its directory made owner-only first), with the master
/// key `serve` uses.
fn open_engine(args: &InitArgs) -> Result<Engine, String> {
    let data = args.store.data();
    Storage::create_data_dir(data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    let key = master_key(
        &args
            .key_file
            .clone()
            .unwrap_or_else(|| data.join("master.key")),
    )?;
    let mut config = args.store.engine_config(key, None)?;
    if let Some(zone) = args.time_zone.clone() {
        config = config.time_zone(zone);
    }
    Engine::open(config).map_err(|e| match e {
        EngineError::Open(OpenError::Locked { .. }) => store::in_use(data),
        other => format!("cannot open the store {}: {other}", args.store.describe()),
    })
}

/// What `init --config` prints: as `init`, with the token only when it founded the store, and
/// how many events the file's changes wrote.
#[derive(Debug, Serialize)]
pub struct Applied {
    /// The first administrator's actor id.
    pub actor: String,
    /// Their role (`community_admin`).
    pub role: String,
    /// The community's unit id.
    pub unit_id: String,
    /// The token's secret when this run founded the store (shown this once); null otherwise.
    pub token: Option<String>,
    /// Events written for the file's roles, units, actors, grants and workflows (0: the store
    /// held it all already).
    pub changes: usize,
}

/// `civicflow init --config FILE`: founds the store if it is empty, then writes what the
/// file declares and the store lacks (`config.rs`).
fn run_config(args: &InitArgs, path: &Path) -> Result<ExitCode, String> {
    let file = super::config::DeploymentFile::read(path)?;
    let admin = file.admin.as_ref();
    let founding = Founding {
        community: UnitId::new(&file.community.id)
            .map_err(|e| format!("{}: community.id: {e}", path.display()))?,
        name: file.community.name.clone(),
        admin: ActorId::new(admin.map_or(DEFAULT_ADMIN, |a| a.id.as_str()))
            .map_err(|e| format!("{}: admin.id: {e}", path.display()))?,
        admin_name: admin
            .map_or(DEFAULT_ADMIN_NAME, |a| a.name.as_str())
            .to_owned(),
    };
    // Every workflow file is read before anything is written.
    let workflows: Vec<(PathBuf, String)> = file
        .workflow_files(path)
        .into_iter()
        .map(|file| {
            std::fs::read_to_string(&file)
                .map(|text| (file.clone(), text))
                .map_err(|e| format!("cannot read {}: {e}", file.display()))
        })
        .collect::<Result<_, _>>()?;
    let secret = TokenSecret::generate()
        .map_err(|e| format!("no randomness from the operating system: {e}"))?;
    let engine = open_engine(args)?;
    let applied = apply_config(&engine, &file, &founding, &secret, &workflows);
    drop(engine);
    let applied = applied?;
    let json = serde_json::to_string(&applied).map_err(|e| e.to_string())?;
    emit(format_args!("{json}"))?;
    eprintln!(
        "civicflow: {} applied to {}: {} event(s) written{}",
        path.display(),
        args.store.describe(),
        applied.changes,
        if applied.token.is_some() {
            "; the store was founded, and the token is shown only this once"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn apply_config(
    engine: &Engine,
    file: &super::config::DeploymentFile,
    founding: &Founding,
    secret: &TokenSecret,
    workflows: &[(PathBuf, String)],
) -> Result<Applied, String> {
    let chart = engine.org();
    let token = match chart.first_community() {
        None if chart.units().next().is_none() => {
            founding.rehearse(secret, SystemClock.now())?;
            Some(found(engine, founding, secret)?.token)
        }
        Some(first) if *first == founding.community => None,
        _ => {
            return Err(format!(
                "this store's first community is {}, not {}: a deployment file applies to the store it founded",
                chart
                    .first_community()
                    .map_or_else(|| "none".to_owned(), ToString::to_string),
                founding.community
            ))
        }
    };
    let system = founding.system();
    let mut changes = 0;
    let commands = file.changes(&engine.org())?;
    if !commands.is_empty() {
        let outcome = engine
            .submit(&system, Command::Org(OrgCommand::All(commands)))
            .map_err(|e| format!("the file's roles, units and actors: refused: {e}"))?;
        if let civicflow::core::engine::Outcome::Org { events, .. } = outcome {
            changes += events;
        }
    }
    for (path, text) in workflows {
        let published = super::workflows::publish(engine, path, text.clone())?;
        changes += usize::from(published.changed);
    }
    let acting = founding.administrator();
    Ok(Applied {
        actor: acting.actor.to_string(),
        role: acting.role.to_string(),
        unit_id: acting.unit.to_string(),
        token,
        changes,
    })
}
