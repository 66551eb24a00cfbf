//! The case lifecycle as a pure state machine.
//!
//! `apply(case, event, now, ctx)` returns the case's new state and the effects
//! the shell must carry out in the same transaction (letters to queue, staff to
//! notify, deadlines to set or cancel). Illegal transitions are typed errors,
//! never panics, and never half-applied: the input case is not modified.
//!
//! Invariants:
//! - a case is always in one stage of its procedure and has one status;
//! - on hold, the target date does not run: resuming moves it on by the
//!   working days spent on hold;
//! - a closed case takes no more events (a new complaint opens a new case).
//!
//! Pure: no I/O; `now` is a parameter.

use super::calendar::{CalendarError, WorkingCalendar};
use super::procedure::{Procedure, Span, StageName};
use chrono::{DateTime, NaiveDate, Utc};
use std::fmt;
use std::str::FromStr;

/// A case reference such as `OPP-2026-0042`: the organisation's prefix, the
/// year the case was opened and a sequence number within that year.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CaseRef(String);

impl CaseRef {
    pub fn new(prefix: &str, year: i32, seq: u32) -> Self {
        CaseRef(format!("{prefix}-{year}-{seq:04}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses `PREFIX-YYYY-NNNN` (the prefix may itself contain dashes;
    /// the sequence has at least four digits).
    pub fn parse(s: &str) -> Option<CaseRef> {
        let s = s.trim();
        let mut parts = s.rsplitn(3, '-');
        let seq = parts.next()?;
        let year = parts.next()?;
        let prefix = parts.next()?;
        let ok = !prefix.is_empty()
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
            && year.len() == 4
            && year.chars().all(|c| c.is_ascii_digit())
            && seq.len() >= 4
            && seq.chars().all(|c| c.is_ascii_digit());
        ok.then(|| CaseRef(s.to_ascii_uppercase()))
    }
}

impl fmt::Display for CaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a case stands within its stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Being handled; the target date runs.
    Open,
    /// Paused (the subject of the complaint is absent, seed 002); clocks stop.
    OnHold,
    /// A written response has been sent; the complainant may still take it to
    /// the next stage within the window.
    Resolved,
    /// Finished: nothing more happens on this case.
    Closed,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Open,
        Status::OnHold,
        Status::Resolved,
        Status::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::OnHold => "on-hold",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}: expected open, on-hold, resolved or closed")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s || (s == "hold" && *st == Status::OnHold))
            .ok_or(UnknownStatus(s))
    }
}

/// The finding of a written response (seed 002 names unfounded and
/// unsubstantiated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Upheld,
    PartlyUpheld,
    NotUpheld,
    Unfounded,
    Unsubstantiated,
    Withdrawn,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Upheld,
        Outcome::PartlyUpheld,
        Outcome::NotUpheld,
        Outcome::Unfounded,
        Outcome::Unsubstantiated,
        Outcome::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Upheld => "upheld",
            Outcome::PartlyUpheld => "partly-upheld",
            Outcome::NotUpheld => "not-upheld",
            Outcome::Unfounded => "unfounded",
            Outcome::Unsubstantiated => "unsubstantiated",
            Outcome::Withdrawn => "withdrawn",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("unknown outcome {s:?}"))
    }
}

/// A pause in the case's clocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub since: DateTime<Utc>,
    pub reason: String,
    pub until: Option<NaiveDate>,
}

/// The state of one case, as the state machine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub reference: CaseRef,
    pub stage: StageName,
    pub status: Status,
    pub received_at: DateTime<Utc>,
    /// When the current stage was opened (the first stage: `received_at`).
    pub stage_opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub target_date: Option<NaiveDate>,
    pub hold: Option<Hold>,
    /// The highest escalation rung reached in the current climb (0: none).
    pub escalation_rung: u8,
    pub outcome: Option<Outcome>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// The kinds of timer a case can have running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadlineKind {
    /// The acknowledgement must have gone by then.
    Acknowledge,
    /// The target date for the written response.
    Target,
    /// Rung N of the escalation ladder must respond by then.
    EscalationRung(u8),
    /// A hold ends by itself on this date.
    HoldUntil,
    /// The complainant may take a resolved case to the next stage until then.
    NextStageWindow,
    /// The feedback request is due.
    Feedback,
}

impl DeadlineKind {
    /// The name stored in the deadlines table.
    pub fn as_key(self) -> String {
        match self {
            DeadlineKind::Acknowledge => "acknowledge".into(),
            DeadlineKind::Target => "target".into(),
            DeadlineKind::EscalationRung(n) => format!("escalation-{n}"),
            DeadlineKind::HoldUntil => "hold-until".into(),
            DeadlineKind::NextStageWindow => "next-stage-window".into(),
            DeadlineKind::Feedback => "feedback".into(),
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "acknowledge" => DeadlineKind::Acknowledge,
            "target" => DeadlineKind::Target,
            "hold-until" => DeadlineKind::HoldUntil,
            "next-stage-window" => DeadlineKind::NextStageWindow,
            "feedback" => DeadlineKind::Feedback,
            other => DeadlineKind::EscalationRung(other.strip_prefix("escalation-")?.parse().ok()?),
        })
    }
}

