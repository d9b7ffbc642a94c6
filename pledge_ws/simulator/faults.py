"""Fault injection state, without I/O: what is broken on the exchange right now, and for how long.

Each fault models an outage a feed must survive: the whole exchange silent (WebSocket and REST),
only the push servers down (REST still answering), failing bullets, REST answering 429 (with
``gw-ratelimit-reset``) or 5xx, ``type:error`` frames (401, 509) on every new connection, and a
bullet whose first ``instanceServers`` entry is dead. Time comes from an injectable clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from pledge_ws.simulator.model import (
    BULLET_FAIL_MODES,
    ERROR_FRAME_CODES,
    REST_FAIL_MODES,
    SimulatorError,
)

ERROR_TEXTS = {401: "token is expired", 509: "exceed max permits per second", 500: "internal error"}


class Faults:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self.reset()

    def reset(self) -> None:
        """Back to a healthy exchange."""
        self._silent_until = 0.0
        self._ws_down_until = 0.0
        self._fail_count = 0
        self._fail_mode = BULLET_FAIL_MODES[0]
        self._limited_until = 0.0
        self._rest_fail_count = 0
        self._rest_fail_mode = REST_FAIL_MODES[0]
        self._error_code: int | None = None
        self._error_until = 0.0
        self.dead_first_server = False

    def _until(self, seconds: float) -> float:
        return self._monotonic() + seconds if seconds > 0 else 0.0

    # -- the whole exchange, or only its WebSocket side ----------------------------------

    def is_silent(self) -> bool:
        return self._monotonic() < self._silent_until

    def silence(self, seconds: float) -> None:
        """Nothing from the exchange at all for ``seconds``: no frames, and REST answers 503."""
        self._silent_until = self._until(seconds)

    def is_ws_down(self) -> bool:
        return self._monotonic() < self._ws_down_until

    def ws_down(self, seconds: float) -> None:
        """The push servers are out for ``seconds``: open connections are dropped and new
        upgrades refused, while bullets and the REST API keep answering."""
        self._ws_down_until = self._until(seconds)

    # -- bullets --------------------------------------------------------------------------

    def fail_bullets(self, count: int, mode: str) -> None:
        if mode not in BULLET_FAIL_MODES:
            raise SimulatorError(f"mode must be one of {', '.join(BULLET_FAIL_MODES)}")
        self._fail_count, self._fail_mode = count, mode

    def take_bullet_failure(self) -> str | None:
        """The failure mode for this bullet request, if one is still scheduled."""
        if self._fail_count <= 0:
            return None
        self._fail_count -= 1
        return self._fail_mode

    # -- REST -----------------------------------------------------------------------------

    def limit_rest(self, ms: int) -> None:
        """Answer every REST market-data call with 429 for ``ms`` milliseconds."""
        self._limited_until = self._until(ms / 1000.0)

    def fail_rest(self, count: int, mode: str) -> None:
        if mode not in REST_FAIL_MODES:
            raise SimulatorError(f"mode must be one of {', '.join(REST_FAIL_MODES)}")
        self._rest_fail_count, self._rest_fail_mode = count, mode

    def take_rest_failure(self) -> tuple[str, int] | None:
        """``("429", reset_ms)``, ``("503", 0)`` while silent, a scheduled 5xx/bad JSON, or None."""
        now = self._monotonic()
        if now < self._silent_until:
            return ("503", 0)
        if now < self._limited_until:
            return ("429", max(1, math.ceil((self._limited_until - now) * 1000)))
        if self._rest_fail_count > 0:
            self._rest_fail_count -= 1
            return (self._rest_fail_mode, 0)
        return None

    # -- error frames ---------------------------------------------------------------------

    def error_on_connect(self, code: int, seconds: float) -> None:
        """Greet every connection opened in the next ``seconds`` with a ``type:error`` frame."""
        if code not in ERROR_FRAME_CODES:
            raise SimulatorError(f"code must be one of {', '.join(map(str, ERROR_FRAME_CODES))}")
        self._error_code, self._error_until = code, self._until(seconds)

    def connect_error(self) -> int | None:
        if self._error_code is not None and self._monotonic() < self._error_until:
            return self._error_code
        return None

    def state(self) -> dict[str, Any]:
        def remaining_ms(until: float) -> int:
            return max(0, math.ceil((until - self._monotonic()) * 1000))

        return {
            "silent": self.is_silent(),
            "silent_remaining_ms": remaining_ms(self._silent_until),
            "ws_down": self.is_ws_down(),
            "ws_down_remaining_ms": remaining_ms(self._ws_down_until),
            "fail_bullet": {"count": self._fail_count, "mode": self._fail_mode},
            "rest_limited_remaining_ms": remaining_ms(self._limited_until),
            "rest_fail": {"count": self._rest_fail_count, "mode": self._rest_fail_mode},
            "connect_error": self.connect_error(),
            "dead_first_server": self.dead_first_server,
        }
