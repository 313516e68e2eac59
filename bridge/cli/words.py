"""The command line's words for workflow errors: commands a user can type, not the
profile's internal action and field names (``files_complete``, ``forward_body``, ``unit``).

The workflow raises messages in its own terms (the web page and the profiles use them);
:func:`explain` rewrites the known shapes of those messages for a terminal.
"""

from __future__ import annotations

import re

#: Profile action -> the ``lapor-bridge`` command that performs it.
ACTION_COMMANDS: dict[str, str] = {
    "register": "case register",
    "files_complete": "case complete",
    "return_incomplete": "case return",
    "classify": "case classify",
    "dispose": "case dispose",
    "forward_opd": "case forward",
    "forward_body": "case forward",
    "followup": "case followup",
    "approve": "case approve",
    "answer_delivered": "case deliver",
    "satisfied": "case satisfied",
    "not_satisfied": "case not-satisfied",
    "escalate": "case escalate",
    "close": "case close",
    "archive": "case archive",
    "reopen": "case reopen",
}

#: Profile field -> the option that gives it, per action where it differs.
FIELD_FLAGS: dict[str, str] = {
    "unit": "--to",
    "target": "--to",
    "institution_id": "--to (an OPD with a lapor_institution_id)",
    "reason": "--note",
    "content": "--text",
    "severity": "--severity",
    "missing": "--missing",
    "document": "--document",
    "step": "--step",
    "level": "--level",
}
_FLAGS_BY_ACTION: dict[tuple[str, str], str] = {
    ("escalate", "reason"): "--reason",
    ("forward_body", "reason"): "--note",
}


def command_for(action: str) -> str:
    return f"lapor-bridge {ACTION_COMMANDS[action]}" if action in ACTION_COMMANDS else action


def _commands(actions: str) -> str:
    names = [a.strip() for a in actions.split(",") if a.strip() and a.strip() != "(none)"]
    seen: list[str] = []
    for name in names:
        cmd = command_for(name)
        if cmd not in seen:
            seen.append(cmd)
    return ", ".join(seen) or "(nothing)"


_NOT_HERE = re.compile(r"action '(?P<a>\w+)' is not allowed in (?P<where>stage '[^']*' "
                       r"\(.*?\))(?P<term> \(a terminal stage\))?; actions allowed in this "
                       r"stage: (?P<rest>.*)$")
_NOT_ROLE = re.compile(r"role '(?P<r>[^']+)' may not perform '(?P<a>\w+)' in (?P<where>.*?); "
                       r"roles allowed: (?P<roles>.*?); this role may here: (?P<rest>.*)$")
_NEEDS = re.compile(r"action '(?P<a>\w+)' in (?P<where>.*) needs (?P<fields>.*)$")


def explain(message: str) -> str:
    """``message`` with the workflow's action and field names turned into commands and
    options; a message of another shape comes back unchanged."""
    m = _NOT_HERE.search(message)
    if m:
        terminal = m["term"] or ""
        return (f"{message[:m.start()]}`{command_for(m['a'])}` cannot be used in "
                f"{m['where']}{terminal}; what can be done here: {_commands(m['rest'])}")
    m = _NOT_ROLE.search(message)
    if m:
        return (f"{message[:m.start()]}role '{m['r']}' may not use `{command_for(m['a'])}` "
                f"in {m['where']}; roles that may: {m['roles']} (give --role); role "
                f"'{m['r']}' can use here: {_commands(m['rest'])}")
    m = _NEEDS.search(message)
    if m:
        action = m["a"]
        flags = [_FLAGS_BY_ACTION.get((action, f.strip()), FIELD_FLAGS.get(f.strip(), f.strip()))
                 for f in m["fields"].split(",")]
        return (f"{message[:m.start()]}`{command_for(action)}` in {m['where']} needs "
                f"{', '.join(flags)}")
    return message
