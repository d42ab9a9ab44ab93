"""How deep JSON may nest: checked on a client's body before any decoder sees it, and on JSON
carried inside strings (tool-call arguments, tool results) before it is decoded.

msgspec, like every recursive decoder, gives up with ``RecursionError`` somewhere below
Python's recursion limit (about 1,000 levels), and a body that decodes can still be too deep
for whatever walks it next (re-encoding it, translating a tool's schema). So the gateway sets
its own bound, far above any real request (a JSON schema 100 levels deep is not a schema)
and far below the interpreter's, and answers 400 beyond it.

The check costs two ``bytes.count`` calls for most requests: nesting can only be as deep as
the body has opening brackets. Only a body with more of them than the bound is scanned
properly, at C speed: escaped backslashes and quotes dropped, every bracket between an odd and
an even quote (inside a string: a prompt may well contain ``[[[``) ignored, and the running
depth of the rest taken with numpy. On a loaded 2-core machine that scan costs about half
of what msgspec's decode of the same body does.

numpy is imported by the first such scan, not with this module: every surface imports this
module, and numpy is ~6 MB of a worker's private memory that most gateways never need.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from polyroute.errors import InvalidRequest

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MAX_JSON_DEPTH = 100


@functools.cache
def _steps() -> npt.NDArray[np.int8]:
    """The depth step of every byte: +1 opening a bracket, -1 closing one, else 0."""
    import numpy as np

    step = np.zeros(256, dtype=np.int8)
    step[[ord("["), ord("{")]] = 1
    step[[ord("]"), ord("}")]] = -1
    return step


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in ``body`` (well-formed or not)."""
    if b"\\" in body:
        # Escaped backslashes first, then escaped quotes (left to right, as a JSON reader
        # takes them), so that every quote left opens or closes a string.
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    import numpy as np

    chars = np.frombuffer(body, dtype=np.uint8)
    if not len(chars):
        return 0
    in_string = (np.cumsum(chars == ord('"'), dtype=np.int32) & 1).astype(bool)
    steps = _steps()[chars]
    steps[in_string] = 0
    return max(0, int(np.cumsum(steps, dtype=np.int32).max()))


def too_deep(data: bytes | str, limit: int = MAX_JSON_DEPTH) -> int | None:
    """The depth of ``data`` if it nests deeper than ``limit``, else None."""
    raw = data.encode(errors="surrogatepass") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return None
    depth = json_depth(raw)
    return depth if depth > limit else None


def check_json_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise a 400 if ``body`` nests arrays and objects deeper than ``limit``."""
    depth = too_deep(body, limit)
    if depth is not None:
        raise InvalidRequest(
            f"The JSON body nests {depth} levels deep; the limit is {limit}.",
            code="json_too_deep")
