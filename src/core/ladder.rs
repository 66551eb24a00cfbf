//! What a due timer means for its case: the escalation ladder and the other
//! clocks (seed 000 §8).
//!
//! - The target date passes with the case still open: rung 1, the
//!   department head. Each rung has the procedure's escalation window to
//!   respond; when it runs out with no staff response, the next rung (senior
//!   manager, then the Managing Director, the last).
//! - A staff response, an extension or a hold stops the climb (that is in
//!   [`super::case::apply`]); a timer left over from before is then spent.
//! - Escalation emails go in working time only when the procedure says so:
//!   a timer due at 02:00 or on a Sunday waits for the next working morning.
//!   The same holds for the other mail a timer sends (the resume letter, the
//!   overdue-acknowledgement notice), so nobody is mailed in the night.
//!
//! Pure: `now` is a parameter, and the answer depends only on the case, the
//! timer and the calendar.

use super::calendar::CalendarError;
use super::case::{Case, Context, DeadlineKind, Event, Status, TOP_RUNG};
use chrono::{DateTime, Utc};

/// What to do about a timer that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DueAction {
    /// Apply this event to the case (the timer is spent).
    Apply(Event),
    /// Not yet: the timer waits until this instant (working time).
    Wait(DateTime<Utc>),
    /// The acknowledgement has not gone out in time: tell QC.
    AcknowledgementOverdue,
    /// The feedback request is due.
    Feedback,
    /// The case has moved on; the timer is spent with nothing to do.
    Spent,
}

/// The decision for timer `kind` of `case`, due now or earlier.
pub fn on_due(
    case: &Case,
    kind: DeadlineKind,
    now: DateTime<Utc>,
    ctx: &Context,
) -> Result<DueAction, CalendarError> {
    let action = match kind {
        DeadlineKind::Target if case.status == Status::Open && case.escalation_rung == 0 => {
            DueAction::Apply(Event::Escalate { rung: 1 })
        }
        DeadlineKind::EscalationRung(n)
            if case.status == Status::Open && case.escalation_rung == n && n < TOP_RUNG =>
        {
            DueAction::Apply(Event::Escalate { rung: n + 1 })
        }
        DeadlineKind::HoldUntil if case.status == Status::OnHold => DueAction::Apply(Event::Resume),
        DeadlineKind::NextStageWindow if case.status == Status::Resolved => {
            // No mail: the window simply closes.
            return Ok(DueAction::Apply(Event::Close));
        }
        DeadlineKind::Acknowledge if case.acknowledged_at.is_none() => {
            DueAction::AcknowledgementOverdue
        }
        DeadlineKind::Feedback if matches!(case.status, Status::Resolved | Status::Closed) => {
            DueAction::Feedback
        }
        _ => return Ok(DueAction::Spent),
    };
    if ctx.procedure.escalate_in_working_time && !ctx.calendar.is_working_time(now) {
        return Ok(DueAction::Wait(ctx.calendar.next_working_time(now)?));
    }
    Ok(action)
}

