//! Property tests: random sequences of commands from random actors never break the
//! invariants of cases, directives and deadlines.
//!
//! - `cases::case_commands_keep_the_invariants` (pure domain, 512 cases by default): a case
//!   of a random built-in workflow (or a version 2 or 3 made for migrating), then up to 79
//!   random commands through `case::decide` and `case::apply` with China's business calendar:
//!   actions (of the stage or not, unknown ones too) with fields valid or broken, from actors
//!   drawn from a fixture chart with every role at every unit of every tier, units outside
//!   the chain, the system and outsiders; migrations; deadline steps for random deadlines
//!   and steps, by the system and by others; a scheduler that takes what is due; contact
//!   views; duplicates; time passing. Guards against: a closed case taking an action other
//!   than reopen, a stage that is not the definition's or `closed` out of step with it, a
//!   lead that is not a unit of the chart or is also listed as a co-handler, a closed case
//!   with a running deadline, a deadline step taken twice, early, by someone other than the
//!   system or for a deadline that is not running, a deadline met or missed twice, a due step
//!   the system cannot take, accepted commands that write nothing, refusals that change the
//!   state, and actions accepted from actors without the role or the scope.
//! - `directives::directive_progress_is_the_sum_of_its_parts` (pure domain, 256 cases): a
//!   random org tree (communities, grids, enterprises, shops, units outside the chain), a
//!   directive issued at a random unit by a random actor, then acknowledgements, reports and
//!   deadline steps from random actors. Guards against: parts that are not exactly the chain
//!   units below the issuer, progress counts that do not add up over a part's subtree,
//!   `complete` set too early or too late, reports and steps accepted from the wrong unit or
//!   role, a part's deadline stepping twice or surviving its report.
//! - `engine::the_engine_takes_each_deadline_step_once_across_restarts` (a real store, 16
//!   cases): random commands through `Engine::submit` with a manual clock, scheduler runs and
//!   the engine closed and opened again at random points. Guards against: the scheduler
//!   appending a step twice (in one run or across a restart), steps that fell due while the
//!   engine was closed not being taken on opening, the in-memory deadline index and the log
//!   disagreeing, a closed case taking anything but a reopen in the log, and the log's hash
//!   chain or a case's chain breaking.
//! - `regressions` (and `engine::the_engine_never_makes_a_non_unit_the_lead`): the minimal
//!   inputs the properties found for bugs of the library, written out as plain tests. They
//!   fail until those bugs are fixed (see each test's comment).
//!
//! What "a closed case accepts nothing but reopen" means here (from `case::decide` and
//! `docs/engine.md`): of the commands that write, only an action with the reopen effect, a
//! contact view (a read recorded for the audit, which changes nothing else) and a migration
//! to a version in which the stage is terminal too; never a deadline step, since a terminal
//! stage has no deadline.
//!
//! Set `CIVICFLOW_PROPTEST_CASES=N` to run at least `N` cases of every property (the
//! defaults keep a debug run well under 30 seconds). Failures are not persisted to files:
//! proptest prints the shrunk input, and every failure message ends with what happened, step
//! by step.

mod cases;
mod common;
mod directives;
mod engine;
mod regressions;
