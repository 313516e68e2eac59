"""The action forms of the case page: which ones a user sees, what they ask, how a posted
form is checked and handed to :class:`bridge.services.actions.CaseActions`.

Forms are built from the workflow's rules for the case's stage and the user's role, so a
profile that adds a step or renames a label changes the page with no template edit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from starlette.datastructures import FormData, UploadFile

from bridge.config import Settings
from bridge.documents import filetypes
from bridge.errors import BridgeError
from bridge.services.actions import ActionResult, Actor, CaseActions, Upload
from bridge.workflow.errors import TransitionNotAllowed
from bridge.workflow.profile import Rule, Workflow

FieldKind = Literal["text", "textarea", "select", "lines", "files"]

#: Longest texts accepted, in characters (LAPOR! follow-ups can be long; notes less so).
CONTENT_MAX = 20_000
NOTE_MAX = 4_000
SHORT_MAX = 200
LINES_MAX = 20


class FormProblem(BridgeError, ValueError):
    """A posted form that cannot be used; the message is for staff (Bahasa Indonesia)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    kind: FieldKind = "textarea"
    required: bool = False
    max_len: int = NOTE_MAX
    choices: tuple[tuple[str, str], ...] = ()
    default: str = ""
    help: str | None = None
    #: Workflow fields (Transition.requires) this input provides.
    provides: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActionForm:
    key: str  # the rule's key: unique per profile, stable in URLs
    action: str
    label: str
    fields: tuple[FormField, ...]
    submit: str
    #: What the action sends to LAPOR! (None: stays local).
    to_lapor: str | None = None
    note: str | None = None
    #: Why the form cannot be used (e.g. no OPD configured); shown instead of the form.
    unavailable: str | None = None
    step: str | None = None
    document: str | None = None
    #: Which of the user's roles may use the form, in the account's order; the user picks
    #: one when there are several (the first is the default).
    roles: tuple[str, ...] = ()


#: The form field naming the role a user acts in (see :func:`forms_for_roles`).
ROLE_FIELD = "peran"


def _note(label: str = "Catatan", required: bool = False) -> FormField:
    return FormField("catatan", label, required=required, provides=("reason",))


def _scans() -> FormField:
    """Scans and signed copies on approve, deliver and forward (PDF or images)."""
    return FormField("lampiran", "Pindaian / salinan bertanda tangan (PDF atau gambar)",
                     kind="files")


def _opd_choices(settings: Settings, kind: str) -> tuple[tuple[str, str], ...]:
    return tuple((o.code, f"{o.name} ({o.code})") for o in settings.opds if o.kind == kind)


def _required(fields: Sequence[FormField], rule: Rule) -> tuple[FormField, ...]:
    """Fields that provide something the rule requires become required."""
    out = []
    for f in fields:
        if not f.required and any(p in rule.requires for p in f.provides):
            f = replace(f, required=True)
        out.append(f)
    return tuple(out)


def build_forms(workflow: Workflow, settings: Settings, stage: str, role: str,
                approvals_done: Mapping[str, Sequence[str]], on_lapor: bool
                ) -> list[ActionForm]:
    """The forms ``role`` may use on a case in ``stage`` (empty for an unknown stage)."""
    if stage not in workflow.stages or role not in workflow.roles:
        return []
    allowed = set(workflow.allowed_actions(stage, role, approvals_done=approvals_done))
    owned_steps = {r.step for r in workflow.rules if r.step}
    free_steps = tuple((name, kind.label) for name, kind in workflow.profile.step_kinds.items()
                       if name not in owned_steps)
    forms: list[ActionForm] = []
    for rule in workflow.rules_from(stage, role):
        if rule.action not in allowed:
            continue
        built = _form_for(workflow, settings, rule, role, approvals_done, on_lapor, free_steps)
        if built is not None:
            forms.append(replace(built, fields=_required(built.fields, rule)))
    return forms


def forms_for_roles(workflow: Workflow, settings: Settings, stage: str,
                    roles: Sequence[str], approvals_done: Mapping[str, Sequence[str]],
                    on_lapor: bool) -> list[ActionForm]:
    """The forms of each of ``roles`` (an acting official, Plt, holds two or more), once
    each, in the order of the first role that has it; ``ActionForm.roles`` says which of
    ``roles`` may use it. A form two roles share is the first role's form (an approval
    step belongs to one role only, so the fields never differ in practice)."""
    merged: dict[str, ActionForm] = {}
    for role in roles:
        for f in build_forms(workflow, settings, stage, role, approvals_done, on_lapor):
            have = merged.get(f.key)
            merged[f.key] = replace(have or f, roles=(*(have.roles if have else ()), role))
    return list(merged.values())


