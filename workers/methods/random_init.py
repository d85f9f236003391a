"""`random`: the trunk at its seeded initialisation, never trained: the paper's lower reference
(a random AlexNet's conv1 already carries some linearly usable signal)."""

from __future__ import annotations

from typing import ClassVar

from workers.methods.base import Method


class RandomInit(Method):
    trains: ClassVar[bool] = False
