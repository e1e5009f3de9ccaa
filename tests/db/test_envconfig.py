"""db/envconfig.py: settings dataclasses from CONECTADES_* variables, and the two
that use it (the email settings and the worker's)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from db.envconfig import EnvValueError, read_env
from notify.settings import EmailConfigError, EmailSettings
from worker.config import DEFAULT_RETRY_SCHEDULE, WorkerConfig


@dataclass(frozen=True)
class Sample:
    FLAG: bool = True
    COUNT: int = 3
    SECONDS: float = 1.5
    SCHEDULE: tuple[float, ...] = (1.0, 2.0)
    NAME: str = "default"


def test_unset_variables_keep_their_defaults() -> None:
    assert read_env(Sample, {"OTHER": "x", "FLAG": "false"}) == Sample()


def test_each_type_converts_from_its_variable() -> None:
    got = read_env(
        Sample,
        {
            "CONECTADES_FLAG": "off",
            "CONECTADES_COUNT": "7",
            "CONECTADES_SECONDS": "0.25",
            "CONECTADES_SCHEDULE": "5, 60,",
            "CONECTADES_NAME": "  spaced  ",
        },
    )
    assert got == Sample(FLAG=False, COUNT=7, SECONDS=0.25, SCHEDULE=(5.0, 60.0), NAME="spaced")


@pytest.mark.parametrize("raw", ["", "0", "false", "No", "OFF"])
def test_false_spellings(raw: str) -> None:
    assert read_env(Sample, {"CONECTADES_FLAG": raw}).FLAG is False


@pytest.mark.parametrize("raw", ["1", "true", "yes", "on"])
def test_true_spellings(raw: str) -> None:
    assert read_env(Sample, {"CONECTADES_FLAG": raw}).FLAG is True


@pytest.mark.parametrize(
    ("name", "raw"), [("COUNT", "seven"), ("SECONDS", "1,5"), ("SCHEDULE", "5,x")]
)
def test_a_value_that_does_not_convert_names_its_variable(name: str, raw: str) -> None:
    with pytest.raises(EnvValueError, match=f"CONECTADES_{name}: not a valid value") as caught:
        read_env(Sample, {f"CONECTADES_{name}": raw})
    assert caught.value.raw == raw


def test_email_settings_name_the_bad_variable() -> None:
    with pytest.raises(EmailConfigError, match=r"^CONECTADES_SMTP_PORT: not a valid value$"):
        EmailSettings.from_env({"CONECTADES_SMTP_PORT": "smtp"})
    settings = EmailSettings.from_env({"CONECTADES_SMTP_TLS_VERIFY": "no"})
    assert settings.SMTP_TLS_VERIFY is False and not settings.enabled


def test_worker_config_exits_naming_the_bad_variable_and_value() -> None:
    with pytest.raises(SystemExit, match=r"^CONECTADES_WEBHOOK_BATCH: not a valid value: 'many'$"):
        WorkerConfig.from_env({"CONECTADES_DATABASE_URL": "x", "CONECTADES_WEBHOOK_BATCH": "many"})
    with pytest.raises(SystemExit, match="CONECTADES_DATABASE_URL"):
        WorkerConfig.from_env({})
    cfg = WorkerConfig.from_env(
        {"CONECTADES_DATABASE_URL": "postgresql://x", "CONECTADES_WEBHOOK_RETRY_SCHEDULE": "1,2"}
    )
    assert cfg.WEBHOOK_RETRY_SCHEDULE == (1.0, 2.0) and cfg.WEBHOOK_BATCH == 100
    assert WorkerConfig.WEBHOOK_RETRY_SCHEDULE == DEFAULT_RETRY_SCHEDULE
    assert cfg.WORKER_NICE == 10


@pytest.mark.parametrize("nice", ["-5", "20"])
def test_worker_niceness_out_of_range_is_refused(nice: str) -> None:
    with pytest.raises(SystemExit, match=rf"^CONECTADES_WORKER_NICE must be 0-19: {nice}$"):
        WorkerConfig.from_env({"CONECTADES_DATABASE_URL": "x", "CONECTADES_WORKER_NICE": nice})