def _form_for(workflow: Workflow, settings: Settings, rule: Rule, role: str,
              approvals_done: Mapping[str, Sequence[str]], on_lapor: bool,
              free_steps: tuple[tuple[str, str], ...]) -> ActionForm | None:
    label = rule.label or rule.action

    def form(fields: Sequence[FormField], *, to_lapor: str | None = None,
             unavailable: str | None = None, step: str | None = None) -> ActionForm:
        return ActionForm(key=rule.key, action=rule.action, label=label, submit=label,
                          fields=tuple(fields), to_lapor=to_lapor, unavailable=unavailable,
                          step=step)

    def lapor(text: str) -> str | None:
        return text if on_lapor else None

    a = rule.action
    if a in ("register", "files_complete", "archive", "satisfied"):
        return form((_note(),))
    if a in ("close", "reopen"):
        return form((_note("Alasan"),))
    if a == "not_satisfied":
        return form((_note("Alasan pelapor tidak puas"),))
    if a == "return_incomplete":
        return form((
            FormField("kekurangan", "Berkas yang harus dilengkapi pelapor", required=True,
                      provides=("missing",)),
        ), to_lapor=lapor("Pemberitahuan kekurangan berkas dikirim ke pelapor melalui LAPOR!"))
    if a == "classify":
        classes = tuple((n, c.label) for n, c in workflow.profile.classes.items())
        severity = (FormField("klasifikasi", "Klasifikasi", kind="select", required=True,
                              choices=classes, provides=("severity",)) if classes else
                    FormField("klasifikasi", "Klasifikasi", kind="text", required=True,
                              max_len=32, provides=("severity",)))
        return form((severity, _note()))
    if a == "dispose":
        return form((
            FormField("tujuan", "Disposisi kepada (unit atau pejabat)", kind="text",
                      required=True, max_len=SHORT_MAX, provides=("unit",)),
            _note("Arahan disposisi"),
        ))
    if a in ("forward_opd", "forward_body"):
        kind = "body" if a == "forward_body" else "opd"
        choices = _opd_choices(settings, kind)
        what = "OPD tujuan" if kind == "opd" else "Instansi tujuan"
        unavailable = None if choices else (
            "Belum ada " + ("OPD" if kind == "opd" else "instansi lain")
            + " di konfigurasi ([[opds]]); hubungi admin.")
        return form((
            FormField("opd", what, kind="select", required=True, choices=choices,
                      provides=("target", "institution_id")),
            FormField("tembusan", "Tembusan (satu per baris)", kind="lines",
                      default="Pelapor", max_len=SHORT_MAX),
            _note("Alasan penerusan" if kind == "opd" else "Alasan bukan wewenang"),
            _scans(),
        ), to_lapor=lapor("Penerusan dan tembusan dicatat di LAPOR!, dengan surat penerusan "
                          "(PDF, bernomor) dan lampirannya."),
            unavailable=unavailable)
    if a == "followup" and rule.step is None:
        steps = (("", "Tindak lanjut kepada pelapor (dikirim ke LAPOR!)" if on_lapor
                  else "Tindak lanjut kepada pelapor"),
                 *((n, f"{lbl} (catatan internal)") for n, lbl in free_steps))
        return form((
            FormField("jenis", "Jenis", kind="select", choices=steps, default=""),
            FormField("isi", "Isi", required=True, max_len=CONTENT_MAX,
                      provides=("content", "reason")),
            FormField("lampiran", "Lampiran", kind="files"),
        ), to_lapor=lapor("Tindak lanjut dikirim ke LAPOR! (kecuali catatan internal)."))
    if a == "followup":
        kind_label = workflow.profile.step_kinds.get(rule.step or "")
        return form((
            FormField("isi", kind_label.label if kind_label else "Catatan", required=True,
                      max_len=CONTENT_MAX, provides=("content", "reason")),
        ), step=rule.step)
    if a == "approve":
        return _approve_form(workflow, rule, role, approvals_done, form(()))
    if a == "answer_delivered":
        return form((
            FormField("isi", "Isi jawaban (ditampilkan kepada pelapor)", required=True,
                      max_len=CONTENT_MAX, provides=("content",)),
            _scans(),
        ), to_lapor=lapor("Jawaban dikirim ke LAPOR! sebagai tindak lanjut, dengan nomor dan "
                          "PDF surat jawaban/BAPP yang telah ditandatangani."))
    if a == "escalate":
        levels = tuple((lv.name, lv.label) for lv in workflow.profile.deadlines.escalation.levels)
        level = (FormField("tingkat", "Eskalasi ke", kind="select", required=True,
                           choices=levels) if levels else
                 FormField("tingkat", "Eskalasi ke", kind="text", required=True,
                           max_len=SHORT_MAX))
        return form((level, _note("Alasan eskalasi", required=True)))
    return None


