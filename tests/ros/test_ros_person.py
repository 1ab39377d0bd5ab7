"""agent_node's /person/identified: a name that breaks the name rule (control characters,
empty) is logged in one line and ignored; a good one names the person."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.ros

Worker = Callable[..., tuple[dict[str, Any], str]]


def test_an_invalid_person_name_is_logged_once_and_ignored(ros_worker: Worker) -> None:
    result, stderr = ros_worker("person_worker.py", timeout=120)
    # three bad names change nothing; the fourth names the person
    assert result["dropped"] == 3
    assert result["seen"] == [[None, "voice"]] * 3 + [["Dora", "face"]]
    warnings = [line for line in stderr.splitlines() if "person_topic:" in line]
    assert len(warnings) == 3, warnings
    assert sum("holds control characters" in line for line in warnings) == 2
    assert sum("must not be empty" in line for line in warnings) == 1  # "\x00shared"
