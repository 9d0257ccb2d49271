//! Community statistics (`community_stats`): the figures the seed reports, per year (in the
//! calendar's time zone, Asia/Shanghai by default) and overall, for all communities together
//! and for each community.
//!
//! # Figures
//!
//! Years are calendar years in the zone given to [`CommunityStats::new`], the engine's
//! calendar's ([`civicflow_core::calendar::Zone::to_local`]). A
//! case belongs to the community above the unit it was filed at, as the org chart stood when
//! it was opened (a case filed at a unit under no community counts only in the figures of all
//! communities).
//!
//! - **activities**: `record_activity` actions of `district-affairs` cases (any version), in
//!   the year of their `held_on` date (of the action itself when that is missing or not a
//!   date the calendar can place);
//!   **participants**, **beneficiaries** (受益人次, beneficiary visits) and
//!   **activity volunteers** are the sums of those actions' `participants`, `beneficiaries`
//!   and `volunteers` fields (a missing or negative number counts 0).
//! - **opened**: cases opened (`CaseOpened`), in the year they were opened, by workflow.
//! - **closed** and **outcomes**: cases that reached a terminal stage of their pinned
//!   definition for the first time, in the year of that first close, by workflow and by the
//!   terminal stage reached (`closed`, `merged`, `withdrawn`, `reviewed`, `delivered`,
//!   `declined`, …). A case counts once: a reopened case that closes again is not counted
//!   again (its reopening is counted in **reopened**, in the year the log recorded it:
//!   `CaseReopened` carries no time of its own).
//! - **time to close**: from `CaseOpened` to the first close, wall-clock, in whole seconds;
//!   per workflow, over the cases closed in the period. The **mean** is the sum over the count,
//!   rounded to the nearest second. The **90th percentile** is exact, by nearest rank: the
//!   smallest duration `d` such that at least 90 % of the durations are `d` or less, i.e. the
//!   `⌈0.9 n⌉`-th smallest of the `n` durations. The model keeps, per workflow, scope and
//!   period, a histogram of the durations in the figures row ([`bucket_of`]: exact below
//!   16 s, then 16 buckets per power of two) and, per bucket, a row with that bucket's
//!   durations, sorted. The percentile walks the histogram to the bucket that holds rank
//!   `⌈0.9 n⌉` and reads that one row. A close changes a few rows that the batch already
//!   holds in memory, instead of writing a key per case.
//! - **org**: the org chart now (not per year): distinct actors holding the role
//!   `party_member`, `volunteer`, `grid_worker`, `liaison_officer` at some unit (of the
//!   community); **monitoring points**: distinct units where a liaison officer
//!   (居务联络员) holds the role; **units** by tier. For one community these count the units in
//!   its subtree as the chart stands now, the community itself included.
//!
//! Terminal stages come from a [`DefinitionRegistry`] given to [`CommunityStats::new`] (the
//! built-in workflows by default); give it the same definitions as the engine.
//!
//! # Tables and keys
//!
//! | table | key | row |
//! |---|---|---|
//! | `u` | unit id | [`UnitRow`]: tier and parent |
//! | `h` | role (1 byte) · actor · 0 · unit | `()`: a counted role held |
//! | `c` | case id (16 bytes) | [`CaseRow`]: workflow, community, opening time, closed once |
//! | `s` | scope · year | [`Figures`] |
//! | `d` | scope · year · workflow · 0 · bucket (u16 BE) | the bucket's times to close, sorted |
//!
//! A scope is `0` for all communities or `1 · community · 0`; a year is 4 bytes,
//! order-preserving, with `ff ff ff ff` for all years. Case events other than `CaseOpened`,
//! `ActionTaken`, `CaseReopened` and `CaseMigrated` and org events other than units and
//! role changes are skipped on their type, before decoding; an `ActionTaken` reads its case's
//! row only when it records an activity or enters a stage that is terminal somewhere.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use civicflow_core::calendar::Zone;
use civicflow_core::domain::case::CaseEvent;
use civicflow_core::domain::fields::{FieldValue, Fields};
use civicflow_core::domain::org::{roles, OrgEvent, Tier};
use civicflow_core::domain::workflow::{
    DefinitionRef, DefinitionRegistry, Definitions, WorkflowId,
};
use civicflow_core::{Timestamp, UnitId, Version};
use serde::{Deserialize, Serialize};

