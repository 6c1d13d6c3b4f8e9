"""The registry as data: every entity of an app with its topics, schedule, policies and models.

:func:`build_registry_snapshot` reads an app's registrations (no serve, no I/O) into a
JSON-safe dict, for tests and tools; :func:`format_registry_table` and
:func:`format_registry_json` render one (``triolette registry module:app`` prints them).
Names given by a ``name=`` callable are expanded from the settings when they can be built;
otherwise the registration is listed once, named ``<deferred>``, its topics holding a
``{name}`` placeholder. No trio here.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Iterator, Sequence
from typing import Any

from triolette.actors.spec import DeviceSpec
from triolette.core.deferred import SettingRef, is_deferred
from triolette.core.errors import RegistrationError
from triolette.core.kinds import DeviceKind
from triolette.core.topics import Topics
from triolette.runtime.expansion import expand
from triolette.runtime.registration import Registration

if typing.TYPE_CHECKING:
    from triolette.runtime.app import App

DEFERRED = "<deferred>"
"""What the snapshot shows for a value the settings decide and that is not known here."""
NAME_PLACEHOLDER = "{name}"
"""The device level of a ``<deferred>`` entity's topics."""
SNAPSHOT_VERSION = 1

_FROM_APP: Any = object()


def build_registry_snapshot(app: App, *, settings: Any = _FROM_APP) -> dict[str, Any]:
    """The app and each of its entities as a JSON-safe dict (see the registry guide).

    ``settings`` default to ``app.settings`` (``None`` for an app without a settings class, or
    whose settings could not be built). A registration that the settings decide (a ``name=``,
    ``enabled=`` or ``interval=`` callable) is expanded with them; when that fails it is
    listed as declared, under the name ``<deferred>``. Never raises for a deferred option.
    """
    if settings is _FROM_APP:
        settings = app.settings
    prefix = app.topics.prefix
    entities = [
        entity
        for registration in app.registry.registrations
        for entity in _entities(registration, settings, prefix)
    ]
    return {
        "snapshot_version": SNAPSHOT_VERSION,
        "app": {
            "name": app.name,
            "version": app.version,
            "description": app.description,
            "topic_prefix": prefix,
            "status_topic": app.topics.status,
            "settings": None if app.settings_class is None else _qualname(app.settings_class),
        },
        "entities": entities,
        "adapters": [
            {
                "port": _type_name(port),
                "implementation": _type_name(app.registry.adapters.implementation_of(port)),
                "dry_run": app.registry.adapters.has_twin(port),
            }
            for port in app.registry.adapters.ports
        ],
    }


def _entities(registration: Registration, settings: Any, prefix: str) -> Iterator[dict[str, Any]]:
    """One entity per device ``registration`` makes with ``settings``, or one deferred."""
    if registration.is_static:
        yield _entity(registration, registration.spec, prefix, enabled=True)
        return
    try:
        specs = expand([registration], settings)
    except RegistrationError:
        yield _entity(registration, registration.spec, prefix, enabled=None)
        return
    if not specs and registration.name_spec is None:  # enabled= decided no
        yield _entity(registration, registration.spec, prefix, enabled=False)
    for spec in specs:
        yield _entity(registration, spec, prefix, enabled=True)


def _entity(
    registration: Registration, spec: DeviceSpec, prefix: str, *, enabled: bool | None
) -> dict[str, Any]:
    """One entity; ``enabled=None``: the settings decide its name or options (not known)."""
    known = enabled is not None or registration.name_spec is None
    name = spec.name if known else DEFERRED
    level = spec.name if known else NAME_PLACEHOLDER
    topics = Topics(prefix, root=level if spec.is_root else None)
    takes_set = spec.accepts_commands or "mqtt" in spec.triggers
    return {
        "name": name,
        "kind": spec.kind.value,
        "function": _qualname(registration.func),
        "root": spec.is_root,
        "enabled": _enabled(registration, enabled),
        "topics": {
            "state": topics.state(level),
            "availability": topics.availability(level),
            "set": topics.command(level) if takes_set else None,
            "error": topics.error(level),
        },
        "schedule": _schedule(registration, spec, resolved=enabled is not None),
        "publish": spec.publish,
        "strategy": None if spec.strategy is None else repr(spec.strategy),
        "persist": None if spec.persist is None else repr(spec.persist),
        "retry": _retry(spec),
        "circuit_breaker": (
            None if spec.circuit_breaker is None else {"threshold": spec.circuit_breaker.threshold}
        ),
        "triggerable": sorted(spec.triggers),
        "timeout": spec.timeout,
        "heartbeat": spec.heartbeat,
        "restart": spec.restart,
        "group": spec.group,
        "asyncio": spec.asyncio,
        "init": None if registration.init is None else _qualname(registration.init),
        "stream": _stream(spec),
        "state_model": _model(spec.state_model),
        "payload_model": _model(spec.payload_model),
        "state_version": spec.state_version,
        "discoverable": registration.discoverable,
        "summary": registration.summary,
        "behavior": list(registration.behavior),
        "effects": list(registration.effects),
        "tags": list(registration.tags),
        "dependencies": dependencies(registration.func),
    }