def _approve_form(workflow: Workflow, rule: Rule, role: str,
                  approvals_done: Mapping[str, Sequence[str]], base: ActionForm
                  ) -> ActionForm | None:
    document = rule.document
    if document is None:
        return replace(base, fields=(_note(),))
    try:
        position = workflow.next_approval_step(document, approvals_done.get(document, ()))
        chain = workflow.approval_chain(document)
    except TransitionNotAllowed:
        return None
    if position is None or position.role != role:
        return None
    kind = "Tanda tangan" if position.kind == "tanda_tangan" else "Paraf"
    fields: list[FormField] = []
    if position.assigns_number:
        fields.append(FormField("nomor", "Nomor dokumen", kind="text", max_len=100,
                                help="Kosongkan untuk nomor otomatis dari buku register."))
    fields.append(_note())
    fields.append(_scans())
    step_note = f"Langkah {position.index + 1} dari {len(chain.steps)}"
    return replace(base, label=f"{kind}: {chain.label}", submit=f"{kind} {chain.label}",
                   fields=tuple(fields), note=step_note, document=document)


def approval_status(workflow: Workflow, approvals_done: Mapping[str, Sequence[str]],
                    stage: str) -> list[str]:
    """Lines such as "Surat Jawaban: menunggu tanda tangan Kepala Dinas" for approvals
    that can happen in ``stage``."""
    out: list[str] = []
    if stage not in workflow.stages:
        return out
    for rule in workflow.rules_from(stage):
        if rule.action != "approve" or not rule.document:
            continue
        try:
            chain = workflow.approval_chain(rule.document)
            nxt = workflow.next_approval_step(rule.document,
                                              approvals_done.get(rule.document, ()))
        except TransitionNotAllowed:
            continue
        if nxt is None:
            out.append(f"{chain.label}: lengkap")
        else:
            kind = "tanda tangan" if nxt.kind == "tanda_tangan" else "paraf"
            out.append(f"{chain.label}: menunggu {kind} {workflow.role_label(nxt.role)}")
    return out


# -- reading a posted form ------------------------------------------------------------


def _text(form: FormData, f: FormField) -> str:
    raw = form.get(f.name)
    if raw is None:
        value = ""
    elif isinstance(raw, str):
        value = raw
    else:
        raise FormProblem(f"«{f.label}» harus berupa teks, bukan berkas.", f.name)
    # PostgreSQL refuses NUL in text; browsers never send it, so it is noise or an attack.
    value = value.replace("\x00", "").replace("\r\n", "\n").strip()
    if len(value) > f.max_len:
        raise FormProblem(f"«{f.label}» terlalu panjang: {len(value):,} karakter, paling "
                          f"banyak {f.max_len:,}.".replace(",", "."), f.name)
    if f.required and not value:
        raise FormProblem(f"«{f.label}» wajib diisi.", f.name)
    if f.kind == "select" and value and value not in {c[0] for c in f.choices}:
        raise FormProblem(f"Pilihan «{f.label}» tidak dikenal: {value[:50]!r}.", f.name)
    if f.kind == "select" and f.required and not value:
        raise FormProblem(f"Pilih «{f.label}».", f.name)
    return value


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB".replace(".", ",")
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bait"


