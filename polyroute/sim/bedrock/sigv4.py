"""Checking a request's SigV4 signature the way AWS does, written apart from botocore so that
it tests the gateway's signing rather than repeating it.

The shape is always checked (algorithm, credential scope for the ``bedrock`` service, signed
``host`` and ``x-amz-date``, a fresh timestamp). When the simulator knows the secret key (its
``api_key`` setting), the signature itself is recomputed and compared.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from aiohttp import web

from polyroute.sim.bedrock.errors import BedrockError, denied

SERVICE = "bedrock"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_S = 15 * 60
_AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),"
                   r"\s*Signature=([0-9a-f]{64})$")


@dataclass(frozen=True)
class Signature:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    session_token: str | None


def verify(request: web.Request, body: bytes, secret: str | None,
           service: str = SERVICE) -> Signature:
    header = request.headers.get("Authorization", "")
    if not header:
        raise denied("MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTH.match(header)
    if match is None:
        raise denied("IncompleteSignatureException", f"Authorization header requires "
                     f"'Credential', 'SignedHeaders' and 'Signature' parameters, signed with "
                     f"{ALGORITHM}. Authorization={header[:40]}…", status=400)
    credential, signed, signature = match.groups()
    scope = credential.split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise denied("IncompleteSignatureException", f"Credential should be scoped to a valid "
                     f"region, service and aws4_request: {credential}", status=400)
    access_key, date, region, _, _ = scope
    if scope[3] != service:
        raise denied("InvalidSignatureException", f"Credential should be scoped to correct "
                     f"service: '{service}'.")
    names = tuple(signed.split(";"))
    if "host" not in names or "x-amz-date" not in names:
        raise denied("InvalidSignatureException", "'Host' and 'X-Amz-Date' must be signed.")
    amz_date = request.headers.get("X-Amz-Date", "")
    try:
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise denied("IncompleteSignatureException", "X-Amz-Date is missing or malformed.",
                     status=400) from None
    if amz_date[:8] != date:
        raise denied("InvalidSignatureException", "Date in Credential scope does not match "
                     f"YYYYMMDD from ISO-8601 version of date from HTTP: '{date}' != "
                     f"'{amz_date[:8]}'")
    if abs((datetime.now(UTC) - when).total_seconds()) > MAX_SKEW_S:
        raise denied("InvalidSignatureException", "Signature expired: the request time is "
                     "more than 15 minutes from the server's time.")
    if secret is not None:
        expected = _signature(request, body, names, amz_date, date, region, secret,
                              service)
        if not hmac.compare_digest(expected, signature):
            raise denied("InvalidSignatureException", "The request signature we calculated "
                         "does not match the signature you provided. Check your AWS Secret "
                         "Access Key and signing method. Consult the service documentation "
                         "for details.")
    return Signature(access_key, date, region, service, names,
                     request.headers.get("X-Amz-Security-Token"))


def _signature(request: web.Request, body: bytes, names: tuple[str, ...], amz_date: str,
               date: str, region: str, secret: str, service: str) -> str:
    raw_path, _, raw_query = request.raw_path.partition("?")
    pairs = sorted(tuple(pair.partition("=")[::2]) for pair in raw_query.split("&") if pair)
    headers = []
    for name in names:
        values = request.headers.getall(name, [])
        if not values:
            raise BedrockError(403, "InvalidSignatureException",
                               f"The header '{name}' is signed but was not sent.")
        headers.append(f"{name}:" + ",".join(" ".join(v.split()) for v in values))
    payload = request.headers.get("X-Amz-Content-SHA256") or hashlib.sha256(body).hexdigest()
    canonical = "\n".join([
        request.method, quote(_remove_dot_segments(raw_path), safe="/~"),
        "&".join(f"{k}={v}" for k, v in pairs), "\n".join(headers) + "\n", ";".join(names),
        payload])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, and empty segments dropped as AWS does."""
    out: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if out:
                out.pop()
        elif segment and segment != ".":
            out.append(segment)
    trailing = "/" if path.endswith("/") and out else ""
    return "/" + "/".join(out) + trailing
