"""Demo data: simulate_violations refuses what would write nothing (what it writes, in
tests/test_simulation.py)."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.parametrize("args", [["--rate", "0"], ["--count", "0"]])
def test_simulate_refuses_nonsense(args: list[str]) -> None:
    with pytest.raises(CommandError):
        call_command("simulate_violations", *args)
