"""Which Bedrock deployment can serve a media request, known before anything is sent
(``ProtocolSpec.serves``): whether ``InvokeModel`` (Amazon's image models) or the Rerank API
can carry what the request asks. Routing skips a deployment this refuses, with the reason,
and tries the group's next one; the translations (:mod:`.media`) build bodies only for
requests that passed. Which model is an image or a rerank model is not checked here."""

from __future__ import annotations

from polyroute.adapters.images import ImageFields
from polyroute.adapters.spec import Unserved
from polyroute.model.media import MediaRequest
from polyroute.model.upstream import Deployment

IMAGE_FIELDS = ImageFields(
    "Bedrock (Amazon image models)",
    frozenset({"model", "prompt", "n", "size", "quality", "user"}),
    {"response_format": frozenset({b'"b64_json"', b"null"}), "style": frozenset({b"null"})},
    {"response_format": "the images come back as bytes: ask for b64_json"})
"""``user`` (an end-user id for OpenAI's abuse monitoring) has no Bedrock field: not sent."""
RERANK_MAPPED = frozenset({"model", "query", "documents", "top_n", "return_documents"})


def serves(request: MediaRequest, deployment: Deployment) -> Unserved | None:
    """Why this Bedrock deployment cannot serve the request, or None."""
    drop = deployment.endpoint.quirks.drop_params
    if request.endpoint == "images.generations":
        return IMAGE_FIELDS.refusal(request, drop)
    for name, raw in (request.fields or {}).items():  # rerank
        if name not in RERANK_MAPPED and name not in drop and bytes(raw).strip() != b"null":
            return Unserved.parameter("Bedrock's Rerank API", name)
    return None
