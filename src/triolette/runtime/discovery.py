"""Home Assistant discovery while serving: announce the configs, clear the removed ones.

Once a serve knows its devices (after the settings expanded the names), :func:`companions`
queues each config of :func:`~triolette.runtime.ha_configs.build_configs` as a retained
message; the MQTT actor keeps the latest retained message per topic and publishes them again
after every reconnect, so Home Assistant finds them on any connection.

With a store, the topics announced are kept under :data:`KEY`. A topic announced at an earlier
start but not now gets an empty retained message, which deletes the config (and the entity)
in Home Assistant and the broker. The record lists the removed topics too until the broker
confirmed those empty messages, so a stop before then clears them at the next start. Without
a store nothing remembers earlier starts and removed entities stay announced.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from triolette.actors.spec import DeviceSpec
from triolette.core.jsonstate import decode_state, encode_state
from triolette.core.messages import Message
from triolette.core.topics import Topics, check_name
from triolette.runtime.expansion import expand
from triolette.runtime.ha_configs import Bridge, Enrich, build_configs

if TYPE_CHECKING:
    from triolette.actors.persistence import PersistenceActor
    from triolette.runtime.app import App
    from triolette.runtime.running import RunningApp

logger = logging.getLogger("triolette.discovery")

KEY = "triolette/discovery"
"""The store key of the announced topics: ``{"topics": [...]}``."""


@attrs.frozen
class Discovery:
    """``app.discovery(...)``'s options: the discovery prefix and the ``enrich`` hook."""

    prefix: str = "homeassistant"
    enrich: Enrich | None = None

    def __attrs_post_init__(self) -> None:
        check_name(self.prefix, "discovery prefix")
        if self.enrich is not None and not callable(self.enrich):
            raise TypeError(f"enrich must be a callable, got {self.enrich!r}")


def configs_for(
    app: App, specs: list[DeviceSpec], prefix: str | None = None
) -> dict[str, dict[str, Any]]:
    """The configs ``app`` announces for the devices ``specs`` (``discoverable=False`` ones
    left out), under ``prefix`` (default: the app's discovery prefix, else ``homeassistant``).

    Raises what :func:`~triolette.runtime.ha_configs.build_configs` raises.
    """
    options = app.discovery_options or Discovery()
    hidden = {id(r.spec.call) for r in app.registry.registrations if not r.discoverable}
    bridge = Bridge(
        name=app.name,
        version=app.version,
        topics=_topics_for(app, specs),
        prefix=prefix or options.prefix,
        instance_id=_instance_id(app.settings),
        description=app.description,
    )
    shown = [spec for spec in specs if id(spec.call) not in hidden]
    return build_configs(bridge, shown, enrich=options.enrich)


def offline_configs(app: App, prefix: str | None = None) -> dict[str, dict[str, Any]]:
    """The configs ``app`` would announce now, without serving (``triolette schema
    ha-discovery``): its registrations expanded with ``app.settings``. Devices that start-up
    hooks register are not known yet. Raises the app's settings error, RegistrationError.
    """
    if app.settings is None and app.settings_error is not None:
        raise app.settings_error  # its settings class could not be built
    if prefix is not None:
        Discovery(prefix)  # the same check as app.discovery(prefix)
    return configs_for(app, expand(app.registry.registrations, app.settings), prefix)


def stored_keys(app: App) -> list[str]:
    """The store keys discovery reads at start: :data:`KEY` when it is on and there is a store."""
    return [KEY] if app.discovery_options is not None and app.store is not None else []


def companions(running: RunningApp) -> list[Callable[..., Awaitable[None]]]:
    """Queue this serve's configs (retained) and return the task clearing removed ones
    (none without discovery, a store, or a removed entity).

    Raises RegistrationError (a field's ``component``) before queueing anything.
    """
    app = running.app
    if app.discovery_options is None:
        return []
    configs = configs_for(app, running.specs)
    for topic, config in configs.items():
        running.mqtt.publish_nowait(Message(topic, _encoded(config), retain=True))
    persistence = running.persistence
    if persistence is None:
        return []
    announced = set(configs)
    removed = sorted(_recorded(persistence) - announced)
    _record(persistence, announced | set(removed))
    if not removed:
        return []
    logger.info("clearing the Home Assistant configs of %d removed entities", len(removed))

    async def clear_removed(
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Publish an empty retained message on each removed topic until the broker confirmed
        it, then record only what is announced. Cancelled with the devices."""
        task_status.started()
        for topic in removed:
            while not await running.mqtt.publish(Message(topic, b"", retain=True)):
                await running.mqtt.wait_connected()
        _record(persistence, announced)

    return [clear_removed]


def _recorded(persistence: PersistenceActor) -> set[str]:
    text = persistence.view(KEY)
    if text is None:
        return set()
    try:
        topics = decode_state(text).get("topics", [])
    except ValueError as error:
        logger.error("ignoring the record of announced discovery topics: %s", error)
        return set()
    return {t for t in topics if isinstance(t, str)} if isinstance(topics, list) else set()


def _record(persistence: PersistenceActor, topics: set[str]) -> None:
    if _recorded(persistence) == topics and persistence.view(KEY) is not None:
        return
    with persistence.client(KEY) as client:
        client.submit(KEY, encode_state(KEY, {"topics": sorted(topics)}))


def _encoded(config: dict[str, Any]) -> bytes:
    return json.dumps(config, separators=(",", ":"), ensure_ascii=False).encode()


def _instance_id(settings: Any) -> str | None:
    instance = getattr(settings, "instance_id", None)
    return instance if isinstance(instance, str) and instance else None


def _topics_for(app: App, specs: list[DeviceSpec]) -> Topics:
    """The app's topics with the root entity among ``specs``, as a serve lays them out."""
    root = next((spec.name for spec in specs if spec.is_root), None)
    return attrs.evolve(app.topics, root=root)
