"""The typed-contract options a registration keeps: models, discoverability, state versions."""

from __future__ import annotations

import pytest

from triolette import App, RegistrationError


class Reading:
    """Stands in for a pydantic model: what the registry checks is the model API."""

    @classmethod
    def model_validate(cls, value: object) -> Reading:
        return cls()


def test_the_models_and_versions_are_kept_on_the_registration():
    app = App("bridge")

    @app.telemetry(
        "meter",
        interval=10,
        state_model=Reading,
        state_version=2,
        migrate={0: lambda old: old, 1: lambda old: old},
    )
    async def meter() -> None: ...

    @app.command("valve", payload_model=Reading, discoverable=False)
    async def valve(payload: str) -> None: ...

    meter_registration, valve_registration = app.registry.registrations
    assert meter_registration.state_model is Reading
    assert meter_registration.state_version == 2
    assert sorted(meter_registration.spec.migrations) == [0, 1]
    assert valve_registration.payload_model is Reading
    assert valve_registration.discoverable is False
    assert meter_registration.discoverable is True


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"state_model": dict}, r"meter: state_model=.*is not a model class"),
        ({"payload_model": Reading()}, r"meter: payload_model=.*is not a model class"),
        ({"state_version": -1}, r"meter: state_version=-1 is not a whole number"),
        ({"state_version": True}, r"meter: state_version=True is not a whole number"),
        ({"state_version": 2, "migrate": {0: print}}, r"one migration from each version before 2"),
        (
            {"state_version": 1, "migrate": {0: "upgrade"}},
            r"migrate\[0\]='upgrade' is not callable",
        ),
        ({"discoverable": "yes"}, r"meter: discoverable='yes' is not True or False"),
    ],
)
def test_bad_contract_options_are_refused_naming_the_device(options, match):
    app = App("bridge")
    with pytest.raises(RegistrationError, match=match):
        app.telemetry("meter", interval=10, **options)
