"""Availability: online while the actor runs and nothing holds the device offline."""

from __future__ import annotations

from triolette.core.availability import Availability


def recorder() -> tuple[Availability, list[tuple[str, str]]]:
    published: list[tuple[str, str]] = []
    return Availability(lambda device, value: published.append((device, value))), published


def test_only_edges_are_published_and_holds_are_independent():
    availability, published = recorder()
    availability.actor("gas", up=True)
    availability.hold("gas", "health:GasMeter")
    availability.hold("gas", "stream:radio")
    availability.hold("gas", "stream:radio")  # idempotent
    availability.release("gas", "health:GasMeter")
    assert availability.holds("gas") == {"stream:radio"}
    availability.release("gas", "stream:radio")
    availability.release("gas", "unknown")  # nothing held: nothing happens
    availability.actor("gas", up=False)
    assert published == [
        ("gas", "online"),
        ("gas", "offline"),
        ("gas", "online"),
        ("gas", "offline"),
    ]


def test_a_device_held_before_it_starts_is_first_published_offline():
    availability, published = recorder()
    availability.hold("gas", "health:GasMeter")
    assert published == []  # never announced: nothing to take back
    availability.actor("gas", up=True)
    assert (published, availability.value("gas")) == ([("gas", "offline")], "offline")
    availability.release("gas", "health:GasMeter")
    assert published[-1] == ("gas", "online")


def test_a_stream_offline_holds_what_it_feeds_and_releases_it_when_back():
    availability, published = recorder()
    availability.feeds("radio", ["boiler"])
    availability.actor("boiler", up=True)
    availability.actor("radio", up=True)
    availability.hold("radio", "freshness")
    assert availability.holds("boiler") == {"stream:radio"}
    availability.release("radio", "freshness")
    assert availability.holds("boiler") == frozenset()
    assert published == [
        ("boiler", "online"),
        ("radio", "online"),
        ("radio", "offline"),
        ("boiler", "offline"),
        ("radio", "online"),
        ("boiler", "online"),
    ]