use crate::{Decoded, Event, Projection, ProjectionError, Table, Tx, View};

/// The projection's name.
pub const NAME: &str = "community_stats";

/// The workflow whose activities are counted.
pub const ACTIVITY_WORKFLOW: &str = "district-affairs";
/// The action that records an activity.
pub const ACTIVITY_ACTION: &str = "record_activity";

/// The roles counted, with their one-byte codes.
const COUNTED_ROLES: [(&str, u8); 4] = [
    (roles::PARTY_MEMBER, 0),
    (roles::VOLUNTEER, 1),
    (roles::GRID_WORKER, 2),
    (roles::LIAISON_OFFICER, 3),
];
const LIAISON: u8 = 3;

/// A unit, as far as the statistics need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRow {
    /// Its tier.
    pub tier: Tier,
    /// Its parent.
    pub parent: Option<UnitId>,
}

/// A case, as far as the statistics need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRow {
    /// Its workflow and version.
    pub workflow: DefinitionRef,
    /// The community it counts in.
    pub community: Option<UnitId>,
    /// When it was opened.
    pub opened_at: Timestamp,
    /// Whether it has closed (once is enough).
    pub closed: bool,
}

/// The figures of one workflow in one scope and period.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkflowRow {
    /// Cases opened.
    pub opened: u64,
    /// Cases closed for the first time.
    pub closed: u64,
    /// Reopenings.
    pub reopened: u64,
    /// First closes by terminal stage.
    pub outcomes: BTreeMap<String, u64>,
    /// The sum of the times to close, in seconds.
    pub close_seconds: u64,
    /// How many times to close fell in each bucket (see [`bucket_of`]).
    pub histogram: BTreeMap<u16, u64>,
}

/// The figures of one scope (all communities or one) and period (a year or all years).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Figures {
    /// Activities held.
    pub activities: u64,
    /// Their participants.
    pub participants: u64,
    /// Their beneficiary visits.
    pub beneficiaries: u64,
    /// Their volunteers.
    pub volunteers: u64,
    /// Cases, by workflow id.
    pub workflows: BTreeMap<String, WorkflowRow>,
}

impl Figures {
    fn workflow(&mut self, id: &WorkflowId) -> &mut WorkflowRow {
        if !self.workflows.contains_key(id.as_str()) {
            self.workflows
                .insert(id.as_str().to_owned(), WorkflowRow::default());
        }
        self.workflows.get_mut(id.as_str()).expect("inserted above")
    }
}

const UNITS: Table<UnitRow> = Table::new("u");
const HOLDERS: Table<()> = Table::new("h");
const CASES: Table<CaseRow> = Table::new("c");
const FIGURES: Table<Figures> = Table::new("s");
const DURATIONS: Table<Vec<u64>> = Table::new("d");

/// The bucket of a time to close, in seconds: exact below 16, then 16 buckets per power of
/// two (each 1/16 of its octave wide). Buckets are in the order of the durations they hold.
pub fn bucket_of(seconds: u64) -> u16 {
    if seconds < 16 {
        return u16::try_from(seconds).unwrap_or(0);
    }
    let octave = 63 - seconds.leading_zeros(); // 4..=63
    let sub = (seconds >> (octave - 4)) & 15;
    u16::try_from(16 + (octave - 4) * 16).unwrap_or(u16::MAX) + u16::try_from(sub).unwrap_or(0)
}

const ALL_YEARS: [u8; 4] = [0xff; 4];

fn year_key(year: i32) -> [u8; 4] {
    (year.cast_unsigned() ^ (1 << 31)).to_be_bytes()
}

