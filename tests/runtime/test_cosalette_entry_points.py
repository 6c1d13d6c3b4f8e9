"""cosalette spellings a bridge's code and tests call: ``app.cli()`` and
``harness.override_state``."""

from __future__ import annotations

import attrs
import pytest

from triolette import App, MemoryStore, RegistrationError
from triolette.testing import AppHarness, FakeClock, MockMqttClient


def test_cli_is_run_with_the_same_flags(capsys: pytest.CaptureFixture[str]):
    app = App("boiler", "2.1.0")
    with pytest.raises(SystemExit) as version:
        app.cli(["--version"])
    assert version.value.code == 0
    assert capsys.readouterr().out.startswith("boiler 2.1.0 (triolette ")
    with pytest.raises(SystemExit) as usage:
        app.cli(["--no-such-flag"])
    assert usage.value.code == 3
    assert "--no-such-flag" in capsys.readouterr().err


@attrs.define
class Demand:
    celsius: float
    closed: bool = False


def app_with_demand(built: list[Demand]) -> App:
    app = App("boiler", store=MemoryStore())

    @app.state
    def demand() -> Demand:
        made = Demand(45.0)
        built.append(made)
        return made

    @app.telemetry("target", interval=60)
    async def target(demand: Demand) -> dict[str, object]:
        return {"celsius": demand.celsius}

    return app


async def test_override_state_serves_the_given_object_instead_of_the_factorys(
    fake_clock: FakeClock,
):
    built: list[Demand] = []
    app = app_with_demand(built)
    harness = AppHarness(app=app, mqtt=MockMqttClient(), clock=fake_clock)
    harness.override_state(Demand, Demand(60.0))

    async with harness.serving():
        await harness.advance_time(0)

    harness.assert_state("boiler/target/state", {"celsius": 60.0})
    assert built == []  # the factory was not called
    # the given App keeps its factory: another harness gets what it builds
    other = AppHarness(app=app, mqtt=MockMqttClient(), clock=fake_clock)
    await other.run()
    other.assert_state("boiler/target/state", {"celsius": 45.0})
    assert built == [Demand(45.0)]


def test_override_state_refuses_an_unknown_type_and_an_instance_of_another():
    harness = AppHarness(app=app_with_demand([]), mqtt=MockMqttClient())
    with pytest.raises(RegistrationError, match="no state factory for float"):
        harness.override_state(float, 1.0)
    with pytest.raises(TypeError, match=r"override of state Demand: 'warm' is not one"):
        harness.override_state(Demand, "warm")
