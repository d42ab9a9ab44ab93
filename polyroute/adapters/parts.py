"""Content parts every translation reads the same way, whatever the vendor."""

from __future__ import annotations

import binascii

from polyroute.adapters.rejections import unsupported


def data_url(vendor: str, url: str, where: str, deployment: str,
             expected: str = "expected a base64 data: URL") -> tuple[str, str]:
    """``data:image/png;base64,AAAA`` → ("image/png", "AAAA"); anything else is a 400 naming
    ``where`` that says what was ``expected``."""
    head, comma, data = url.partition(",")
    if not url.startswith("data:") or not comma or not head.endswith(";base64"):
        raise unsupported(vendor, where, deployment, expected)
    try:
        binascii.a2b_base64(data[:64])  # a cheap sanity check; the vendor verifies the rest
    except binascii.Error:
        raise unsupported(vendor, where, deployment, "the data: URL is not valid base64") \
            from None
    return head[5:-7].lower(), data