/// Letters to the complainant, each from its own template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Letter {
    Acknowledgement,
    Hold,
    Resume,
    Extension,
    Resolution(Outcome),
}

/// Something the shell must do, in the same transaction as the new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Queue this letter to the complainant.
    SendLetter(Letter),
    /// Tell staff: rung 0 is the new-case notification to QC and the
    /// department head; rungs 1-3 are the escalation ladder.
    NotifyStaff { rung: u8 },
    /// Set (or replace) a timer.
    SetDeadline {
        kind: DeadlineKind,
        due: DateTime<Utc>,
    },
    /// Cancel timers of these kinds.
    CancelDeadlines(Vec<DeadlineKind>),
}

/// What happened to a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The acknowledgement went out.
    Acknowledged,
    /// Move to the next stage (informal -> formal, resolved -> appeal).
    NextStage,
    Hold {
        reason: String,
        until: Option<NaiveDate>,
    },
    Resume,
    /// A new target date, with the reason given to the complainant.
    Extend {
        to: NaiveDate,
        reason: String,
    },
    /// The target date passed, or a rung's window ran out: climb to `rung`.
    Escalate {
        rung: u8,
    },
    /// A staff member responded: the climb stops.
    StaffResponded,
    Resolve {
        outcome: Outcome,
    },
    Close,
}

/// Why an event cannot apply to a case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("case {0} is closed")]
    Closed(CaseRef),
    #[error("case {reference} is {status}; {event} needs it {needs}")]
    WrongStatus {
        reference: CaseRef,
        status: Status,
        event: &'static str,
        needs: &'static str,
    },
    #[error("case {0} is at the last stage of the procedure")]
    NoNextStage(CaseRef),
    #[error("stage {0} is not in the procedure")]
    UnknownStage(StageName),
    #[error("the new target date {to} is not after the current one {current}")]
    ExtensionNotLater { to: NaiveDate, current: NaiveDate },
    #[error(
        "the new target date {to} is beyond the longest extension allowed ({max}, to {limit})"
    )]
    ExtensionTooLong {
        to: NaiveDate,
        max: Span,
        limit: NaiveDate,
    },
    #[error("escalation rung {rung} does not follow rung {current}")]
    RungOutOfOrder { rung: u8, current: u8 },
    #[error("calendar: {0}")]
    Calendar(#[from] CalendarError),
}

/// The new state and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub case: Case,
    pub effects: Vec<Effect>,
}

/// What the state machine needs besides the case.
pub struct Context<'a> {
    pub procedure: &'a Procedure,
    pub calendar: &'a WorkingCalendar,
}

/// The top rung of the escalation ladder (department head, senior manager,
/// Managing Director).
pub const TOP_RUNG: u8 = 3;

/// Opens a new case at the first stage of the procedure: acknowledgement,
/// staff notification, acknowledgement and target deadlines.
pub fn open(
    reference: CaseRef,
    received_at: DateTime<Utc>,
    ctx: &Context,
) -> Result<Transition, TransitionError> {
    let stage = ctx
        .procedure
        .first_stage()
        .ok_or_else(|| TransitionError::UnknownStage(StageName(String::new())))?;
    open_in(reference, received_at, &stage.name, ctx)
}

/// Opens a case directly in `stage` (a formal complaint received in
/// writing, recorded by the Quality Coordinator): the same as [`open`]
/// otherwise.
pub fn open_in(
    reference: CaseRef,
    received_at: DateTime<Utc>,
    stage: &StageName,
    ctx: &Context,
) -> Result<Transition, TransitionError> {
    let case = Case {
        reference,
        stage: stage.clone(),
        status: Status::Open,
        received_at,
        stage_opened_at: received_at,
        acknowledged_at: None,
        target_date: None,
        hold: None,
        escalation_rung: 0,
        outcome: None,
        resolved_at: None,
    };
    start_stage(case, stage, received_at, ctx)
}

/// Opens a case the Quality Coordinator records at `recorded_at` for a
/// complaint received at `received_at` another way (a letter, a call): as
/// [`open_in`], except that an acknowledgement window already over when it
/// is recorded runs again from then. Telling QC "overdue" about the
/// acknowledgement it is sending at that moment helps nobody; the target
/// date still counts from receipt.
pub fn open_recorded(
    reference: CaseRef,
    received_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    stage: &StageName,
    ctx: &Context,
) -> Result<Transition, TransitionError> {
    let mut t = open_in(reference, received_at, stage, ctx)?;
    let window = ctx
        .procedure
        .stage(stage)
        .ok_or_else(|| TransitionError::UnknownStage(stage.clone()))?
        .acknowledge_within;
    for effect in &mut t.effects {
        if let Effect::SetDeadline {
            kind: DeadlineKind::Acknowledge,
            due,
        } = effect
        {
            if *due <= recorded_at {
                *due = window
                    .due_from(recorded_at, ctx.calendar)?
                    .instant(ctx.calendar)?;
            }
        }
    }
    Ok(t)
}

