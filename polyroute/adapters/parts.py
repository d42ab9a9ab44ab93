"""Content parts every translation reads the same way, whatever the vendor."""

from __future__ import annotations

import binascii

from polyroute.adapters.rejections import unsupported
from polyroute.model.tools import split_data_url


def data_url(vendor: str, url: str, where: str, deployment: str,
             expected: str = "expected a base64 data: URL",
             split: tuple[str, str] | None = None) -> tuple[str, str]:
    """``data:image/png;base64,AAAA`` → ("image/png", "AAAA"); anything else is a 400 naming
    ``where`` that says what was ``expected``. ``split``: the URL already split (an
    :class:`~polyroute.model.tools.ImageURL`'s ``data``)."""
    if split is None:
        split = split_data_url(url)
    if split is None:
        raise unsupported(vendor, where, deployment, expected)
    try:
        binascii.a2b_base64(split[1][:64])  # a cheap sanity check; the vendor verifies the rest
    except binascii.Error:
        raise unsupported(vendor, where, deployment, "the data: URL is not valid base64") \
            from None
    return split