def _enabled(registration: Registration, enabled: bool | None) -> bool | str:
    """``enabled`` as expanded; unexpanded, ``True`` unless an ``enabled=`` callable decides."""
    if enabled is not None:
        return enabled
    return DEFERRED if is_deferred(registration.enabled) else True


def _schedule(registration: Registration, spec: DeviceSpec, *, resolved: bool) -> Any:
    """How a telemetry's cycles are timed (``None`` for the other kinds)."""
    if spec.kind is not DeviceKind.TELEMETRY:
        return None
    schedule: dict[str, Any] = {}
    if spec.schedule is not None:
        schedule["cron"] = spec.schedule.expression
    elif spec.interval is not None and (resolved or not is_deferred(registration.interval)):
        schedule["interval"] = spec.interval
    elif isinstance(registration.interval, SettingRef):
        schedule["interval"] = {"setting_ref": registration.interval.path}
    else:
        schedule["interval"] = DEFERRED
    if spec.min_interval is not None:
        schedule["min_interval"] = spec.min_interval
    return schedule


def _retry(spec: DeviceSpec) -> dict[str, Any] | None:
    retry = spec.retry
    if retry is None:
        return None
    return {
        "retries": retry.retries,
        "retry_on": [_qualname(kind) for kind in retry.retry_on],
        "backoff": repr(retry.backoff),
    }


def _stream(spec: DeviceSpec) -> dict[str, Any] | None:
    options = spec.stream
    if options is None:
        return None
    return {
        "item": _type_name(options.item),
        "maxsize": options.maxsize,
        "backpressure": options.backpressure,
        "stale_after": options.stale_after,
        "feeds": list(options.feeds),
    }


def _model(model: type | None) -> dict[str, Any] | None:
    """A model's name and JSON schema (its definitions under ``$defs``)."""
    if model is None:
        return None
    return {"name": _qualname(model), "schema": model_schema(model)}