/// Begins `stage` at `now`: a new acknowledgement and target date.
fn start_stage(
    mut case: Case,
    stage: &StageName,
    now: DateTime<Utc>,
    ctx: &Context,
) -> Result<Transition, TransitionError> {
    let cal = ctx.calendar;
    let st = ctx
        .procedure
        .stage(stage)
        .ok_or_else(|| TransitionError::UnknownStage(stage.clone()))?;
    let ack_due = st.acknowledge_within.due_from(now, cal)?.instant(cal)?;
    let target = st.respond_within.due_from(now, cal)?.date(cal);
    case.stage = stage.clone();
    case.status = Status::Open;
    case.stage_opened_at = now;
    case.acknowledged_at = None;
    case.target_date = Some(target);
    case.hold = None;
    case.escalation_rung = 0;
    case.outcome = None;
    case.resolved_at = None;
    Ok(Transition {
        effects: vec![
            Effect::CancelDeadlines(all_deadline_kinds()),
            Effect::SendLetter(Letter::Acknowledgement),
            Effect::NotifyStaff { rung: 0 },
            Effect::SetDeadline {
                kind: DeadlineKind::Acknowledge,
                due: ack_due,
            },
            Effect::SetDeadline {
                kind: DeadlineKind::Target,
                due: cal.end_of_day(target)?,
            },
        ],
        case,
    })
}

fn all_deadline_kinds() -> Vec<DeadlineKind> {
    let mut kinds = vec![
        DeadlineKind::Acknowledge,
        DeadlineKind::Target,
        DeadlineKind::HoldUntil,
        DeadlineKind::NextStageWindow,
        DeadlineKind::Feedback,
    ];
    kinds.extend((1..=TOP_RUNG).map(DeadlineKind::EscalationRung));
    kinds
}

fn escalation_kinds() -> Vec<DeadlineKind> {
    (1..=TOP_RUNG).map(DeadlineKind::EscalationRung).collect()
}

fn event_name(event: &Event) -> &'static str {
    match event {
        Event::Acknowledged => "acknowledged",
        Event::NextStage => "next-stage",
        Event::Hold { .. } => "hold",
        Event::Resume => "resume",
        Event::Extend { .. } => "extend",
        Event::Escalate { .. } => "escalate",
        Event::StaffResponded => "staff-responded",
        Event::Resolve { .. } => "resolve",
        Event::Close => "close",
    }
}

