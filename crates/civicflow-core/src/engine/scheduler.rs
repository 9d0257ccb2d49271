//! The deadline scheduler: takes each step of every running deadline's ladder once, when it
//! falls due.
//!
//! The index of pending steps lives in memory (compactly: one map entry and one set entry
//! per running deadline, without heap data, since a store has one per open case). It is a
//! projection of the log: it follows the log in position order (catching up before each
//! scheduler pass), so it always reflects a prefix of the log, whoever wrote it and whether
//! or not the writer's caller stayed to see the answer. Because it reflects an exact prefix,
//! it can be saved: the engine writes a snapshot (`deadline-index.snapshot` in its data
//! directory) when it closes, and the next open starts from it and reads only the events
//! after it. Without a usable snapshot (none, damaged, or from another log) it is built from
//! every deadline event of the log, as before. A snapshot is never wrong later: the log only
//! grows, so the prefix it reflects stays a prefix.
//!
//! A step is taken by appending through the aggregate's `decide`, which refuses a step
//! already taken, and with the idempotency key `deadline:<stream>:<seq>:<step>`, so it is
//! appended exactly once even if the same step is attempted twice. Steps that fell due while
//! the engine was down are taken on open, earliest first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::execute::{How, Keyed, Target};
use super::load::decode;
use super::{Engine, EngineError, SubmitError};
use crate::chain::ChainHash;
use crate::clock::Timestamp;
use crate::domain::case::{Case, CaseCommand, CaseEvent};
use crate::domain::deadline::{ActiveDeadline, LadderStep};
use crate::domain::directive::{DirectiveCommand, Part, PartEvent};
use crate::domain::org::Acting;
use crate::event::RecordedEvent;
use crate::ids::{
    CaseId, CausationId, DirectiveId, IdempotencyKey, Position, StreamId, UnitId, Version,
};
use crate::store::EventStore;
use serde::{Deserialize, Serialize};

/// What carries a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DeadlineTarget {
    /// A case.
    Case(CaseId),
    /// One unit's part of a directive.
    Part(DirectiveId, u32),
}

impl DeadlineTarget {
    pub(super) fn stream_name(&self) -> String {
        match self {
            DeadlineTarget::Case(id) => id.stream().to_string(),
            DeadlineTarget::Part(id, index) => id.part_stream(*index).to_string(),
        }
    }

    /// Which target a stream is, if it carries deadlines.
    fn of_stream(stream: &StreamId) -> Option<Self> {
        CaseId::of_stream(stream)
            .map(DeadlineTarget::Case)
            .or_else(|| {
                DirectiveId::of_part_stream(stream)
                    .map(|(id, index)| DeadlineTarget::Part(id, index))
            })
    }
}

/// A ladder step the scheduler took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTaken {
    /// The case or part.
    pub target: DeadlineTarget,
    /// Which deadline.
    pub seq: u32,
    /// Which step.
    pub step: LadderStep,
    /// When it was due.
    pub due: Timestamp,
}

/// A running deadline as the index keeps it: its number and the steps still to come,
/// earliest first (a ladder has at most three: remind, escalate, breach). Small and without
/// heap data, since a store holds one per open case: the times and the steps are kept in two
/// arrays rather than as three (time, step) pairs, which would pad each step to eight bytes
/// (40 bytes instead of 56).
#[derive(Debug, Clone, Copy)]
struct Running {
    seq: u32,
    dues: [Timestamp; 3],
    kinds: [LadderStep; 3],
    /// `dues[next..len]` and `kinds[next..len]` are still to come.
    next: u8,
    len: u8,
}

impl Running {
    /// Deadline `seq` with `steps` to come (earliest first; a ladder has at most three, any
    /// more are not kept).
    fn with_steps(seq: u32, steps: impl IntoIterator<Item = (Timestamp, LadderStep)>) -> Self {
        let mut running = Self {
            seq,
            dues: [Timestamp::from_unix_micros(0); 3],
            kinds: [LadderStep::Remind; 3],
            next: 0,
            len: 0,
        };
        for (i, (due, step)) in steps.into_iter().take(3).enumerate() {
            running.dues[i] = due;
            running.kinds[i] = step;
            running.len = u8::try_from(i + 1).unwrap_or(3);
        }
        running
    }

    fn of(deadline: &ActiveDeadline) -> Self {
        Self::with_steps(
            deadline.seq,
            deadline
                .pending_steps()
                .into_iter()
                .map(|(step, due)| (due, step)),
        )
    }

    /// The steps still to come, earliest first.
    fn steps_to_come(&self) -> impl Iterator<Item = (Timestamp, LadderStep)> + '_ {
        let range = usize::from(self.next)..usize::from(self.len);
        self.dues[range.clone()]
            .iter()
            .copied()
            .zip(self.kinds[range].iter().copied())
    }

    /// The same deadline at its recomputed times: the steps still to come, each at its new
    /// time.
    fn recomputed(&self, e: &crate::domain::deadline::DeadlineRecomputed) -> Self {
        let mut to_come: Vec<(Timestamp, LadderStep)> = self
            .steps_to_come()
            .filter_map(|(_, step)| {
                let at = match step {
                    LadderStep::Remind => e.remind_at,
                    LadderStep::Escalate => Some(e.due_at),
                    LadderStep::Breach => e.breach_at,
                };
                at.map(|at| (at, step))
            })
            .collect();
        to_come.sort();
        Self::with_steps(self.seq, to_come)
    }

    fn first(&self) -> Option<(Timestamp, LadderStep)> {
        self.steps_to_come().next()
    }

    fn remaining(&self) -> usize {
        usize::from(self.len - self.next)
    }

    /// Drops `step` from the steps to come (taken, or refused).
    fn drop_step(&mut self, step: LadderStep) {
        let (next, len) = (usize::from(self.next), usize::from(self.len));
        if let Some(at) = self.kinds[next..len].iter().position(|s| *s == step) {
            self.dues[next..len].copy_within(..at, 1);
            self.kinds[next..len].copy_within(..at, 1);
            self.next += 1;
        }
    }
}