/// Who a rung goes to, as the procedure names them.
pub fn rung_title(rung: u8) -> &'static str {
    match rung {
        1 => "department head",
        2 => "senior manager",
        _ => "Managing Director",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::calendar::WorkingCalendar;
    use crate::core::case::{apply, open, CaseRef, Effect};
    use crate::core::procedure::{Answerer, Procedure, Span, Stage, StageName};

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("instant")
    }

    fn procedure(window: Span) -> Procedure {
        Procedure {
            stages: vec![Stage {
                name: StageName("informal".into()),
                raise_within: None,
                acknowledge_within: Span::Hours(48),
                respond_within: Span::WorkingDays(20),
                max_extension: None,
                escalate_within: None,
                answered_by: Answerer::DepartmentHead,
            }],
            escalation_window: window,
            escalate_in_working_time: true,
            feedback_after: None,
        }
    }

    /// Runs the ladder as the scheduler would: every timer at its due
    /// instant, waiting when told to; returns (instant, rung) of each climb.
    fn climb(case: Case, target_due: DateTime<Utc>, ctx: &Context) -> Vec<(DateTime<Utc>, u8)> {
        let mut out = Vec::new();
        let mut case = case;
        let mut timer = Some((DeadlineKind::Target, target_due));
        while let Some((kind, due)) = timer.take() {
            match on_due(&case, kind, due, ctx).expect("on_due") {
                DueAction::Wait(at) => {
                    assert!(at > due, "waits forward");
                    timer = Some((kind, at));
                }
                DueAction::Apply(event) => {
                    let t = apply(&case, &event, due, ctx).expect("apply");
                    out.push((due, t.case.escalation_rung));
                    timer = t.effects.iter().find_map(|e| match e {
                        Effect::SetDeadline { kind, due } => Some((*kind, *due)),
                        _ => None,
                    });
                    case = t.case;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        out
    }

    fn opened(ctx: &Context, at: &str) -> Case {
        open(CaseRef::new("OPP", 2027, 1), utc(at), ctx)
            .expect("open")
            .case
    }

    #[test]
    fn the_ladder_waits_for_working_mornings_across_easter_and_dst() {
        // Target Thursday 25 March 2027: it passes at midnight into Good
        // Friday; then a weekend with the clocks going forward (Sunday 28
        // March) and Easter Monday. Rung 1 goes on Tuesday 30 March at
        // 09:00 BST (08:00 UTC); 24 clock hours later is Wednesday 09:00
        // BST; then Thursday 09:00 BST.
        let (p, cal) = (procedure(Span::Hours(24)), WorkingCalendar::default());
        let ctx = Context {
            procedure: &p,
            calendar: &cal,
        };
        let case = opened(&ctx, "2027-02-24T10:00:00Z");
        assert_eq!(case.target_date, Some("2027-03-24".parse().expect("d")));
        let case = Case {
            target_date: Some("2027-03-25".parse().expect("d")),
            ..case
        };
        let due = cal
            .end_of_day("2027-03-25".parse().expect("d"))
            .expect("eod");
        assert_eq!(
            climb(case, due, &ctx),
            vec![
                (utc("2027-03-30T08:00:00Z"), 1),
                (utc("2027-03-31T08:00:00Z"), 2),
                (utc("2027-04-01T08:00:00Z"), 3),
            ]
        );
    }

    #[test]
    fn a_window_ending_on_friday_evening_waits_for_monday_and_working_hours_count_days() {
        let cal = WorkingCalendar::default();
        // Clock hours: rung 1 on Friday 4 December 2026 at 16:30 GMT; 24
        // hours later is Saturday: rung 2 waits for Monday 09:00.
        let p = procedure(Span::Hours(24));
        let ctx = Context {
            procedure: &p,
            calendar: &cal,
        };
        let case = opened(&ctx, "2026-11-02T10:00:00Z");
        let climbs = climb(case.clone(), utc("2026-12-04T16:30:00Z"), &ctx);
        assert_eq!(climbs[0], (utc("2026-12-04T16:30:00Z"), 1));
        assert_eq!(climbs[1], (utc("2026-12-07T09:00:00Z"), 2));
        // Working hours: 24 working hours from Friday 16:30 are the last
        // half hour of Friday, then Monday, Tuesday and Wednesday until
        // 16:30 (three 8-hour days make 24 hours; 0.5 + 8 + 8 + 7.5).
        let p = procedure(Span::WorkingHours(24));
        let ctx = Context {
            procedure: &p,
            calendar: &cal,
        };
        let climbs = climb(case, utc("2026-12-04T16:30:00Z"), &ctx);
        assert_eq!(climbs[1], (utc("2026-12-09T16:30:00Z"), 2));
    }

    #[test]
    fn spent_timers_do_nothing() {
        let (p, cal) = (procedure(Span::Hours(24)), WorkingCalendar::default());
        let ctx = Context {
            procedure: &p,
            calendar: &cal,
        };
        let now = utc("2026-12-22T10:00:00Z");
        let case = opened(&ctx, "2026-11-23T10:00:00Z");
        // Rung 2's timer when the case is at rung 0 (a response stopped it).
        assert_eq!(
            on_due(&case, DeadlineKind::EscalationRung(2), now, &ctx),
            Ok(DueAction::Spent)
        );
        // The top rung has no successor.
        let top = Case {
            escalation_rung: TOP_RUNG,
            ..case.clone()
        };
        assert_eq!(
            on_due(&top, DeadlineKind::EscalationRung(TOP_RUNG), now, &ctx),
            Ok(DueAction::Spent)
        );
        let resolved = Case {
            status: Status::Resolved,
            ..case.clone()
        };
        assert_eq!(
            on_due(&resolved, DeadlineKind::Target, now, &ctx),
            Ok(DueAction::Spent)
        );
        assert_eq!(
            on_due(&resolved, DeadlineKind::NextStageWindow, now, &ctx),
            Ok(DueAction::Apply(Event::Close))
        );
        // Not acknowledged in time: QC is told (in working time).
        assert_eq!(
            on_due(&case, DeadlineKind::Acknowledge, now, &ctx),
            Ok(DueAction::AcknowledgementOverdue)
        );
        assert_eq!(
            on_due(
                &case,
                DeadlineKind::Acknowledge,
                utc("2026-12-26T10:00:00Z"),
                &ctx
            ),
            Ok(DueAction::Wait(utc("2026-12-29T09:00:00Z")))
        );
    }
}
