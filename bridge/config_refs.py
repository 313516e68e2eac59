"""Cross-references inside one deployment file, which no single section can check alone.

``check-config`` calls :func:`check_references` after every section validated on its own:

* an OPD a plugin's table names (any ``opd`` key, e.g. a routing rule's target) is one of
  the ``[[opds]]`` codes or names, as ``case forward --to`` and triage look them up;
* plugin names in ``[plugins] disable`` and ``[plugins] timeouts`` are plugins that can be
  found (a listed module, an installed entry point, or a loaded plugin);
* the notification templates of ``[notifications] template_dir`` ask only for fields a
  notification has (``case.<field>`` of :class:`~bridge.notify.CaseView` and the context
  the core gives).

Roles named in a workflow profile are checked against its roles when the profile is built.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2 import meta, nodes
from pydantic import BaseModel

from bridge.config import ConfigError, Settings
from bridge.hookspecs import PROJECT_NAME
from bridge.notify import CaseView, renderer_from_settings

if TYPE_CHECKING:
    from bridge.plugins import PluginHost

#: What a template may use besides ``case``: the renderer's own variables and the context
#: facts the core passes for some kind (see NotificationRenderer.render).
TEMPLATE_NAMES = frozenset({
    "case", "kind", "regency", "recipients", "recipients_text", "unit", "target",
    "tembusan", "level", "to_role", "reason", "deadline_at", "working_days_left",
    "remote_id", "what", "error", "failures",
})


def check_references(settings: Settings, host: PluginHost) -> None:
    """Raise :class:`ConfigError` naming the first key that refers to nothing."""
    _check_opd_refs(settings, host)
    _check_plugin_names(settings, host)
    _check_templates(settings)


def _opd_refs(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            item = getattr(value, name)
            where = f"{path}.{name}"
            if name == "opd" and isinstance(item, str):
                yield where, item
            else:
                yield from _opd_refs(item, where)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _opd_refs(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _opd_refs(item, f"{path}.{key}")


def _check_opd_refs(settings: Settings, host: PluginHost) -> None:
    known = [o.code for o in settings.opds]
    names = {o.name for o in settings.opds}
    for section, plugin in sorted(host.declared_sections.items()):
        for key, opd in _opd_refs(host.config_of(plugin), section):
            if opd not in known and opd not in names:
                listed = ", ".join(known) or "none: add [[opds]] tables"
                raise ConfigError(settings.source, key,
                                  f"unknown OPD {opd!r}; [[opds]] codes: {listed}")


def _check_plugin_names(settings: Settings, host: PluginHost) -> None:
    options = host.options
    findable = set(host.plugin_names) | set(options.modules)
    if options.entry_points:
        findable |= {ep.name for ep in importlib.metadata.entry_points(group=PROJECT_NAME)}
    for key, names in (("plugins.disable", list(options.disable)),
                       ("plugins.timeouts", list(options.timeouts))):
        for name in names:
            if name not in findable:
                known = ", ".join(sorted(findable)) or "none"
                where = f"{key}.{name}" if key == "plugins.timeouts" else key
                raise ConfigError(settings.source, where,
                                  f"no plugin named {name!r}; plugins found: {known}")


def _check_templates(settings: Settings) -> None:


    renderer = renderer_from_settings(settings)  # raises ConfigError for a bad directory
    if renderer.template_dir is None:
        return
    case_fields = {f.name for f in fields(CaseView)}
    for path in sorted(renderer.template_dir.glob("*.j2")):
        try:
            tree = renderer.env.parse(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, jinja2.TemplateSyntaxError) as exc:
            raise ConfigError(settings.source, "notifications.template_dir",
                              f"template {path.name}: {exc}") from None
        unknown = sorted(meta.find_undeclared_variables(tree) - TEMPLATE_NAMES)
        if unknown:
            raise ConfigError(settings.source, "notifications.template_dir",
                              f"template {path.name} uses unknown variable(s) "
                              f"{', '.join(unknown)}; known: {', '.join(sorted(TEMPLATE_NAMES))}")
        for node in tree.find_all(nodes.Getattr):
            if (isinstance(node.node, nodes.Name) and node.node.name == "case"
                    and node.attr not in case_fields):
                raise ConfigError(settings.source, "notifications.template_dir",
                                  f"template {path.name} uses case.{node.attr}, which a "
                                  f"notification does not have; case fields: "
                                  f"{', '.join(sorted(case_fields))}")