/// The running deadlines, and the next step of each in time order. Only the next step of a
/// deadline is in `pending`: the later ones come after it, and enter when it is taken or
/// dropped. This keeps the index at one map entry and one set entry per running deadline.
#[derive(Debug, Default)]
struct IndexState {
    /// A B-tree rather than a hash map: it grows a node at a time, where a hash map doubles
    /// its table (on a store with 230,000 running deadlines, 21 MB becoming 42 MB at once).
    running: BTreeMap<DeadlineTarget, Running>,
    pending: BTreeSet<(Timestamp, DeadlineTarget, u32, LadderStep)>,
    /// The running deadlines computed without some year's data, with those years (few: only
    /// deadlines that reach past the calendar's coverage). Ordered, like `running`, so that
    /// the same log always saves the same snapshot bytes.
    provisional: BTreeMap<DeadlineTarget, (u32, Vec<i32>)>,
    /// Steps still to come, over every running deadline.
    steps: usize,
    /// The log prefix folded in: through this position, with its chain hash.
    through: Option<(Position, ChainHash)>,
}

impl IndexState {
    fn unschedule(&mut self, target: DeadlineTarget) {
        self.provisional.remove(&target);
        if let Some(old) = self.running.remove(&target) {
            self.steps -= old.remaining();
            if let Some((due, step)) = old.first() {
                self.pending.remove(&(due, target, old.seq, step));
            }
        }
    }

    /// Keeps `running` as `target`'s deadline, in place of any other. A deadline with no
    /// step to come leaves `running` (its close or a recompute would change no step):
    /// otherwise every deadline that ran out its ladder unanswered (a part never reported,
    /// a case left open) would stay in memory for good, and memory would grow with the log
    /// (issue 17). A provisional one keeps only its mark in `provisional` (dormant): a
    /// calendar publication finds it there, and its recompute clears the mark.
    fn schedule(&mut self, target: DeadlineTarget, running: Running) {
        let provisional = self
            .provisional
            .remove(&target)
            .filter(|(seq, _)| *seq == running.seq);
        self.unschedule(target);
        if let Some(provisional) = provisional {
            self.provisional.insert(target, provisional);
        }
        if let Some((due, step)) = running.first() {
            self.pending.insert((due, target, running.seq, step));
        }
        self.steps += running.remaining();
        if running.remaining() > 0 {
            self.running.insert(target, running);
        }
    }

    /// Whether deadline `seq` is `target`'s current one: running, or dormant (provisional
    /// with nothing to come).
    fn is_current(&self, target: DeadlineTarget, seq: u32) -> bool {
        self.running.get(&target).is_some_and(|r| r.seq == seq) || self.is_marked(target, seq)
    }

    /// Whether deadline `seq` of `target` carries a provisional mark.
    fn is_marked(&self, target: DeadlineTarget, seq: u32) -> bool {
        self.provisional
            .get(&target)
            .is_some_and(|(s, _)| *s == seq)
    }

    /// Notes whether the running deadline `seq` of `target` is provisional (after
    /// [`IndexState::schedule`], which forgets it).
    fn mark_provisional(
        &mut self,
        target: DeadlineTarget,
        seq: u32,
        calendar: Option<&crate::domain::deadline::CalendarStamp>,
    ) {
        match calendar.filter(|c| c.is_provisional()) {
            Some(calendar) => {
                self.provisional
                    .insert(target, (seq, calendar.missing_years.clone()));
            }
            None => {
                self.provisional.remove(&target);
            }
        }
    }

    /// `step` of deadline `seq` of `target` is no longer to come.
    fn drop_step(&mut self, target: DeadlineTarget, seq: u32, step: LadderStep) {
        if let Some(mut running) = self.running.get(&target).copied().filter(|r| r.seq == seq) {
            running.drop_step(step);
            self.schedule(target, running);
        }
    }