async def read_uploads(form: FormData, name: str, max_files: int, max_bytes: int
                       ) -> list[Upload]:
    files = [f for f in form.getlist(name) if isinstance(f, UploadFile) and f.filename]
    if len(files) > max_files:
        raise FormProblem(f"Paling banyak {max_files} berkas lampiran sekaligus.", name)
    uploads = []
    for f in files:
        content = await f.read()
        if not content:
            raise FormProblem(f"Lampiran «{f.filename}» kosong.", name)
        if len(content) > max_bytes:
            raise FormProblem(f"Lampiran «{f.filename}» berukuran {_size(len(content))}, "
                              f"melebihi batas {_size(max_bytes)}.", name)
        accepted = filetypes.checked((f.filename or "lampiran")[:240], content)
        if accepted is None:
            raise FormProblem(f"Lampiran «{f.filename}» tidak dapat diterima: hanya berkas "
                              f"{filetypes.ACCEPTED}. Jenis berkas dikenali dari isinya, "
                              "bukan dari namanya. Tidak ada yang disimpan.", name)
        uploads.append(Upload(name=accepted[0], content=content, mime=accepted[1]))
    return uploads


def read_values(form: FormData, spec: ActionForm) -> dict[str, str]:
    """The form's text values, checked against ``spec`` (raises :class:`FormProblem`)."""
    values: dict[str, str] = {}
    for f in spec.fields:
        if f.kind == "files":
            continue
        values[f.name] = _text(form, f)
        if f.kind == "lines":
            lines = [ln.strip() for ln in values[f.name].split("\n") if ln.strip()]
            if len(lines) > LINES_MAX:
                raise FormProblem(f"«{f.label}»: paling banyak {LINES_MAX} baris.", f.name)
    return values


def prefill(form: FormData, spec: ActionForm) -> dict[str, str]:
    """What the user typed, to put back in the form when it is shown again."""
    out = {}
    for f in spec.fields:
        raw = form.get(f.name)
        if isinstance(raw, str) and f.kind != "files":
            out[f.name] = raw[: f.max_len * 2]
    role = form.get(ROLE_FIELD)
    if isinstance(role, str) and role in spec.roles:
        out[ROLE_FIELD] = role
    return out


def run_action(actions: CaseActions, spec: ActionForm, case_id: int, actor: Actor,
               values: Mapping[str, str], uploads: Sequence[Upload], version: int
               ) -> ActionResult:
    """Hand a checked form to the service layer (the same calls as the CLI)."""
    a = spec.action
    note = values.get("catatan") or None
    v = version
    if a == "register":
        return actions.register(case_id, actor, note, expected_version=v)
    if a == "files_complete":
        return actions.files_complete(case_id, actor, note, expected_version=v)
    if a == "return_incomplete":
        return actions.return_incomplete(case_id, actor, values["kekurangan"],
                                         expected_version=v)
    if a == "classify":
        return actions.classify(case_id, actor, values["klasifikasi"], note,
                                expected_version=v)
    if a == "dispose":
        return actions.dispose(case_id, actor, values["tujuan"], note, expected_version=v)
    if a in ("forward_opd", "forward_body"):
        copies = [ln.strip() for ln in values.get("tembusan", "").split("\n") if ln.strip()]
        return actions.forward(case_id, actor, values["opd"], copies, note,
                               expected_version=v, attachments=uploads)
    if a == "followup":
        step = spec.step or values.get("jenis") or None
        if step:
            return actions.record_step(case_id, actor, step, values["isi"],
                                       expected_version=v)
        return actions.followup(case_id, actor, values["isi"], uploads, expected_version=v)
    if a == "approve":
        return actions.approve(case_id, actor, spec.document or "",
                               values.get("nomor") or None, note, expected_version=v,
                               attachments=uploads)
    if a == "answer_delivered":
        return actions.answer_delivered(case_id, actor, values["isi"], expected_version=v,
                                        attachments=uploads)
    if a in ("satisfied", "not_satisfied"):
        return actions.satisfaction(case_id, actor, a == "satisfied", note,
                                    expected_version=v)
    if a == "escalate":
        return actions.escalate(case_id, actor, values["tingkat"], values["catatan"],
                                expected_version=v)
    if a == "close":
        return actions.close(case_id, actor, note, expected_version=v)
    if a == "archive":
        return actions.archive(case_id, actor, note, expected_version=v)
    if a == "reopen":
        return actions.reopen(case_id, actor, note, expected_version=v)
    raise FormProblem(f"Tindakan «{spec.label}» belum dapat dilakukan dari halaman ini.")
