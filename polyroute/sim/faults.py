"""Names, parameters and textual syntax of the faults the simulator can inject."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class FaultName(enum.StrEnum):
    RATE_LIMIT = "rate_limit"
    RATE_LIMIT_NO_RETRY_AFTER = "rate_limit_no_retry_after"
    SERVER_ERROR = "server_error"
    UNAVAILABLE = "unavailable"
    RESET_BEFORE_HEADERS = "reset_before_headers"
    NO_RESPONSE = "no_response"
    SLOW_FIRST_TOKEN = "slow_first_token"
    STREAM_CUT = "stream_cut"
    STREAM_STALL = "stream_stall"
    MALFORMED_CHUNK = "malformed_chunk"
    NO_DONE = "no_done"
    SPLIT_UTF8 = "split_utf8"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    CONTENT_POLICY_VIOLATION = "content_policy_violation"
    # Anthropic's endpoints only (the OpenAI ones ignore them): 529 overloaded_error, and an
    # `event: error` carrying it in the middle of a stream.
    OVERLOADED = "overloaded"
    STREAM_ERROR = "stream_error"


def _frozen(values: dict[str, float]) -> Mapping[str, float]:
    return MappingProxyType(values)


# Every parameter a fault accepts, with its default. Anything else is rejected so a
# typo in a test ("after_chunk=3") fails loudly instead of silently using a default.
FAULT_PARAMS: Mapping[FaultName, Mapping[str, float]] = MappingProxyType(
    {
        FaultName.RATE_LIMIT: _frozen({"retry_after": 1.0}),
        FaultName.RATE_LIMIT_NO_RETRY_AFTER: _frozen({}),
        FaultName.SERVER_ERROR: _frozen({}),
        FaultName.UNAVAILABLE: _frozen({}),
        FaultName.RESET_BEFORE_HEADERS: _frozen({}),
        FaultName.NO_RESPONSE: _frozen({"hold_s": 30.0}),
        FaultName.SLOW_FIRST_TOKEN: _frozen({"delay_ms": 2000.0}),
        FaultName.STREAM_CUT: _frozen({"after_chunks": 2.0}),
        FaultName.STREAM_STALL: _frozen({"after_chunks": 2.0, "hold_s": 30.0}),
        FaultName.MALFORMED_CHUNK: _frozen({"after_chunks": 2.0}),
        FaultName.NO_DONE: _frozen({}),
        FaultName.SPLIT_UTF8: _frozen({"gap_ms": 5.0}),
        FaultName.CONTEXT_LENGTH_EXCEEDED: _frozen({"limit": 128000.0}),
        FaultName.CONTENT_POLICY_VIOLATION: _frozen({}),
        FaultName.OVERLOADED: _frozen({}),
        FaultName.STREAM_ERROR: _frozen({"after_chunks": 2.0}),
    }
)


class FaultSpecError(ValueError):
    """A fault name or parameter that the simulator does not know."""


@dataclass(frozen=True)
class Fault:
    name: FaultName
    params: Mapping[str, float] = field(default_factory=dict)

    def param(self, key: str) -> float:
        if key in self.params:
            return self.params[key]
        return FAULT_PARAMS[self.name][key]

    def int_param(self, key: str) -> int:
        return int(self.param(key))


_FAULT_NAMES = frozenset(name.value for name in FaultName)


def is_fault_name(text: str) -> bool:
    return text in _FAULT_NAMES


def make_fault(name: str, params: Mapping[str, object] | None = None) -> Fault:
    """Validate `name` and `params` (numbers or numeric strings) into a Fault."""
    if not is_fault_name(name):
        known = ", ".join(FaultName)
        raise FaultSpecError(f"unknown simulator fault {name!r}; known faults: {known}")
    fault_name = FaultName(name)
    allowed = FAULT_PARAMS[fault_name]
    values: dict[str, float] = {}
    for key, raw in (params or {}).items():
        if key not in allowed:
            accepted = ", ".join(allowed) or "none"
            raise FaultSpecError(
                f"fault {name!r} has no parameter {key!r}; accepted parameters: {accepted}"
            )
        values[key] = _parse_number(name, key, raw)
    return Fault(fault_name, MappingProxyType(values))


def _parse_number(name: str, key: str, raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise FaultSpecError(f"parameter {key!r} of fault {name!r} must be a number")
    try:
        value = float(raw)
    except ValueError:
        raise FaultSpecError(
            f"parameter {key!r} of fault {name!r} must be a number, got {raw!r}"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise FaultSpecError(f"parameter {key!r} of fault {name!r} must be >= 0")
    return value


def parse_fault_spec(spec: str) -> Fault:
    """Parse `name` or `name;key=value;key=value` (the x-sim-fault header syntax).

    `:` and `,` are accepted as separators too, so the model-suffix form
    `stream_cut:after_chunks=3,hold_s=1` goes through the same parser.
    """
    text = spec.strip()
    name, params_text = _split_name(text)
    params: dict[str, object] = {}
    for item in params_text.replace(",", ";").split(";"):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise FaultSpecError(f"fault parameter {item!r} is not key=value")
        params[key.strip()] = value.strip()
    return make_fault(name, params)


def _split_name(text: str) -> tuple[str, str]:
    for index, char in enumerate(text):
        if char in ";:":
            return text[:index].strip(), text[index + 1 :]
    return text, ""


def split_model_fault(model: str) -> tuple[str, Fault | None]:
    """Split `gpt-4o-mini@stream_cut:after_chunks=3` into the model id and its fault.

    A suffix that does not start with a known fault name is left alone, because
    some real model ids contain '@' (e.g. Vertex-style version pins).
    """
    base, sep, suffix = model.rpartition("@")
    if not sep:
        return model, None
    name, _ = _split_name(suffix.strip())
    if not is_fault_name(name):
        return model, None
    return base, parse_fault_spec(suffix)