    /// Folds one deadline event of `target` in.
    fn note(&mut self, target: DeadlineTarget, event: DeadlineChange<'_>) {
        match event {
            DeadlineChange::Set(set) => {
                // Marked first: a provisional deadline is kept even with nothing to come.
                self.mark_provisional(target, set.seq, set.basis.as_ref().map(|b| &b.calendar));
                self.schedule(target, Running::of(&ActiveDeadline::from_set(set)));
            }
            DeadlineChange::Closed(seq) => {
                if self.is_current(target, seq) {
                    self.unschedule(target);
                }
            }
            DeadlineChange::Step(seq, step) => {
                if matches!(step, LadderStep::Escalate | LadderStep::Breach)
                    && self.is_marked(target, seq)
                {
                    // The deadline is due (the escalation comes at its due time, the breach
                    // after it), and `domain::deadline::recompute` never moves a deadline
                    // already due: no publication can move it, so nothing needs to find it.
                    self.provisional.remove(&target);
                }
                self.drop_step(target, seq, step);
            }
            DeadlineChange::Recomputed(e) => {
                if let Some(old) = self
                    .running
                    .get(&target)
                    .copied()
                    .filter(|r| r.seq == e.seq)
                {
                    self.schedule(target, old.recomputed(e));
                    self.mark_provisional(target, e.seq, Some(&e.calendar));
                } else if self.is_current(target, e.seq) {
                    // Dormant: still nothing to come; the mark follows the new calendar.
                    self.mark_provisional(target, e.seq, Some(&e.calendar));
                }
            }
        }
    }
}

enum DeadlineChange<'a> {
    Set(&'a crate::domain::deadline::DeadlineSet),
    Recomputed(&'a crate::domain::deadline::DeadlineRecomputed),
    Closed(u32),
    Step(u32, LadderStep),
}

fn case_change(event: &CaseEvent) -> Option<DeadlineChange<'_>> {
    match event {
        CaseEvent::DeadlineSet(e) => Some(DeadlineChange::Set(e)),
        CaseEvent::DeadlineRecomputed(e) => Some(DeadlineChange::Recomputed(e)),
        CaseEvent::DeadlineMet(e) => Some(DeadlineChange::Closed(e.seq)),
        CaseEvent::DeadlineMissed(e) => Some(DeadlineChange::Closed(e.seq)),
        CaseEvent::DeadlineStepReached(e) => Some(DeadlineChange::Step(e.seq, e.step)),
        _ => None,
    }
}

fn part_change(event: &PartEvent) -> Option<DeadlineChange<'_>> {
    match event {
        PartEvent::DeadlineSet(e) => Some(DeadlineChange::Set(e)),
        PartEvent::DeadlineRecomputed(e) => Some(DeadlineChange::Recomputed(e)),
        PartEvent::DeadlineMet(e) => Some(DeadlineChange::Closed(e.seq)),
        PartEvent::DeadlineMissed(e) => Some(DeadlineChange::Closed(e.seq)),
        PartEvent::DeadlineStepReached(e) => Some(DeadlineChange::Step(e.seq, e.step)),
        _ => None,
    }
}

/// Where the engine keeps the index's snapshot, in its data directory.
pub(super) const SNAPSHOT_FILE: &str = "deadline-index.snapshot";

/// A running deadline as saved: what carries it, its number, its steps to come.
type SavedDeadline = (DeadlineTarget, u32, Vec<(Timestamp, LadderStep)>);

/// The index as saved: the log prefix it reflects, each running deadline's steps to come, the
/// provisional ones with the years they lack, and the version of the rules it was folded
/// with ([`SNAPSHOT_RULES`]). Older files do not decode as this one (version 1 had no
/// `provisional`, version 2 no `rules`), and the index is then built from the log instead.
#[derive(Deserialize)]
struct SnapshotV3 {
    through: u64,
    through_hash: [u8; 32],
    running: Vec<SavedDeadline>,
    provisional: Vec<(DeadlineTarget, u32, Vec<i32>)>,
    rules: u32,
}

/// The rules a snapshot's index was folded with. 3: deadlines with nothing to come are not
/// kept, a provisional one keeps only its mark, and a mark goes when its deadline falls due
/// (issue 17). An index folded by older rules holds what these drop, so it is rebuilt.
const SNAPSHOT_RULES: u32 = 3;

/// [`SnapshotV3`] as the index writes it: its fields in the same order, each serialized as
/// the owned field would be (a sequence of the same tuples), from the index in place.
#[derive(Serialize)]
struct SavedView<'a> {
    through: u64,
    through_hash: [u8; 32],
    running: RunningView<'a>,
    provisional: ProvisionalView<'a>,
    rules: u32,
}

/// `SnapshotV3::running`: `(target, seq, steps to come)` for each running deadline.
struct RunningView<'a>(&'a BTreeMap<DeadlineTarget, Running>);

impl Serialize for RunningView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.0
                .iter()
                .map(|(target, running)| (target, running.seq, StepsView(running))),
        )
    }
}

/// One deadline's steps to come, as a sequence of `(due, step)`.
struct StepsView<'a>(&'a Running);

impl Serialize for StepsView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.steps_to_come())
    }
}

/// `SnapshotV3::provisional`: `(target, seq, missing years)` for each provisional deadline.
struct ProvisionalView<'a>(&'a BTreeMap<DeadlineTarget, (u32, Vec<i32>)>);

impl Serialize for ProvisionalView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.0
                .iter()
                .map(|(target, (seq, years))| (target, seq, years)),
        )
    }
}

/// The pending ladder steps of every running deadline.
#[derive(Debug)]
pub(super) struct DeadlineIndex {
    state: Mutex<IndexState>,
    /// The snapshot's file.
    snapshot: PathBuf,
}