/// Applies `event` to `case` at `now`.
pub fn apply(
    case: &Case,
    event: &Event,
    now: DateTime<Utc>,
    ctx: &Context,
) -> Result<Transition, TransitionError> {
    let cal = ctx.calendar;
    if case.status == Status::Closed {
        return Err(TransitionError::Closed(case.reference.clone()));
    }
    let wrong = |needs: &'static str| TransitionError::WrongStatus {
        reference: case.reference.clone(),
        status: case.status,
        event: event_name(event),
        needs,
    };
    let mut next = case.clone();
    let mut effects = Vec::new();
    match event {
        Event::Acknowledged => {
            next.acknowledged_at.get_or_insert(now);
            effects.push(Effect::CancelDeadlines(vec![DeadlineKind::Acknowledge]));
        }
        Event::NextStage => {
            if !matches!(case.status, Status::Open | Status::Resolved) {
                return Err(wrong("open or resolved"));
            }
            let stage = ctx
                .procedure
                .next_stage(&case.stage)
                .ok_or_else(|| TransitionError::NoNextStage(case.reference.clone()))?;
            return start_stage(next, &stage.name.clone(), now, ctx);
        }
        Event::Hold { reason, until } => {
            if case.status != Status::Open {
                return Err(wrong("open"));
            }
            next.status = Status::OnHold;
            next.hold = Some(Hold {
                since: now,
                reason: reason.clone(),
                until: *until,
            });
            let mut cancel = vec![DeadlineKind::Target];
            cancel.extend(escalation_kinds());
            effects.push(Effect::CancelDeadlines(cancel));
            effects.push(Effect::SendLetter(Letter::Hold));
            if let Some(until) = until {
                // The hold ends at the start of its last day's successor
                // (held "until 4 January" resumes on the 5th).
                effects.push(Effect::SetDeadline {
                    kind: DeadlineKind::HoldUntil,
                    due: cal.end_of_day(*until)?,
                });
            }
        }
        Event::Resume => {
            let Some(hold) = &case.hold else {
                return Err(wrong("on hold"));
            };
            let held = cal
                .working_days_between(cal.local_date(hold.since), cal.local_date(now))
                .max(0);
            let held = u32::try_from(held).unwrap_or(u32::MAX);
            next.status = Status::Open;
            next.hold = None;
            next.escalation_rung = 0;
            if let Some(target) = case.target_date {
                let moved = cal.add_working_days(target, held)?;
                next.target_date = Some(moved);
                effects.push(Effect::SetDeadline {
                    kind: DeadlineKind::Target,
                    due: cal.end_of_day(moved)?,
                });
            }
            effects.push(Effect::CancelDeadlines(vec![DeadlineKind::HoldUntil]));
            effects.push(Effect::SendLetter(Letter::Resume));
        }
        Event::Extend { to, reason: _ } => {
            if !matches!(case.status, Status::Open | Status::OnHold) {
                return Err(wrong("open or on hold"));
            }
            if let Some(current) = case.target_date {
                if *to <= current {
                    return Err(TransitionError::ExtensionNotLater { to: *to, current });
                }
                let max = ctx
                    .procedure
                    .stage(&case.stage)
                    .and_then(|s| s.max_extension);
                if let Some(max) = max {
                    let limit = max.due_after_date(current, cal)?;
                    if *to > limit {
                        return Err(TransitionError::ExtensionTooLong {
                            to: *to,
                            max,
                            limit,
                        });
                    }
                }
            }
            next.target_date = Some(*to);
            next.escalation_rung = 0;
            effects.push(Effect::CancelDeadlines(escalation_kinds()));
            if case.status == Status::Open {
                effects.push(Effect::SetDeadline {
                    kind: DeadlineKind::Target,
                    due: cal.end_of_day(*to)?,
                });
            }
            effects.push(Effect::SendLetter(Letter::Extension));
        }
        Event::Escalate { rung } => {
            if case.status != Status::Open {
                return Err(wrong("open"));
            }
            if *rung > TOP_RUNG || *rung != case.escalation_rung + 1 {
                return Err(TransitionError::RungOutOfOrder {
                    rung: *rung,
                    current: case.escalation_rung,
                });
            }
            next.escalation_rung = *rung;
            effects.push(Effect::NotifyStaff { rung: *rung });
            if *rung < TOP_RUNG {
                let due = ctx
                    .procedure
                    .escalation_window
                    .due_from(now, cal)?
                    .instant(cal)?;
                effects.push(Effect::SetDeadline {
                    kind: DeadlineKind::EscalationRung(*rung),
                    due,
                });
            }
        }
        Event::StaffResponded => {
            if case.escalation_rung > 0 {
                next.escalation_rung = 0;
                effects.push(Effect::CancelDeadlines(escalation_kinds()));
            }
        }
        Event::Resolve { outcome } => {
            if !matches!(case.status, Status::Open | Status::OnHold) {
                return Err(wrong("open or on hold"));
            }
            next.status = Status::Resolved;
            next.hold = None;
            next.outcome = Some(*outcome);
            next.resolved_at = Some(now);
            next.escalation_rung = 0;
            let mut cancel = vec![
                DeadlineKind::Acknowledge,
                DeadlineKind::Target,
                DeadlineKind::HoldUntil,
            ];
            cancel.extend(escalation_kinds());
            effects.push(Effect::CancelDeadlines(cancel));
            effects.push(Effect::SendLetter(Letter::Resolution(*outcome)));
            let stage = ctx.procedure.stage(&case.stage);
            let has_next = ctx.procedure.next_stage(&case.stage).is_some();
            match stage.and_then(|s| s.escalate_within) {
                Some(window) if has_next && *outcome != Outcome::Withdrawn => {
                    effects.push(Effect::SetDeadline {
                        kind: DeadlineKind::NextStageWindow,
                        due: window.due_from(now, cal)?.instant(cal)?,
                    });
                }
                _ => {}
            }
            if let Some(after) = ctx.procedure.feedback_after {
                effects.push(Effect::SetDeadline {
                    kind: DeadlineKind::Feedback,
                    due: after.due_from(now, cal)?.instant(cal)?,
                });
            }
        }
        Event::Close => {
            next.status = Status::Closed;
            next.hold = None;
            // The window to take it further ending does not cancel the
            // request for feedback on how the complaint was handled.
            let mut cancel = all_deadline_kinds();
            cancel.retain(|k| *k != DeadlineKind::Feedback);
            effects.push(Effect::CancelDeadlines(cancel));
        }
    }
    Ok(Transition {
        case: next,
        effects,
    })
}