fn scope_key(community: Option<&UnitId>) -> Vec<u8> {
    match community {
        None => vec![0],
        Some(unit) => {
            let mut key = Vec::with_capacity(unit.as_str().len() + 2);
            key.push(1);
            key.extend_from_slice(unit.as_str().as_bytes());
            key.push(0);
            key
        }
    }
}

fn local_year(zone: &Zone, at: Timestamp) -> Result<i32, ProjectionError> {
    zone.to_local(at)
        .map(|(date, _)| date.year())
        .map_err(|e| ProjectionError::event(format!("a time outside the calendar: {e}")))
}

/// The figure rows an event in `year` of a case of `community` adds to: all communities and
/// the community, for the year and for all years.
fn figure_keys(community: Option<&UnitId>, year: i32) -> Vec<Vec<u8>> {
    let mut scopes = vec![scope_key(None)];
    if community.is_some() {
        scopes.push(scope_key(community));
    }
    let mut keys = Vec::with_capacity(scopes.len() * 2);
    for scope in scopes {
        for period in [year_key(year), ALL_YEARS] {
            let mut key = scope.clone();
            key.extend_from_slice(&period);
            keys.push(key);
        }
    }
    keys
}

fn count(fields: &Fields, name: &str) -> u64 {
    match fields.get(name) {
        Some(FieldValue::Integer(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    }
}

fn terminal_stages_of(registry: &DefinitionRegistry) -> Arc<HashSet<String>> {
    Arc::new(
        registry
            .all()
            .flat_map(|d| d.stages.iter().filter(|s| s.terminal).map(|s| s.id.clone()))
            .collect(),
    )
}

/// The community statistics projection.
#[derive(Debug)]
pub struct CommunityStats {
    definitions: Definitions,
    /// Every stage that is terminal in some definition: an action to any other stage cannot
    /// close a case, so it is skipped without reading the case. Worked out again when a
    /// publication replaced the registry it was worked out from.
    terminal_stages: Mutex<(Arc<DefinitionRegistry>, Arc<HashSet<String>>)>,
    /// Where years begin and end: the engine's calendar's zone.
    zone: Zone,
}

impl Default for CommunityStats {
    /// The built-in workflows, years in Asia/Shanghai.
    fn default() -> Self {
        Self::new(Arc::new(DefinitionRegistry::built_in()), Zone::shanghai())
    }
}

impl CommunityStats {
    /// The projection, knowing terminal stages from `definitions` and counting years in
    /// `zone` (give it the engine's definitions and its calendar's zone).
    pub fn new(definitions: impl Into<Definitions>, zone: Zone) -> Self {
        let definitions = definitions.into();
        let registry = definitions.current();
        let terminal = terminal_stages_of(&registry);
        Self {
            definitions,
            terminal_stages: Mutex::new((registry, terminal)),
            zone,
        }
    }

    /// The terminal stages of the definitions in force.
    fn terminal_stages(&self) -> Arc<HashSet<String>> {
        let registry = self.definitions.current();
        let mut cached = self
            .terminal_stages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !Arc::ptr_eq(&cached.0, &registry) {
            let terminal = terminal_stages_of(&registry);
            *cached = (registry, terminal);
        }
        cached.1.clone()
    }

    fn apply_org(&self, event: &Event, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        if !matches!(
            event.event_type.as_str(),
            "UnitCreated" | "UnitMoved" | "RoleGranted" | "RoleRevoked"
        ) {
            return Ok(());
        }
        let Decoded::Org(org) = event.decoded()? else {
            return Ok(());
        };
        match org {
            OrgEvent::UnitCreated(e) => tx.put(
                &UNITS,
                e.unit.as_str().as_bytes(),
                UnitRow {
                    tier: e.tier,
                    parent: e.parent.clone(),
                },
            )?,
            OrgEvent::UnitMoved(e) => {
                if let Some(unit) = tx.entry(&UNITS, e.unit.as_str().as_bytes())?.get_mut() {
                    unit.parent = Some(e.to.clone());
                }
            }
            OrgEvent::RoleGranted(e) => {
                if let Some(key) = holder_key(e.role.as_str(), e.actor.as_str(), &e.unit) {
                    tx.put(&HOLDERS, &key, ())?;
                }
            }
            OrgEvent::RoleRevoked(e) => {
                if let Some(key) = holder_key(e.role.as_str(), e.actor.as_str(), &e.unit) {
                    tx.delete(&HOLDERS, &key);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn apply_case(&self, event: &Event, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        if !matches!(
            event.event_type.as_str(),
            "CaseOpened" | "ActionTaken" | "CaseReopened" | "CaseMigrated"
        ) {
            return Ok(());
        }
        let Decoded::Case(case, case_event) = event.decoded()? else {
            return Ok(());
        };
        match case_event {
            CaseEvent::Opened(e) => {
                // As the core's fold: only the first event of a case's stream opens it.
                if event.version != Version::FIRST {
                    return Ok(());
                }
                let community = community_of(tx, &e.unit)?;
                let year = local_year(&self.zone, e.at)?;
                for key in figure_keys(community.as_ref(), year) {
                    tx.entry(&FIGURES, &key)?
                        .or_insert_with(Figures::default)
                        .workflow(&e.workflow.id)
                        .opened += 1;
                }
                tx.put(
                    &CASES,
                    case.as_bytes(),
                    CaseRow {
                        workflow: e.workflow.clone(),
                        community,
                        opened_at: e.at,
                        closed: false,
                    },
                )?;
            }
            CaseEvent::ActionTaken(e) => {
                let activity = e.action == ACTIVITY_ACTION;
                let may_close = self.terminal_stages().contains(&e.to);
                if !activity && !may_close {
                    return Ok(());
                }
                let Some(row) = tx.get(&CASES, case.as_bytes())?.cloned() else {
                    return Ok(());
                };
                if activity && row.workflow.id.as_str() == ACTIVITY_WORKFLOW {
                    // `held_on` is what people typed: a date the calendar cannot place falls
                    // back to the action's own time rather than stopping the projection.
                    let year = match e.fields.get("held_on") {
                        Some(FieldValue::Datetime(at)) => {
                            self.zone.to_local(*at).ok().map(|(d, _)| d.year())
                        }
                        _ => None,
                    };
                    let year = match year {
                        Some(year) => year,
                        None => local_year(&self.zone, e.at)?,
                    };
                    let (participants, beneficiaries, volunteers) = (
                        count(&e.fields, "participants"),
                        count(&e.fields, "beneficiaries"),
                        count(&e.fields, "volunteers"),
                    );
                    for key in figure_keys(row.community.as_ref(), year) {
                        let figures = tx.entry(&FIGURES, &key)?.or_insert_with(Figures::default);
                        figures.activities += 1;
                        figures.participants = figures.participants.saturating_add(participants);
                        figures.beneficiaries = figures.beneficiaries.saturating_add(beneficiaries);
                        figures.volunteers = figures.volunteers.saturating_add(volunteers);
                    }
                }
                let closes = may_close
                    && !row.closed
                    && self
                        .definitions
                        .current()
                        .get(&row.workflow)
                        .is_some_and(|d| d.is_terminal(&e.to));
                if closes {
                    let micros = e.at.as_unix_micros() - row.opened_at.as_unix_micros();
                    let seconds = u64::try_from(micros / 1_000_000).unwrap_or(0);
                    let year = local_year(&self.zone, e.at)?;
                    for key in figure_keys(row.community.as_ref(), year) {
                        let workflow = tx
                            .entry(&FIGURES, &key)?
                            .or_insert_with(Figures::default)
                            .workflow(&row.workflow.id);
                        workflow.closed += 1;
                        workflow.close_seconds = workflow.close_seconds.saturating_add(seconds);
                        match workflow.outcomes.get_mut(&e.to) {
                            Some(n) => *n += 1,
                            None => {
                                workflow.outcomes.insert(e.to.clone(), 1);
                            }
                        }
                        let bucket = bucket_of(seconds);
                        *workflow.histogram.entry(bucket).or_default() += 1;
                        let durations = tx
                            .entry(&DURATIONS, &duration_key(&key, &row.workflow.id, bucket))?
                            .or_insert_with(Vec::new);
                        let at = durations.partition_point(|d| *d <= seconds);
                        durations.insert(at, seconds);
                    }
                    if let Some(row) = tx.entry(&CASES, case.as_bytes())?.get_mut() {
                        row.closed = true;
                    }
                }
            }
            CaseEvent::Reopened(_) => {
                let Some(row) = tx.get(&CASES, case.as_bytes())?.cloned() else {
                    return Ok(());
                };
                let year = local_year(&self.zone, event.recorded_at)?;
                for key in figure_keys(row.community.as_ref(), year) {
                    tx.entry(&FIGURES, &key)?
                        .or_insert_with(Figures::default)
                        .workflow(&row.workflow.id)
                        .reopened += 1;
                }
            }
            CaseEvent::Migrated(e) => {
                if let Some(row) = tx.entry(&CASES, case.as_bytes())?.get_mut() {
                    row.workflow = e.to.clone();
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn holder_key(role: &str, actor: &str, unit: &UnitId) -> Option<Vec<u8>> {
    let code = COUNTED_ROLES.iter().find(|(r, _)| *r == role)?.1;
    let mut key = Vec::with_capacity(2 + actor.len() + unit.as_str().len());
    key.push(code);
    key.extend_from_slice(actor.as_bytes());
    key.push(0);
    key.extend_from_slice(unit.as_str().as_bytes());
    Some(key)
}

fn duration_key(figure_key: &[u8], workflow: &WorkflowId, bucket: u16) -> Vec<u8> {
    let mut key = Vec::with_capacity(figure_key.len() + workflow.as_str().len() + 3);
    key.extend_from_slice(figure_key);
    key.extend_from_slice(workflow.as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(&bucket.to_be_bytes());
    key
}

/// The community above `unit` (itself if it is one), as the chart stands in the transaction.
fn community_of(tx: &mut Tx<'_>, unit: &UnitId) -> Result<Option<UnitId>, ProjectionError> {
    let mut current = unit.clone();
    // The chain is four tiers deep; the bound only guards against a corrupted chart.
    for _ in 0..16 {
        let Some(row) = tx.get(&UNITS, current.as_str().as_bytes())? else {
            return Ok(None);
        };
        if row.tier == Tier::Community {
            return Ok(Some(current));
        }
        match &row.parent {
            Some(parent) => current = parent.clone(),
            None => return Ok(None),
        }
    }
    Ok(None)
}

impl Projection for CommunityStats {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, event: &Event, tx: &mut Tx<'_>) -> Result<(), ProjectionError> {
        let stream = event.stream.as_str();
        if stream.starts_with("case-") {
            self.apply_case(event, tx)
        } else if stream == "org-chart" {
            self.apply_org(event, tx)
        } else {
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Queries

/// One workflow's cases in a scope and period.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct WorkflowStats {
    /// Cases opened.
    pub opened: u64,
    /// Cases closed (first closes).
    pub closed: u64,
    /// Reopenings.
    pub reopened: u64,
    /// First closes by terminal stage.
    pub outcomes: BTreeMap<String, u64>,
    /// The mean time to close, in seconds (`None`: nothing closed).
    pub mean_close_seconds: Option<u64>,
    /// The 90th-percentile time to close, in seconds, by nearest rank (`None`: nothing
    /// closed).
    pub p90_close_seconds: Option<u64>,
}

/// The org chart's figures, as it stands now.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct OrgFigures {
    /// Distinct actors holding `party_member` (党员).
    pub party_members: u64,
    /// Distinct actors holding `volunteer` (志愿者).
    pub volunteers: u64,
    /// Distinct actors holding `grid_worker` (网格员).
    pub grid_workers: u64,
    /// Distinct actors holding `liaison_officer` (居务联络员).
    pub liaison_officers: u64,
    /// Distinct units with a liaison officer: the monitoring points.
    pub monitoring_points: u64,
    /// Units by tier.
    pub units: BTreeMap<Tier, u64>,
}

/// The statistics of a scope and period.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Stats {
    /// The community (`None`: all communities).
    pub community: Option<UnitId>,
    /// The year (`None`: all years).
    pub year: Option<i32>,
    /// Activities held.
    pub activities: u64,
    /// Their participants.
    pub participants: u64,
    /// Their beneficiary visits (受益人次).
    pub beneficiaries: u64,
    /// Their volunteers (the sum over activities, not distinct people).
    pub activity_volunteers: u64,
    /// Cases opened, all workflows.
    pub opened: u64,
    /// Cases closed (first closes), all workflows.
    pub closed: u64,
    /// Reopenings, all workflows.
    pub reopened: u64,
    /// First closes by terminal stage, all workflows.
    pub outcomes: BTreeMap<String, u64>,
    /// By workflow id.
    pub workflows: BTreeMap<String, WorkflowStats>,
    /// The org chart now.
    pub org: OrgFigures,
}

/// The statistics of all communities, for `year` (Asia/Shanghai) or all years.
///
/// # Errors
/// [`ProjectionError`] when a row does not decode or storage fails.
pub fn stats(view: &View<'_>, year: Option<i32>) -> Result<Stats, ProjectionError> {
    figures_of(view, None, year)
}

/// The statistics of one community, for `year` (Asia/Shanghai) or all years.
///
/// # Errors
/// [`ProjectionError`] when a row does not decode or storage fails.
pub fn community_stats(
    view: &View<'_>,
    community: &UnitId,
    year: Option<i32>,
) -> Result<Stats, ProjectionError> {
    figures_of(view, Some(community), year)
}

/// The years with any figure, oldest first, for all communities (`None`) or one.
///
/// # Errors
/// [`ProjectionError`] when a row does not decode or storage fails.
pub fn years(view: &View<'_>, community: Option<&UnitId>) -> Result<Vec<i32>, ProjectionError> {
    let scope = scope_key(community);
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        // Only keys are needed, but rows are small and there is one per year.
        let rows = view.scan(&FIGURES, &scope, after.as_deref(), 64)?;
        let full = rows.len() == 64;
        after = rows.last().map(|(key, _)| key.clone());
        for (key, _) in rows {
            if let Ok(raw) = <[u8; 4]>::try_from(&key[scope.len()..]) {
                if raw != ALL_YEARS {
                    out.push((u32::from_be_bytes(raw) ^ (1 << 31)).cast_signed());
                }
            }
        }
        if !full {
            return Ok(out);
        }
    }
}

fn figures_of(
    view: &View<'_>,
    community: Option<&UnitId>,
    year: Option<i32>,
) -> Result<Stats, ProjectionError> {
    let mut key = scope_key(community);
    key.extend_from_slice(&year.map_or(ALL_YEARS, year_key));
    let figures = view.get(&FIGURES, &key)?.unwrap_or_default();
    let mut stats = Stats {
        community: community.cloned(),
        year,
        activities: figures.activities,
        participants: figures.participants,
        beneficiaries: figures.beneficiaries,
        activity_volunteers: figures.volunteers,
        org: org_figures(view, community)?,
        ..Stats::default()
    };
    for (id, row) in figures.workflows {
        stats.opened += row.opened;
        stats.closed += row.closed;
        stats.reopened += row.reopened;
        for (outcome, n) in &row.outcomes {
            *stats.outcomes.entry(outcome.clone()).or_default() += n;
        }
        let p90 = match WorkflowId::new(id.clone()) {
            Ok(workflow) => p90(view, &key, &workflow, &row)?,
            Err(_) => None,
        };
        let mean = (row.closed > 0).then(|| (row.close_seconds + row.closed / 2) / row.closed);
        stats.workflows.insert(
            id,
            WorkflowStats {
                opened: row.opened,
                closed: row.closed,
                reopened: row.reopened,
                outcomes: row.outcomes,
                mean_close_seconds: mean,
                p90_close_seconds: p90,
            },
        );
    }
    Ok(stats)
}

/// The nearest-rank 90th percentile of a workflow's durations: the `⌈0.9 n⌉`-th smallest.
/// The histogram says which bucket holds that rank; the bucket's row holds its durations,
/// sorted.
fn p90(
    view: &View<'_>,
    figure_key: &[u8],
    workflow: &WorkflowId,
    row: &WorkflowRow,
) -> Result<Option<u64>, ProjectionError> {
    let n: u64 = row.histogram.values().sum();
    if n == 0 {
        return Ok(None);
    }
    let rank = (9 * n).div_ceil(10);
    let mut below = 0;
    for (bucket, count) in &row.histogram {
        if below + count >= rank {
            let durations = view
                .get(&DURATIONS, &duration_key(figure_key, workflow, *bucket))?
                .unwrap_or_default();
            let at = usize::try_from(rank - below - 1).unwrap_or(usize::MAX);
            return Ok(durations.get(at).copied());
        }
        below += count;
    }
    Ok(None)
}

fn scan_all<R: crate::Row>(
    view: &View<'_>,
    table: &Table<R>,
    prefix: &[u8],
) -> Result<Vec<(Vec<u8>, R)>, ProjectionError> {
    const CHUNK: usize = 1024;
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let rows = view.scan(table, prefix, after.as_deref(), CHUNK)?;
        let full = rows.len() == CHUNK;
        after = rows.last().map(|(key, _)| key.clone());
        out.extend(rows);
        if !full {
            return Ok(out);
        }
    }
}

fn org_figures(view: &View<'_>, community: Option<&UnitId>) -> Result<OrgFigures, ProjectionError> {
    let units: HashMap<String, UnitRow> = scan_all(view, &UNITS, &[])?
        .into_iter()
        .map(|(key, row)| (String::from_utf8_lossy(&key).into_owned(), row))
        .collect();
    // Whether a unit lies in the community asked for (every unit when none is).
    let mut memo: HashMap<&str, bool> = HashMap::new();
    let mut inside = |unit: &str| -> bool {
        let Some(community) = community else {
            return true;
        };
        if let Some(known) = memo.get(unit) {
            return *known;
        }
        let mut current = unit;
        let mut found = false;
        for _ in 0..16 {
            if current == community.as_str() {
                found = units
                    .get(current)
                    .is_some_and(|u| u.tier == Tier::Community);
                break;
            }
            match units.get(current).and_then(|u| u.parent.as_ref()) {
                Some(parent) => current = parent.as_str(),
                None => break,
            }
        }
        if let Some((key, _)) = units.get_key_value(unit) {
            memo.insert(key.as_str(), found);
        }
        found
    };
    let mut figures = OrgFigures::default();
    for (id, row) in &units {
        if inside(id) {
            *figures.units.entry(row.tier).or_default() += 1;
        }
    }
    for (role, code) in COUNTED_ROLES {
        let mut actors: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut points: BTreeSet<Vec<u8>> = BTreeSet::new();
        for (key, ()) in scan_all(view, &HOLDERS, &[code])? {
            let rest = &key[1..];
            let Some(split) = rest.iter().position(|b| *b == 0) else {
                continue;
            };
            let (actor, unit) = (&rest[..split], &rest[split + 1..]);
            if inside(&String::from_utf8_lossy(unit)) {
                actors.insert(actor.to_vec());
                if code == LIAISON {
                    points.insert(unit.to_vec());
                }
            }
        }
        let n = actors.len() as u64;
        match role {
            roles::PARTY_MEMBER => figures.party_members = n,
            roles::VOLUNTEER => figures.volunteers = n,
            roles::GRID_WORKER => figures.grid_workers = n,
            _ => {
                figures.liaison_officers = n;
                figures.monitoring_points = points.len() as u64;
            }
        }
    }
    Ok(figures)
}