/// Builds the deadline index of `log` from its first event and saves its snapshot in
/// `data_dir`, as an engine's close does: what `civicflow rebuild` runs beside the read
/// models, so that the first open after an import (or with a lost snapshot) reads only the
/// events after it instead of the whole log. Returns how many deadlines are running. The
/// engine that owns `data_dir` must be stopped (its own close would overwrite the file).
///
/// # Errors
/// The log cannot be read, an event does not decode, or the file cannot be written.
pub fn rebuild_deadline_index(log: &dyn EventStore, data_dir: &Path) -> Result<usize, EngineError> {
    let index = DeadlineIndex {
        state: Mutex::new(IndexState::default()),
        snapshot: data_dir.join(SNAPSHOT_FILE),
    };
    index.catch_up(log)?;
    index.save(log)?;
    let running = index.lock().running.len();
    Ok(running)
}

impl DeadlineIndex {
    /// The provisional running deadlines that the calendar now has data for (one of the
    /// years they were counted without is covered): those a publication may move.
    pub(super) fn recomputable(&self, covers: impl Fn(i32) -> bool) -> Vec<(DeadlineTarget, u32)> {
        let state = self.lock();
        let mut found: Vec<(DeadlineTarget, u32)> = state
            .provisional
            .iter()
            .filter(|(_, (_, missing))| missing.iter().any(|&year| covers(year)))
            .map(|(target, (seq, _))| (*target, *seq))
            .collect();
        found.sort();
        found
    }

    /// The index of `log`: from the snapshot in `data_dir` when there is a usable one, then
    /// caught up with the log.
    pub(super) fn open(log: &dyn EventStore, data_dir: &Path) -> Result<Self, EngineError> {
        let snapshot = data_dir.join(SNAPSHOT_FILE);
        let state = load_snapshot(log, &snapshot).unwrap_or_default();
        let index = Self {
            state: Mutex::new(state),
            snapshot,
        };
        index.catch_up(log)?;
        Ok(index)
    }

    /// Folds in the deadline events the log has after the index's prefix.
    pub(super) fn catch_up(&self, log: &dyn EventStore) -> Result<(), EngineError> {
        let mut state = self.lock();
        let mut from = state.through.map_or(Position::FIRST, |(p, _)| p.next());
        loop {
            let batch = log.read_all(from, 4096)?;
            let Some(last) = batch.last() else { break };
            from = last.position.next();
            for recorded in batch
                .iter()
                .filter(|e| e.event_type.as_str().starts_with("Deadline"))
            {
                note_recorded(&mut state, recorded)?;
            }
            state.through = Some((last.position, last.hash));
        }
        Ok(())
    }