/// What a complainant's own mail on an existing case leads to (not a
/// robot's, and not staff mail: see `service::staff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUp {
    /// A reply to the written response within the window to take it
    /// further, with a stage still to come: the case goes to that stage.
    /// The resolution letter invites exactly this reply ("reply to this
    /// email by ... and tell us why you remain dissatisfied").
    TakeFurther,
    /// The mail is added to the case and staff are told; nothing else
    /// changes.
    Tell(Situation),
}

/// The case moves to its next stage on the complainant's reply
/// ([`FollowUp::TakeFurther`]); a case the window's timer closed before
/// that reply was handled goes on as from its resolution.
pub fn take_further(
    case: &Case,
    now: DateTime<Utc>,
    ctx: &Context,
) -> Result<Transition, TransitionError> {
    let mut from = case.clone();
    if from.status == Status::Closed {
        from.status = Status::Resolved;
    }
    apply(&from, &Event::NextStage, now, ctx)
}

/// Where a case stands when its complainant writes again, as staff are
/// told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Situation {
    /// Still being looked into (more evidence, a question, a chase).
    Open,
    OnHold,
    /// A reply to the request for feedback on how it was handled.
    Feedback,
    /// Withdrawn by the complainant.
    Withdrawn,
    /// Answered, and the window to take it to the next stage has ended.
    TooLate,
    /// Answered at the last stage: every stage of the procedure is done.
    Exhausted,
    /// From someone on the thread who is not the complainant: it cannot
    /// take the case further.
    NotComplainant,
    /// Answered, the window to take it further is open, and this mail is
    /// not a reply to the response that takes it there.
    WindowOpen,
}

/// What is known of a later mail on a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaterMail {
    /// When it arrived: mail that arrived in time counts even when it is
    /// handled later.
    pub received: DateTime<Utc>,
    /// When the window to take the case further ends (its timer, running
    /// or fired; none when there is none).
    pub window_ends: Option<DateTime<Utc>>,
    /// It replies to our resolution letter.
    pub answers_resolution: bool,
    /// It replies to our feedback request.
    pub answers_feedback: bool,
    /// Its From is the complainant's address.
    pub from_complainant: bool,
    /// It looks automatic, on weak evidence only (a subject phrase).
    pub doubtful: bool,
}

