"""Pure workflow logic: the working-day calendar, the workflow profile, deadlines.

No I/O (beyond reading the packaged default profile), no database, no HTTP. Services ask
:class:`Workflow` whether an action is allowed and where it leads, and compute deadlines
with :func:`compute_deadlines` on a :class:`WorkingCalendar`.
"""

from bridge.workflow.calendar import (
    JAKARTA,
    WorkingCalendar,
    calendar_from_mapping,
    end_of_day,
    format_tanggal,
    local_date,
)
from bridge.workflow.deadlines import (
    CaseTimeline,
    Deadline,
    EscalationStep,
    StageVisit,
    compute_deadlines,
    escalation_due,
    escalation_schedule,
    overall_deadline,
)
from bridge.workflow.defaults import (
    build_workflow,
    default_profile_data,
    default_workflow,
    merge_profile,
)
from bridge.workflow.errors import (
    MissingFields,
    TransitionNotAllowed,
    WorkflowError,
    WorkflowProfileError,
)
from bridge.workflow.profile import (
    ACTIONS,
    STAY,
    ApprovalPosition,
    Move,
    Rule,
    Workflow,
    WorkflowProfile,
    parse_profile,
)

__all__ = [
    "ACTIONS",
    "JAKARTA",
    "STAY",
    "ApprovalPosition",
    "CaseTimeline",
    "Deadline",
    "EscalationStep",
    "MissingFields",
    "Move",
    "Rule",
    "StageVisit",
    "TransitionNotAllowed",
    "Workflow",
    "WorkflowError",
    "WorkflowProfile",
    "WorkflowProfileError",
    "WorkingCalendar",
    "build_workflow",
    "calendar_from_mapping",
    "compute_deadlines",
    "default_profile_data",
    "default_workflow",
    "end_of_day",
    "escalation_due",
    "escalation_schedule",
    "format_tanggal",
    "local_date",
    "merge_profile",
    "overall_deadline",
    "parse_profile",
]
