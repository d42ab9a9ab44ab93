"""Amazon Bedrock's Converse API (and its batch inference jobs with a minimal S3, in
:mod:`.jobs`), simulated: ``POST /model/{modelId}/converse`` and
``/converse-stream`` (real ``application/vnd.amazon.eventstream`` frames), SigV4-checked, with
the simulator's faults shown the way Bedrock shows them (429 ``ThrottlingException``, a
``throttlingException`` frame mid-stream, a frame with a bad CRC, 400 ``ValidationException``
"Input is too long" …). ``GET /_sim/bedrock`` tells tests what the last request was signed
with, ``GET /_sim/bedrock/jobs`` the batch jobs' ARNs by name."""

from __future__ import annotations

import hmac
import re
from urllib.parse import unquote

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from polyroute.sim.bedrock.errors import BedrockError, denied
from polyroute.sim.bedrock.handlers import RERANK_PATH, converse, invoke_image, rerank
from polyroute.sim.bedrock.jobs import JOBS_PATH, jobs, s3_object
from polyroute.sim.bedrock.sigv4 import SERVICE, verify
from polyroute.sim.bedrock.state import BEDROCK_STATE, BedrockState, get_bedrock_state
from polyroute.sim.state import get_state

__all__ = ["add_bedrock_routes", "bedrock_dialect"]

_PATH = re.compile(r"^/model/([^/?]+)/(converse|converse-stream|invoke)$")
_ENCODER = msgspec.json.Encoder()


def add_bedrock_routes(app: web.Application, seed: int) -> None:
    """The model paths are dispatched by :func:`bedrock_dialect` on the raw path: a model id
    may hold an encoded ``/`` (``%2F``), which routing on the decoded path would split."""
    app[BEDROCK_STATE] = BedrockState(seed)
    app.router.add_get("/_sim/bedrock", last_auth)
    app.router.add_get("/_sim/bedrock/jobs", job_arns)


async def job_arns(request: web.Request) -> web.Response:
    """Each batch inference job's name → its ARN, for tests (the gateway lists none)."""
    jobs = get_bedrock_state(request).jobs.values()
    return web.Response(body=_ENCODER.encode({j["jobName"]: j["jobArn"] for j in jobs}),
                        content_type="application/json")


async def last_auth(request: web.Request) -> web.Response:
    return web.Response(body=_ENCODER.encode(get_bedrock_state(request).last_auth),
                        content_type="application/json")


@web.middleware
async def bedrock_dialect(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bedrock requests are answered entirely here: SigV4 (or a Bedrock API key), routing and
    AWS's error shape; the OpenAI middlewares after this one are skipped."""
    s3 = "/s3/aws4_request" in request.headers.get("Authorization", "")
    jobs_path = request.path.startswith(JOBS_PATH)
    if not (request.path.startswith("/model/") or request.path == RERANK_PATH or s3
            or jobs_path):
        return await handler(request)
    bedrock = get_bedrock_state(request)
    request_id = bedrock.request_id()
    try:
        raw_path = request.raw_path.partition("?")[0]
        match = _PATH.match(raw_path)
        if s3 or jobs_path:  # the control plane's batch jobs, and S3 for their files
            body = await request.read()
            verify(request, body, get_state(request).settings.api_key, "s3" if s3 else SERVICE)
            if s3:
                return s3_object(request, bedrock, body, request_id)
            return jobs(request, bedrock, body, request_id)
        if (match is None and raw_path != RERANK_PATH) or request.method != "POST":
            raise BedrockError(404, "UnknownOperationException",
                               f"Unknown operation {request.method} {raw_path}")
        body = await request.read()
        secret = get_state(request).settings.api_key
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            if secret and not hmac.compare_digest(auth[7:].encode(), secret.encode()):
                raise denied("UnrecognizedClientException", "Invalid API Key format: Must "
                             "start with pre-defined prefix")
            bedrock.last_auth = {"style": "bearer", "raw_path": raw_path}
        else:
            signature = verify(request, body, secret)
            bedrock.last_auth = {
                "style": "sigv4", "raw_path": raw_path, "access_key": signature.access_key,
                "region": signature.region, "service": signature.service,
                "signed_headers": list(signature.signed_headers),
                "session_token": signature.session_token}
        if match is None:  # bedrock-agent-runtime's Rerank, on its own host in AWS
            return await rerank(request, request_id=request_id)
        model_id, action = unquote(match.group(1)), match.group(2)
        if action == "invoke":
            return await invoke_image(request, model_id, request_id=request_id)
        return await converse(request, model_id, stream=action == "converse-stream",
                              request_id=request_id)
    except BedrockError as exc:
        return exc.to_response(request_id)