def model_schema(model: type, ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """The JSON schema of a pydantic model class, or a generic object for another class.

    ``ref_template`` says where references to nested models point (pydantic's option).
    """
    schema = getattr(model, "model_json_schema", None)
    if schema is None:
        return {"type": "object", "title": _qualname(model)}
    result: dict[str, Any] = schema(ref_template=ref_template)
    return result


def dependencies(function: Any) -> list[list[str]]:
    """``[[parameter, type], ...]`` of a handler: what it asks to be given."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation that cannot be resolved here: show it as written
        hints = {}
    found = []
    for parameter in inspect.signature(function).parameters.values():
        annotation = hints.get(parameter.name, parameter.annotation)
        shown = "" if annotation is inspect.Parameter.empty else _type_name(annotation)
        found.append([parameter.name, shown])
    return found


def _qualname(thing: Any) -> str:
    return str(getattr(thing, "__qualname__", None) or repr(thing))


def _type_name(annotation: Any) -> str:
    """``DeviceStore``, ``Meter | None``, ``Stream[Reading]``: a type as a reader writes it."""
    if annotation is None or annotation is type(None):
        return "None"
    if isinstance(annotation, str):
        return annotation
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(argument) for argument in arguments)
    if origin is not None and arguments:
        return f"{_type_name(origin)}[{', '.join(_type_name(a) for a in arguments)}]"
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "").replace("collections.abc.", "")


# -- rendering ---------------------------------------------------------------------------------

_COLUMNS = ("NAME", "KIND", "SCHEDULE", "POLICIES", "MODELS")


def format_registry_json(snapshot: dict[str, Any]) -> str:
    """The snapshot as indented JSON (keys in their order), ending without a newline."""
    return json.dumps(snapshot, indent=2, ensure_ascii=False)


def format_registry_table(snapshot: dict[str, Any]) -> str:
    """The snapshot as a text table: one row per entity (kind, schedule, policies, models),
    then each entity's handler, topics and metadata, one line each (no trailing newline)."""
    app = snapshot["app"]
    lines = [
        f"{app['name']} {app['version']}: {app['description']}",
        f"status topic {app['status_topic']}",
        "",
    ]
    rows = [_COLUMNS, *(_row(entity) for entity in snapshot["entities"])]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    if not snapshot["entities"]:
        lines.append("(no entities)")
    details = [line for entity in snapshot["entities"] for line in _details(entity)]
    if details:
        lines += ["", *details]
    for adapter in snapshot.get("adapters", ()):
        twin = " (with a dry-run twin)" if adapter["dry_run"] else ""
        lines.append(f"adapter {adapter['port']}: {adapter['implementation']}{twin}")
    return "\n".join(lines)


def _row(entity: dict[str, Any]) -> tuple[str, ...]:
    kind = entity["kind"] + (" (root)" if entity["root"] else "")
    if entity["enabled"] is False:
        kind += " (disabled)"
    elif DEFERRED in (entity["name"], entity["enabled"]):
        kind += " (settings decide)"
    return (
        entity["name"],
        kind,
        _schedule_text(entity["schedule"]),
        ", ".join(_policies(entity)) or "-",
        ", ".join(_models(entity)) or "-",
    )


def _topics(topics: dict[str, str | None]) -> str:
    """``p/dev/{state,availability,error,set}``: the entity's topics under their common base."""
    present = [(kind, topic) for kind, topic in topics.items() if topic is not None]
    base = present[0][1].rsplit("/", 1)[0]
    return f"{base}/{{{','.join(kind for kind, _ in present)}}}"


def _schedule_text(schedule: dict[str, Any] | None) -> str:
    if schedule is None:
        return "-"
    if "cron" in schedule:
        text = f"cron {schedule['cron']}"
    else:
        interval = schedule["interval"]
        if isinstance(interval, dict):
            text = f"every setting {interval['setting_ref']}"
        elif isinstance(interval, int | float):
            text = f"every {interval:g}s"
        else:
            text = f"every {interval}"
    if "min_interval" in schedule:
        text += f" (min {schedule['min_interval']:g}s)"
    return text


def _policies(entity: dict[str, Any]) -> Iterator[str]:
    if entity["publish"] != "now":
        yield f"publish={entity['publish']}"
    if entity["strategy"]:
        yield f"publish={entity['strategy']}"
    if entity["persist"]:
        yield f"persist={entity['persist']}"
    if entity["retry"]:
        yield f"retry={entity['retry']['retries']}"
    if entity["circuit_breaker"]:
        yield f"breaker={entity['circuit_breaker']['threshold']}"
    if entity["triggerable"]:
        yield f"trigger={'+'.join(entity['triggerable'])}"
    for option in ("timeout", "heartbeat"):
        if entity[option] is not None:
            yield f"{option}={entity[option]:g}s"
    if entity["restart"] != "transient":
        yield f"restart={entity['restart']}"
    if entity["group"]:
        yield f"group={entity['group']}"


def _models(entity: dict[str, Any]) -> Iterator[str]:
    if entity["state_model"]:
        yield f"state={entity['state_model']['name']}"
    if entity["payload_model"]:
        yield f"payload={entity['payload_model']['name']}"
    if entity["state_version"]:
        yield f"v{entity['state_version']}"


def _details(entity: dict[str, Any]) -> Sequence[str]:
    parameters = ", ".join(f"{p}: {t}" if t else p for p, t in entity["dependencies"])
    lines = [
        f"{entity['name']}: {entity['function']}({parameters})",
        f"  topics {_topics(entity['topics'])}",
    ]
    if entity["summary"]:
        lines.append(f"  {entity['summary']}")
    for label in ("behavior", "effects", "tags"):
        if entity[label]:
            lines.append(f"  {label}: {'; '.join(entity[label])}")
    if not entity["discoverable"]:
        lines.append("  not discoverable")
    return lines