/// Decides what a later mail on `case` means. Only a reply to the
/// resolution letter, from the complainant, sent after it and received
/// before the window ended, takes the case further by itself: anything
/// else (a "thank you" that crossed with the response, a reply to the
/// acknowledgement, a doubtful auto-reply) goes to staff, who can take it
/// further with `#formal`.
pub fn follow_up(case: &Case, mail: &LaterMail, ctx: &Context) -> FollowUp {
    let answered = matches!(case.status, Status::Resolved | Status::Closed);
    if mail.answers_feedback && answered {
        return FollowUp::Tell(Situation::Feedback);
    }
    let has_next = ctx.procedure.next_stage(&case.stage).is_some()
        && ctx
            .procedure
            .stage(&case.stage)
            .is_some_and(|s| s.escalate_within.is_some());
    let tell = FollowUp::Tell;
    match case.status {
        Status::Open => tell(Situation::Open),
        Status::OnHold => tell(Situation::OnHold),
        Status::Resolved | Status::Closed => {
            // Closed too: the timer may have closed the window before
            // mail that arrived in time was handled (a daemon down).
            let in_time = mail.window_ends.is_some_and(|end| mail.received <= end);
            let after_response = case.resolved_at.is_none_or(|r| mail.received >= r);
            if case.outcome == Some(Outcome::Withdrawn) {
                tell(Situation::Withdrawn)
            } else if !has_next {
                tell(Situation::Exhausted)
            } else if !in_time {
                tell(Situation::TooLate)
            } else if !mail.from_complainant {
                tell(Situation::NotComplainant)
            } else if mail.answers_resolution && after_response && !mail.doubtful {
                FollowUp::TakeFurther
            } else {
                tell(Situation::WindowOpen)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::procedure::{Answerer, Stage};

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("instant")
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn stage(name: &str, ack: &str, respond: &str, escalate: Option<&str>) -> Stage {
        Stage {
            name: StageName(name.into()),
            raise_within: None,
            acknowledge_within: ack.parse().expect("span"),
            respond_within: respond.parse().expect("span"),
            max_extension: Some(Span::WorkingDays(10)),
            escalate_within: escalate.map(|s| s.parse().expect("span")),
            answered_by: Answerer::DepartmentHead,
        }
    }

    fn seed_000() -> Procedure {
        Procedure {
            stages: vec![
                stage("informal", "48 hours", "20 working days", Some("1 month")),
                stage("formal", "48 hours", "20 working days", Some("1 month")),
                stage("appeal", "48 hours", "1 month", None),
            ],
            escalation_window: Span::Hours(24),
            escalate_in_working_time: true,
            feedback_after: Some(Span::WorkingDays(15)),
        }
    }

    fn opened(proc_: &Procedure, cal: &WorkingCalendar) -> Case {
        let ctx = Context {
            procedure: proc_,
            calendar: cal,
        };
        open(
            CaseRef::new("OPP", 2026, 1),
            utc("2026-11-23T10:00:00Z"),
            &ctx,
        )
        .expect("open")
        .case
    }

    #[test]
    fn a_recorded_complaint_counts_from_receipt_but_is_not_overdue_on_entry() {
        let (p, cal) = (seed_000(), WorkingCalendar::default());
        let ctx = Context {
            procedure: &p,
            calendar: &cal,
        };
        let ack_due = |t: &Transition| {
            t.effects.iter().find_map(|e| match e {
                Effect::SetDeadline {
                    kind: DeadlineKind::Acknowledge,
                    due,
                } => Some(*due),
                _ => None,
            })
        };
        let formal = StageName("formal".into());
        // A letter received on Friday 20 November, recorded on Monday 23rd:
        // the target date from receipt, the 48 hours from the recording.
        let late = open_recorded(
            CaseRef::new("OPP", 2026, 1),
            utc("2026-11-20T10:00:00Z"),
            utc("2026-11-23T15:00:00Z"),
            &formal,
            &ctx,
        )
        .expect("open");
        assert_eq!(late.case.stage, formal);
        assert_eq!(late.case.target_date, Some(d("2026-12-18")));
        assert_eq!(ack_due(&late), Some(utc("2026-11-25T15:00:00Z")));
        // Recorded within the window: it still ends 48 hours after receipt.
        let soon = open_recorded(
            CaseRef::new("OPP", 2026, 2),
            utc("2026-11-23T10:00:00Z"),
            utc("2026-11-23T15:00:00Z"),
            &formal,
            &ctx,
        )
        .expect("open");
        assert_eq!(ack_due(&soon), Some(utc("2026-11-25T10:00:00Z")));
    }

    #[test]
    fn case_refs_format_and_parse() {
        let r = CaseRef::new("OPP", 2026, 42);
        assert_eq!(r.as_str(), "OPP-2026-0042");
        assert_eq!(CaseRef::parse("opp-2026-0042"), Some(r));
        assert_eq!(
            CaseRef::parse("OP-CIC-2026-12345").map(|r| r.to_string()),
            Some("OP-CIC-2026-12345".into())
        );
        for bad in [
            "OPP-26-0042",
            "OPP-2026-42",
            "2026-0042",
            "OPP 2026 0042",
            "-2026-0042",
        ] {
            assert_eq!(CaseRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn opening_acknowledges_and_sets_the_target() {
        let (p, cal) = (seed_000(), WorkingCalendar::default());
        let ctx = Context {
            procedure: &p,
            calendar: &cal,
        };
        let t = open(
            CaseRef::new("OPP", 2026, 1),
            utc("2026-11-23T10:00:00Z"),
            &ctx,
        )
        .expect("open");
        assert_eq!(t.case.status, Status::Open);
        assert_eq!(t.case.stage.0, "informal");
        // 20 working days after Monday 23 November 2026.
        assert_eq!(t.case.target_date, Some(d("2026-12-21")));
        assert!(t
            .effects
            .contains(&Effect::SendLetter(Letter::Acknowledgement)));
        assert!(t.effects.contains(&Effect::NotifyStaff { rung: 0 }));
        assert!(t.effects.contains(&Effect::SetDeadline {
            kind: DeadlineKind::Acknowledge,
            due: utc("2026-11-25T10:00:00Z"),
        }));
    }

    #[test]
    fn hold_and_resume_move_the_target_by_the_days_held() {
        let (p, cal) = (seed_000(), WorkingCalendar::default());
        let ctx = Context {
            procedure: &p,
            calendar: &cal,
        };
        let case = opened(&p, &cal);
        let held = apply(
            &case,
            &Event::Hold {
                reason: "investigator absent".into(),
                until: None,
            },
            utc("2026-11-24T09:00:00Z"),
            &ctx,
        )
        .expect("hold");
        assert_eq!(held.case.status, Status::OnHold);
        assert!(held.effects.contains(&Effect::SendLetter(Letter::Hold)));
        // Held from Tuesday 24th to Tuesday 1 December: 5 working days.
        let resumed = apply(
            &held.case,
            &Event::Resume,
            utc("2026-12-01T09:00:00Z"),
            &ctx,
        )
        .expect("resume");
        assert_eq!(resumed.case.status, Status::Open);
        assert_eq!(resumed.case.target_date, Some(d("2026-12-30")));
        // Resume without a hold is an error, not a panic.
        assert!(matches!(
            apply(
                &resumed.case,
                &Event::Resume,
                utc("2026-12-02T09:00:00Z"),
                &ctx
            ),
            Err(TransitionError::WrongStatus { .. })
        ));
    }

    #[test]
    fn extension_must_be_later_and_within_the_maximum() {
        let (p, cal) = (seed_000(), WorkingCalendar::default());
        let ctx = Context {
            procedure: &p,
            calendar: &cal,
        };
        let case = opened(&p, &cal);
        let now = utc("2026-12-01T09:00:00Z");
        let extend = |to: &str| Event::Extend {
            to: d(to),
            reason: "waiting for the awarding body".into(),
        };
        assert!(matches!(
            apply(&case, &extend("2026-12-21"), now, &ctx),
            Err(TransitionError::ExtensionNotLater { .. })
        ));
        assert!(matches!(
            apply(&case, &extend("2027-02-01"), now, &ctx),
            Err(TransitionError::ExtensionTooLong { .. })
        ));
        let t = apply(&case, &extend("2027-01-04"), now, &ctx).expect("extend");
        assert_eq!(t.case.target_date, Some(d("2027-01-04")));
        assert!(t.effects.contains(&Effect::SendLetter(Letter::Extension)));
    }

    #[test]
    fn the_ladder_climbs_in_order_and_a_response_stops_it() {
        let (p, cal) = (seed_000(), WorkingCalendar::default());
        let ctx = Context {
            procedure: &p,
            calendar: &cal,
        };
        let case = opened(&p, &cal);
        let now = utc("2026-12-22T09:00:00Z");
        assert!(matches!(
            apply(&case, &Event::Escalate { rung: 2 }, now, &ctx),
            Err(TransitionError::RungOutOfOrder { .. })
        ));
        let one = apply(&case, &Event::Escalate { rung: 1 }, now, &ctx).expect("rung 1");
        assert_eq!(one.case.escalation_rung, 1);
        assert!(one.effects.contains(&Effect::SetDeadline {
            kind: DeadlineKind::EscalationRung(1),
            due: utc("2026-12-23T09:00:00Z"),
        }));
        let stopped = apply(&one.case, &Event::StaffResponded, now, &ctx).expect("respond");
        assert_eq!(stopped.case.escalation_rung, 0);
        assert!(stopped
            .effects
            .iter()
            .any(|e| matches!(e, Effect::CancelDeadlines(k) if k.contains(&DeadlineKind::EscalationRung(1)))));
    }

    #[test]
    fn resolution_opens_the_appeal_window_and_appeal_starts_a_stage() {
        let (p, cal) = (seed_000(), WorkingCalendar::default());
        let ctx = Context {
            procedure: &p,
            calendar: &cal,
        };
        let case = opened(&p, &cal);
        let now = utc("2026-12-10T12:00:00Z");
        let resolved = apply(
            &case,
            &Event::Resolve {
                outcome: Outcome::NotUpheld,
            },
            now,
            &ctx,
        )
        .expect("resolve");
        assert_eq!(resolved.case.status, Status::Resolved);
        assert!(resolved.effects.contains(&Effect::SetDeadline {
            kind: DeadlineKind::NextStageWindow,
            due: cal.end_of_day(d("2027-01-10")).expect("date"),
        }));
        assert!(resolved.effects.iter().any(|e| matches!(
            e,
            Effect::SetDeadline {
                kind: DeadlineKind::Feedback,
                ..
            }
        )));
        let formal = apply(&resolved.case, &Event::NextStage, now, &ctx).expect("formal");
        assert_eq!(formal.case.stage.0, "formal");
        assert_eq!(formal.case.status, Status::Open);
        assert_eq!(formal.case.outcome, None);
        let appeal = apply(&formal.case, &Event::NextStage, now, &ctx).expect("appeal");
        assert_eq!(appeal.case.stage.0, "appeal");
        // The MD answers within one calendar month.
        assert_eq!(appeal.case.target_date, Some(d("2027-01-10")));
        assert!(matches!(
            apply(&appeal.case, &Event::NextStage, now, &ctx),
            Err(TransitionError::NoNextStage(_))
        ));
    }

    #[test]
    fn a_closed_case_takes_no_events() {
        let (p, cal) = (seed_000(), WorkingCalendar::default());
        let ctx = Context {
            procedure: &p,
            calendar: &cal,
        };
        let case = opened(&p, &cal);
        let now = utc("2026-12-10T12:00:00Z");
        let closed = apply(&case, &Event::Close, now, &ctx).expect("close");
        for event in [
            Event::Resume,
            Event::NextStage,
            Event::Close,
            Event::Resolve {
                outcome: Outcome::Upheld,
            },
        ] {
            assert!(matches!(
                apply(&closed.case, &event, now, &ctx),
                Err(TransitionError::Closed(_))
            ));
        }
    }

    #[test]
    fn closing_the_window_keeps_the_feedback_request() {
        let (p, cal) = (seed_000(), WorkingCalendar::default());
        let ctx = Context {
            procedure: &p,
            calendar: &cal,
        };
        let now = utc("2026-12-10T12:00:00Z");
        let closed = apply(&opened(&p, &cal), &Event::Close, now, &ctx).expect("close");
        let cancelled: Vec<DeadlineKind> = closed
            .effects
            .iter()
            .flat_map(|e| match e {
                Effect::CancelDeadlines(k) => k.clone(),
                _ => vec![],
            })
            .collect();
        assert!(cancelled.contains(&DeadlineKind::Target));
        assert!(!cancelled.contains(&DeadlineKind::Feedback));
    }

    #[test]
    fn complainant_mail_takes_a_case_further_only_in_the_window() {
        let (p, cal) = (seed_000(), WorkingCalendar::default());
        let ctx = Context {
            procedure: &p,
            calendar: &cal,
        };
        let case = opened(&p, &cal);
        let now = utc("2026-12-10T12:00:00Z");
        let later = utc("2026-12-11T12:00:00Z");
        let end = Some(utc("2027-01-11T00:00:00Z"));
        // A reply to the resolution letter from the complainant, in time.
        let appeal = LaterMail {
            received: later,
            window_ends: end,
            answers_resolution: true,
            answers_feedback: false,
            from_complainant: true,
            doubtful: false,
        };
        let up = |c: &Case, mail: LaterMail| follow_up(c, &mail, &ctx);
        let tell = FollowUp::Tell;
        assert_eq!(up(&case, appeal), tell(Situation::Open));
        let held = apply(
            &case,
            &Event::Hold {
                reason: "r".into(),
                until: None,
            },
            now,
            &ctx,
        )
        .expect("hold")
        .case;
        assert_eq!(up(&held, appeal), tell(Situation::OnHold));
        let resolve = |c: &Case, outcome| {
            apply(c, &Event::Resolve { outcome }, now, &ctx)
                .expect("resolve")
                .case
        };
        let answered = resolve(&case, Outcome::NotUpheld);
        assert_eq!(up(&answered, appeal), FollowUp::TakeFurther);
        // In the window, but not that reply: staff decide.
        for not_it in [
            // Somebody else on the thread.
            LaterMail {
                from_complainant: false,
                ..appeal
            },
            // A reply to the acknowledgement, or a new mail.
            LaterMail {
                answers_resolution: false,
                ..appeal
            },
            // Sent before the response (it crossed with it).
            LaterMail {
                received: utc("2026-12-10T11:00:00Z"),
                ..appeal
            },
            // Looks automatic.
            LaterMail {
                doubtful: true,
                ..appeal
            },
        ] {
            assert!(
                matches!(
                    up(&answered, not_it),
                    FollowUp::Tell(Situation::NotComplainant | Situation::WindowOpen)
                ),
                "{not_it:?}"
            );
        }
        // A reply to the feedback request is feedback while the case is
        // answered; on a case open again at a later stage it is just mail.
        let feedback = LaterMail {
            answers_feedback: true,
            answers_resolution: false,
            ..appeal
        };
        assert_eq!(up(&answered, feedback), tell(Situation::Feedback));
        // Arrived after the window ended (or no window is running).
        let late = LaterMail {
            received: utc("2027-01-11T00:00:01Z"),
            ..appeal
        };
        assert_eq!(up(&answered, late), tell(Situation::TooLate));
        let no_window = LaterMail {
            window_ends: None,
            ..appeal
        };
        assert_eq!(up(&answered, no_window), tell(Situation::TooLate));
        // Closed by the timer before mail that arrived in time was handled:
        // it still counts, and the case can still go on.
        let closed = apply(&answered, &Event::Close, now, &ctx)
            .expect("close")
            .case;
        assert_eq!(up(&closed, appeal), FollowUp::TakeFurther);
        assert_eq!(
            take_further(&closed, later, &ctx).map(|t| t.case.stage),
            Ok(StageName("formal".into()))
        );
        assert_eq!(up(&closed, late), tell(Situation::TooLate));
        assert_eq!(
            up(&resolve(&case, Outcome::Withdrawn), appeal),
            tell(Situation::Withdrawn)
        );
        // At the last stage (the appeal): nothing further to take it to.
        let formal = take_further(&answered, later, &ctx).expect("formal").case;
        assert_eq!(up(&formal, feedback), tell(Situation::Open));
        let last = take_further(&resolve(&formal, Outcome::Upheld), later, &ctx)
            .expect("appeal")
            .case;
        assert_eq!(
            up(&resolve(&last, Outcome::NotUpheld), appeal),
            tell(Situation::Exhausted)
        );
    }

    #[test]
    fn deadline_keys_round_trip() {
        for k in all_deadline_kinds() {
            assert_eq!(DeadlineKind::from_key(&k.as_key()), Some(k));
        }
        assert_eq!(DeadlineKind::from_key("escalation-x"), None);
    }
}