    /// Catches up and writes the snapshot (through a temporary file, synced, then renamed:
    /// a crash leaves the old snapshot or the new one, never half of one).
    pub(super) fn save(&self, log: &dyn EventStore) -> Result<(), EngineError> {
        self.catch_up(log)?;
        let state = self.lock();
        let Some((through, hash)) = state.through else {
            return Ok(()); // an empty log: nothing to save
        };
        let failed = |reason: String| EngineError::Snapshot {
            path: self.snapshot.clone(),
            reason,
        };
        // Encoded from the index in place, under its lock: a copy of every deadline first
        // would double the index's memory at the moment the service stops (34 MB on top of
        // 46 MB for 380,000 running deadlines, heaptrack).
        let bytes = crate::codec::encode_snapshot(&state.saved(through, hash)).map_err(failed)?;
        drop(state);
        write_atomically(&self.snapshot, &bytes).map_err(|e| failed(e.to_string()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IndexState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The earliest pending step due at or before `now`.
    fn next_due(&self, now: Timestamp) -> Option<(Timestamp, DeadlineTarget, u32, LadderStep)> {
        self.lock()
            .pending
            .first()
            .copied()
            .filter(|(due, ..)| *due <= now)
    }

    fn forget(&self, &(_, target, seq, step): &(Timestamp, DeadlineTarget, u32, LadderStep)) {
        self.lock().drop_step(target, seq, step);
    }

    /// How many steps are pending.
    pub(super) fn pending(&self) -> usize {
        self.lock().steps
    }

    /// The next step's due time, if any.
    pub(super) fn next_time(&self) -> Option<Timestamp> {
        self.lock().pending.first().map(|(due, ..)| *due)
    }
}

fn note_recorded(state: &mut IndexState, recorded: &RecordedEvent) -> Result<(), EngineError> {
    let Some(target) = DeadlineTarget::of_stream(&recorded.stream) else {
        return Ok(());
    };
    match target {
        DeadlineTarget::Case(_) => {
            let event: CaseEvent = decode(recorded)?;
            if let Some(change) = case_change(&event) {
                state.note(target, change);
            }
        }
        DeadlineTarget::Part(..) => {
            let event: PartEvent = decode(recorded)?;
            if let Some(change) = part_change(&event) {
                state.note(target, change);
            }
        }
    }
    Ok(())
}

/// The state in the snapshot file, if it is there, whole, and of this log (the log holds its
/// prefix: the event at its position has its hash). Anything else: `None`, and the index is
/// built from the whole log.
fn load_snapshot(log: &dyn EventStore, path: &Path) -> Option<IndexState> {
    let bytes = std::fs::read(path).ok()?;
    let snapshot: SnapshotV3 = crate::codec::decode_snapshot(&bytes).ok()?;
    let through = Position::new(snapshot.through)?;
    let hash = ChainHash::from_bytes(snapshot.through_hash);
    let at = log.read_all(through, 1).ok()?;
    if at.first().map(|e| (e.position, e.hash)) != Some((through, hash)) {
        return None;
    }
    IndexState::from_saved(snapshot)
}

impl IndexState {
    /// The state as the snapshot saves it (`through` is the log prefix it reflects): a view
    /// that serializes exactly as [`SnapshotV3`] does, without copying the deadlines.
    fn saved(&self, through: Position, hash: ChainHash) -> SavedView<'_> {
        SavedView {
            through: through.get(),
            through_hash: *hash.as_bytes(),
            running: RunningView(&self.running),
            provisional: ProvisionalView(&self.provisional),
            rules: SNAPSHOT_RULES,
        }
    }

    /// The state a snapshot saved, or `None` when it is not one this index wrote (a ladder
    /// of more than three steps, one target twice, no position).
    fn from_saved(snapshot: SnapshotV3) -> Option<Self> {
        if snapshot.rules != SNAPSHOT_RULES {
            return None;
        }
        let through = Position::new(snapshot.through)?;
        let hash = ChainHash::from_bytes(snapshot.through_hash);
        // Built in bulk from the saved order (sorted by target, as the map iterates): a B-tree
        // built from sorted entries has full nodes, where inserting them one by one would leave
        // each node about half full.
        let mut running: Vec<(DeadlineTarget, Running)> =
            Vec::with_capacity(snapshot.running.len());
        for (target, seq, steps) in snapshot.running {
            if steps.len() > 3 {
                return None;
            }
            running.push((target, Running::with_steps(seq, steps)));
        }
        running.sort_by_key(|(target, _)| *target);
        if running.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return None; // one target twice: not a snapshot this index wrote
        }
        let mut provisional: BTreeMap<DeadlineTarget, (u32, Vec<i32>)> = snapshot
            .provisional
            .into_iter()
            .map(|(target, seq, years)| (target, (seq, years)))
            .collect();
        // A mark for another deadline than the one saved for its target is stale. Then as
        // `IndexState::schedule` keeps them: only deadlines with a step to come run (a
        // snapshot written before issue 17 also holds those with none); a provisional one
        // without keeps its mark alone.
        provisional.retain(|target, (seq, _)| {
            running
                .binary_search_by_key(target, |(t, _)| *t)
                .map_or(true, |i| running[i].1.seq == *seq)
        });
        running.retain(|(_, r)| r.remaining() > 0);
        let mut state = IndexState {
            steps: running.iter().map(|(_, r)| r.remaining()).sum(),
            pending: running
                .iter()
                .filter_map(|(target, r)| r.first().map(|(due, step)| (due, *target, r.seq, step)))
                .collect(),
            running: running.into_iter().collect(),
            ..IndexState::default()
        };
        state.provisional = provisional;
        state.through = Some((through, hash));
        Some(state)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("snapshot.partial");
    let mut file = crate::private_fs::create_file(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl Engine {
    /// Runs the system's command on what carries a deadline: `case` on a case, `part` on a
    /// directive part. The number of events it wrote.
    pub(super) fn on_deadline(
        &self,
        system: &Acting,
        target: DeadlineTarget,
        case: CaseCommand,
        part: DirectiveCommand,
        how: &How,
    ) -> Result<usize, SubmitError> {
        match target {
            DeadlineTarget::Case(id) => self
                .execute::<Case>(system, Target::Existing(id), &case, how, None)
                .map(|done| done.events),
            DeadlineTarget::Part(id, index) => self
                .execute::<Part>(system, Target::Existing((id, index)), &part, how, None)
                .map(|done| done.events),
        }
    }

    /// The id of the event that set deadline `seq` of `target` (`None` when it cannot be
    /// read: the cause is metadata, and a step is taken without it rather than not at all).
    fn deadline_cause(&self, target: &DeadlineTarget, seq: u32) -> Option<CausationId> {
        let stream = StreamId::new(target.stream_name()).ok()?;
        let events = self
            .log
            .read_stream(&stream, Version::FIRST, 100_000)
            .ok()?;
        events.iter().rev().find_map(|recorded| {
            if recorded.event_type.as_str() != "DeadlineSet" {
                return None;
            }
            let set = match target {
                DeadlineTarget::Case(_) => match recorded.decode::<CaseEvent>() {
                    Ok(CaseEvent::DeadlineSet(set)) => set,
                    _ => return None,
                },
                DeadlineTarget::Part(..) => match recorded.decode::<PartEvent>() {
                    Ok(PartEvent::DeadlineSet(set)) => set,
                    _ => return None,
                },
            };
            (set.seq == seq).then(|| CausationId::from(recorded.event_id))
        })
    }

    /// Takes every ladder step that is due now, earliest first, and says which.
    ///
    /// # Errors
    /// [`EngineError`] when storage fails; a step the domain refuses (its stage was left
    /// meanwhile) is dropped, not an error.
    pub fn run_due_deadlines(&self) -> Result<Vec<StepTaken>, EngineError> {
        // A year another instance published on a shared log: its recomputations first, so
        // that no step is taken at a provisional time the calendar now corrects.
        let calendar_before = self.calendar_in_force().version;
        self.refresh_calendar()?;
        if self.calendar_in_force().version != calendar_before {
            self.recompute_provisional_deadlines(None)?;
        }
        // Definitions another instance published: learnt here too (the read models fold
        // with them); and the chart it changed (grants checked on requests read it).
        self.refresh_workflows()?;
        self.refresh_shared_org()?;
        self.deadlines.catch_up(&*self.log)?;
        let system = Acting::system(UnitId::new("system").expect("a valid unit id"));
        let mut taken = Vec::new();
        while let Some(entry @ (due, target, seq, step)) = self.deadlines.next_due(self.now()) {
            let key = IdempotencyKey::new(format!(
                "deadline:{}:{seq}:{}",
                target.stream_name(),
                step.as_str()
            ))
            .expect("stream names, numbers and step names make a valid key");
            // The step is caused by the event that set the deadline: an audit shows why.
            let how = How {
                key: Some(Keyed::system(key)),
                correlation: None,
                causation: self.deadline_cause(&target, seq),
            };
            let result = self.on_deadline(
                &system,
                target,
                CaseCommand::ReachDeadlineStep { seq, step },
                DirectiveCommand::ReachDeadlineStep { seq, step },
                &how,
            );
            match result {
                Ok(_) => taken.push(StepTaken {
                    target,
                    seq,
                    step,
                    due,
                }),
                Err(SubmitError::Rejected(_)) => {}
                Err(SubmitError::Engine(e)) => return Err(e),
            }
            // Taken or refused, the step is no longer pending (a taken step's event is folded
            // in too, when the index catches up; dropping it twice is harmless).
            self.deadlines.forget(&entry);
        }
        Ok(taken)
    }

    /// How many ladder steps are pending, and when the next one is due.
    ///
    /// # Errors
    /// [`EngineError`] when the log cannot be read to catch up.
    pub fn pending_deadline_steps(&self) -> Result<(usize, Option<Timestamp>), EngineError> {
        self.deadlines.catch_up(&*self.log)?;
        Ok((self.deadlines.pending(), self.deadlines.next_time()))
    }

    /// Saves the deadline index's snapshot (the engine also does when it closes), so that
    /// the next open reads only the events after it.
    ///
    /// # Errors
    /// The log cannot be read, or the file cannot be written.
    pub fn save_deadline_index(&self) -> Result<(), EngineError> {
        self.deadlines.save(&*self.log)
    }

    /// Runs [`Engine::run_due_deadlines`] every `period` on a thread of its own, until the
    /// handle is dropped. Errors are kept in the handle (the last one) rather than stopping
    /// the thread.
    pub fn spawn_scheduler(self: &Arc<Self>, period: Duration) -> SchedulerHandle {
        let stop = Arc::new(AtomicBool::new(false));
        let last_error = Arc::new(Mutex::new(None));
        let engine = Arc::downgrade(self);
        let thread = {
            let stop = stop.clone();
            let last_error = last_error.clone();
            std::thread::Builder::new()
                .name("civicflow-scheduler".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        let Some(engine) = engine.upgrade() else {
                            return;
                        };
                        if let Err(e) = engine.run_due_deadlines() {
                            *last_error.lock().unwrap_or_else(PoisonError::into_inner) =
                                Some(e.to_string());
                        }
                        drop(engine);
                        std::thread::park_timeout(period);
                    }
                })
                .ok()
        };
        SchedulerHandle {
            stop,
            thread,
            last_error,
        }
    }
}

/// A running scheduler thread; dropping it stops the thread.
#[derive(Debug)]
pub struct SchedulerHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl SchedulerHandle {
    /// The last error the scheduler met, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for SchedulerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::deadline::{CalendarStamp, DeadlineBasis, DeadlineRecomputed, DeadlineSet};

    fn at(hour: i64) -> Timestamp {
        Timestamp::from_unix_seconds(hour * 3600)
    }

    fn stamp(missing_years: Vec<i32>) -> CalendarStamp {
        CalendarStamp {
            revision: 0,
            zone: "Asia/Shanghai".into(),
            missing_years,
        }
    }

    /// A deadline with no ladder (nothing ever to come), counted without `missing` years.
    fn quiet_provisional(seq: u32, due: i64, missing: Vec<i32>) -> DeadlineSet {
        let mut quiet = set(seq, None, due, None);
        quiet.escalate = false;
        quiet.basis = Some(DeadlineBasis {
            within: crate::calendar::Span::WorkingDays(3),
            remind_after: None,
            breach_after: None,
            calendar: stamp(missing),
        });
        quiet
    }

    fn set(seq: u32, remind: Option<i64>, due: i64, breach: Option<i64>) -> DeadlineSet {
        DeadlineSet {
            seq,
            stage: "handling".into(),
            set_at: at(0),
            due_at: at(due),
            remind_at: remind.map(at),
            escalate: true,
            breach_at: breach.map(at),
            basis: None,
        }
    }

    fn pending(state: &IndexState) -> Vec<(Timestamp, u32, LadderStep)> {
        state
            .pending
            .iter()
            .map(|(due, _, seq, step)| (*due, *seq, *step))
            .collect()
    }

    #[test]
    fn only_the_next_step_of_each_deadline_is_pending_and_the_rest_follow_in_order() {
        let case = DeadlineTarget::Case(
            CaseId::parse("019cac0f-2680-772e-b1b0-5ede16638dbf").expect("a case id"),
        );
        let mut state = IndexState::default();
        state.note(case, DeadlineChange::Set(&set(1, Some(2), 4, Some(8))));
        assert_eq!(pending(&state), [(at(2), 1, LadderStep::Remind)]);
        assert_eq!(state.steps, 3);

        // Taken (its event noted): the next step enters.
        state.note(case, DeadlineChange::Step(1, LadderStep::Remind));
        assert_eq!(pending(&state), [(at(4), 1, LadderStep::Escalate)]);
        assert_eq!(state.steps, 2);
        // A step of an older deadline changes nothing.
        state.note(case, DeadlineChange::Step(0, LadderStep::Escalate));
        assert_eq!(pending(&state), [(at(4), 1, LadderStep::Escalate)]);
        // Dropped without an event (refused): the next step enters too.
        state.drop_step(case, 1, LadderStep::Escalate);
        assert_eq!(pending(&state), [(at(8), 1, LadderStep::Breach)]);
        // A step taken out of order is dropped where it is.
        state.note(case, DeadlineChange::Set(&set(2, Some(10), 12, Some(14))));
        state.note(case, DeadlineChange::Step(2, LadderStep::Escalate));
        assert_eq!(pending(&state), [(at(10), 2, LadderStep::Remind)]);
        state.note(case, DeadlineChange::Step(2, LadderStep::Remind));
        assert_eq!(pending(&state), [(at(14), 2, LadderStep::Breach)]);
        assert_eq!(state.steps, 1);
        // Closing the deadline clears it.
        state.note(case, DeadlineChange::Closed(2));
        assert!(state.pending.is_empty() && state.running.is_empty());
        assert_eq!(state.steps, 0);
    }

    /// Guards against memory that grows with the log: a deadline with nothing to come (no
    /// ladder, or every step taken while it stayed unanswered) is not kept, and closing it
    /// later changes nothing.
    #[test]
    fn a_deadline_with_nothing_to_come_is_not_kept() {
        let case = DeadlineTarget::Case(
            CaseId::parse("019cac0f-2680-772e-b1b0-5ede16638dbf").expect("a case id"),
        );
        let mut state = IndexState::default();
        let mut quiet = set(1, None, 4, None);
        quiet.escalate = false;
        state.note(case, DeadlineChange::Set(&quiet));
        assert!(state.pending.is_empty() && state.running.is_empty());
        state.note(case, DeadlineChange::Closed(1));
        assert!(state.running.is_empty());
        assert_eq!(state.steps, 0);
        // Every step taken: the deadline leaves the index with its last step.
        state.note(case, DeadlineChange::Set(&set(2, Some(2), 4, Some(8))));
        for step in [LadderStep::Remind, LadderStep::Escalate] {
            state.note(case, DeadlineChange::Step(2, step));
            assert_eq!(state.running.len(), 1);
        }
        state.note(case, DeadlineChange::Step(2, LadderStep::Breach));
        assert!(state.pending.is_empty() && state.running.is_empty());
        assert_eq!(state.steps, 0);
        state.note(case, DeadlineChange::Closed(2));
        assert!(state.running.is_empty() && state.provisional.is_empty());
    }

    /// Guards against a provisional deadline being forgotten when it has nothing to come: a
    /// calendar publication must still find it, and its recompute must clear the mark (or
    /// every later publication would recompute it again). The snapshot keeps both.
    #[test]
    fn a_provisional_deadline_with_nothing_to_come_is_kept_until_recomputed() {
        let case = DeadlineTarget::Case(
            CaseId::parse("019cac0f-2680-772e-b1b0-5ede16638dbf").expect("a case id"),
        );
        let mut quiet = quiet_provisional(1, 4, vec![2031]);
        let mut state = IndexState::default();
        state.note(case, DeadlineChange::Set(&quiet));
        assert!(
            state.running.is_empty(),
            "nothing to come: only the mark is kept"
        );
        assert_eq!(state.provisional.get(&case), Some(&(1, vec![2031])));
        let recomputed = |seq: u32, missing: Vec<i32>| DeadlineRecomputed {
            seq,
            was_due_at: at(4),
            due_at: at(5),
            remind_at: None,
            breach_at: None,
            calendar: stamp(missing),
        };
        // Another deadline's recompute changes nothing; one still short of a year moves the
        // mark to that year.
        state.note(case, DeadlineChange::Recomputed(&recomputed(0, Vec::new())));
        assert_eq!(state.provisional.get(&case), Some(&(1, vec![2031])));
        state.note(case, DeadlineChange::Recomputed(&recomputed(1, vec![2032])));
        assert_eq!(state.provisional.get(&case), Some(&(1, vec![2032])));
        assert!(state.running.is_empty());
        state.note(case, DeadlineChange::Recomputed(&recomputed(1, Vec::new())));
        assert!(
            state.provisional.is_empty(),
            "the recompute clears the mark"
        );
        // A provisional deadline that falls due loses its mark: the domain never moves a
        // deadline already due (its escalation is at the due time).
        let mut laddered = set(3, Some(2), 4, Some(8));
        laddered.basis = quiet.basis.clone();
        state.note(case, DeadlineChange::Set(&laddered));
        state.note(case, DeadlineChange::Step(3, LadderStep::Remind));
        assert_eq!(state.provisional.get(&case), Some(&(3, vec![2031])));
        state.note(case, DeadlineChange::Step(3, LadderStep::Escalate));
        assert!(state.provisional.is_empty(), "due: no mark");
        assert_eq!(pending(&state), [(at(8), 3, LadderStep::Breach)]);
        state.note(case, DeadlineChange::Closed(3));
        // Closing a dormant deadline clears its mark too.
        quiet.seq = 2;
        state.note(case, DeadlineChange::Set(&quiet));
        assert_eq!(state.provisional.get(&case), Some(&(2, vec![2031])));
        state.note(case, DeadlineChange::Closed(1));
        assert_eq!(state.provisional.len(), 1, "an older deadline's close");
        state.note(case, DeadlineChange::Closed(2));
        assert!(state.provisional.is_empty() && state.running.is_empty());
    }

    /// Guards the snapshot's round trip (built in bulk, not deadline by deadline): the state
    /// loaded is the state saved, a deadline with nothing to come is kept only while
    /// provisional, and a file this index could not have written is refused.
    #[test]
    fn a_saved_index_loads_as_it_was_and_a_file_it_could_not_have_written_is_refused() {
        let target = |n: u8| {
            DeadlineTarget::Case(
                CaseId::parse(&format!("019cac0f-2680-772e-b1b0-5ede16638d{n:02x}"))
                    .expect("a case id"),
            )
        };
        let part = DeadlineTarget::Part(
            DirectiveId::parse("019cac0f-2680-772e-b1b0-5ede16638e00").expect("an id"),
            2,
        );
        let mut state = IndexState::default();
        // Inserted out of target order, with every kind of entry the index keeps.
        state.note(target(9), DeadlineChange::Set(&set(1, Some(2), 4, Some(8))));
        state.note(target(3), DeadlineChange::Set(&set(4, None, 6, Some(9))));
        state.note(target(3), DeadlineChange::Step(4, LadderStep::Escalate));
        state.note(part, DeadlineChange::Set(&set(1, Some(1), 3, None)));
        state.note(
            target(5),
            DeadlineChange::Set(&quiet_provisional(2, 5, vec![2031])),
        );
        assert_eq!(state.running.len(), 3, "the quiet one is dormant");
        assert_eq!(state.provisional.len(), 1);

        let (through, hash) = (
            Position::new(17).expect("nz"),
            ChainHash::from_bytes([7; 32]),
        );
        // Through the bytes the index writes and reads.
        let saved = |s: &IndexState| -> SnapshotV3 {
            let bytes = crate::codec::encode_snapshot(&s.saved(through, hash)).expect("encodes");
            crate::codec::decode_snapshot(&bytes).expect("decodes as the snapshot")
        };
        let loaded = IndexState::from_saved(saved(&state)).expect("loads");
        let to_come = |s: &IndexState| saved(s).running;
        assert_eq!(to_come(&loaded), to_come(&state));
        assert_eq!(to_come(&state).len(), 3);
        assert_eq!(loaded.pending, state.pending);
        assert_eq!(loaded.provisional, state.provisional);
        assert_eq!(loaded.steps, state.steps);
        assert_eq!(loaded.through, Some((through, hash)));

        // As written before issue 17: the dormant deadline also in `running`, with nothing
        // to come. It loads as its mark alone; without a mark it is not kept; a mark for
        // another deadline than the saved one is stale.
        let mut older = saved(&state);
        older.running.push((target(5), 2, Vec::new()));
        older.running.push((target(7), 3, Vec::new()));
        older.provisional.push((target(9), 8, vec![2031]));
        let loaded = IndexState::from_saved(older).expect("loads");
        assert_eq!(to_come(&loaded), to_come(&state));
        assert_eq!(loaded.provisional, state.provisional);

        let mut twice = saved(&state);
        let first = twice.running[0].clone();
        twice.running.push(first);
        assert!(IndexState::from_saved(twice).is_none(), "one target twice");
        let mut long = saved(&state);
        let step = long.running[0].2[0];
        long.running[0].2 = vec![step; 4];
        assert!(
            IndexState::from_saved(long).is_none(),
            "a ladder of four steps"
        );
        // A file of the rules before (version 2: no `rules`) is not read, nor one that names
        // other rules: the index is built from the log instead.
        #[derive(Serialize)]
        struct SnapshotV2 {
            through: u64,
            through_hash: [u8; 32],
            running: Vec<SavedDeadline>,
            provisional: Vec<(DeadlineTarget, u32, Vec<i32>)>,
        }
        let current = saved(&state);
        let v2 = crate::codec::encode_snapshot(&SnapshotV2 {
            through: current.through,
            through_hash: current.through_hash,
            running: current.running,
            provisional: current.provisional,
        })
        .expect("encodes");
        assert!(crate::codec::decode_snapshot::<SnapshotV3>(&v2).is_err());
        let mut other_rules = saved(&state);
        other_rules.rules = SNAPSHOT_RULES - 1;
        assert!(IndexState::from_saved(other_rules).is_none(), "other rules");
        let mut nowhere = saved(&state);
        nowhere.through = 0;
        assert!(IndexState::from_saved(nowhere).is_none(), "no position");
    }
}
