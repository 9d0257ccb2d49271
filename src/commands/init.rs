//! `civicflow init`: start a new store for a community of one's own (issue 14). It writes the
//! community unit (the top of its chart), a first administrator holding `community_admin`
//! there, and an access token for that grant, acting as the system; then `civicflow serve
//! --data DIR` runs the store, and the administrator builds the rest over the API with the
//! token. It refuses a store whose log holds any event, before it creates or writes anything.
//!
//! The founding is four commands to the engine (the unit, the actor, the grant: one append
//! each, as the org chart takes them; then the token). So that a refusal can never leave half
//! a founding behind, every decision is first rehearsed on an empty chart (the domain is
//! pure: `decide` and `apply` with no engine), and only a founding the domain accepts whole
//! is written. A failure of the disk between the writes can still stop it midway; the message
//! then says so, and the directory is removed and `init` run again.
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
use civicflow::core::engine::{Command, Engine, EngineConfig, EngineError, Storage};
use civicflow::core::{ActorId, Clock, OpenError, Role, SystemClock, Timestamp, UnitId};
use civicflow::http::TokenSecret;
use serde::Serialize;

use super::serve::master_key;
use super::store::{self, emit, DEFAULT_DATA};

/// The first administrator's id when `--admin` is not given.
pub const DEFAULT_ADMIN: &str = "admin";
/// The first administrator's display name when `--admin-name` is not given.
pub const DEFAULT_ADMIN_NAME: &str = "Community administrator";

/// `civicflow init`'s options.
#[derive(clap::Args)]
pub struct InitArgs {
    /// The new store's directory (created if missing; a store whose log holds any event is
    /// refused).
    #[arg(long, default_value = DEFAULT_DATA)]
    pub data: PathBuf,
    /// The community's unit id: a slug (lowercase letters, digits, - _ .; at most 64), e.g.
    /// `tonghui`.
    #[arg(long)]
    pub community: String,
    /// The community's display name (`通惠社区`).
    #[arg(long)]
    pub name: String,
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
        Ok(Self {
            community: UnitId::new(&args.community).map_err(|e| format!("--community: {e}"))?,
            name: args.name.clone(),
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
    let mut commands: Vec<(&str, Command)> = founding
        .org_commands()
        .into_iter()
        .map(|(what, command)| (what, Command::Org(command)))
        .collect();
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
fn refuse_unless_empty(data: &Path) -> Result<(), String> {
    if !data.join("log").join("db").exists() {
        return Ok(());
    }
    let log = store::open_log(data)?;
    let head = log.head();
    store::close(log)?;
    match head {
        None => Ok(()),
        Some(head) => Err(format!(
            "the store at {} is not empty (its log's head is at position {}): init only starts a new store, and changed nothing; `civicflow serve --data {}` runs this one",
            data.display(),
            head.position,
            data.display()
        )),
    }
}

/// `civicflow init`: checks, rehearses, then founds, and prints one JSON object on stdout.
///
/// # Errors
/// A store that is not empty or in use, an id, name or zone that the domain refuses (each
/// before anything is written), a master key that cannot be made, a write that fails.
pub fn run(args: InitArgs) -> Result<ExitCode, String> {
    let founding = Founding::from_args(&args)?;
    refuse_unless_empty(&args.data)?;
    let secret = TokenSecret::generate()
        .map_err(|e| format!("no randomness from the operating system: {e}"))?;
    founding.rehearse(&secret, SystemClock.now())?;
    // Owner-only before anything is written into it (the master key, the stores).
    Storage::create_data_dir(&args.data)
        .map_err(|e| format!("cannot create {}: {e}", args.data.display()))?;
    let key = master_key(
        &args
            .key_file
            .clone()
            .unwrap_or_else(|| args.data.join("master.key")),
    )?;
    let mut config = EngineConfig::new(&args.data).master_key(key);
    if let Some(zone) = args.time_zone.clone() {
        config = config.time_zone(zone);
    }
    let engine = Engine::open(config).map_err(|e| match e {
        EngineError::Open(OpenError::Locked { .. }) => store::in_use(&args.data),
        other => format!("cannot open the store in {}: {other}", args.data.display()),
    })?;
    let founded = found(&engine, &founding, &secret);
    drop(engine);
    let founded = founded?;
    let json = serde_json::to_string(&founded).map_err(|e| e.to_string())?;
    emit(format_args!("{json}"))?;
    eprintln!(
        "civicflow: founded {} with {} as its community administrator; the token is shown only this once (the log keeps its hash). Run it with `civicflow serve --data {}`",
        founding.community,
        founding.admin,
        args.data.display()
    );
    Ok(ExitCode::SUCCESS)
}
