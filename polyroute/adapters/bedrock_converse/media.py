"""OpenAI's image generation and edits ⇄ Amazon's image models on Bedrock (Nova Canvas,
Titan Image Generator v2: ``InvokeModel``, ``POST /model/{modelId}/invoke``), and
Jina/Cohere-style rerank ⇄ bedrock-agent-runtime's ``Rerank``. Pure functions.

    prompt              → textToImageParams.text          (taskType TEXT_IMAGE)
                        → imageVariationParams.text       (edits: taskType IMAGE_VARIATION)
    image, image[]      → imageVariationParams.images, base64, in the form's order (edits)
    n                   → imageGenerationConfig.numberOfImages
    size (WxH)          → imageGenerationConfig.width, .height   (auto: the model's default)
    quality hd / high   → imageGenerationConfig.quality: premium (standard, auto: standard)
    response_format     b64_json only (the images come back as bytes)
    images[]            → data[].b64_json; a non-null ``error`` → a content-filter error
"""

from __future__ import annotations

import base64

import msgspec

from polyroute.adapters.images import EDIT_IMAGES, images_response
from polyroute.errors import ContentFiltered, UpstreamProtocolError
from polyroute.model.media import MediaRequest

_PREMIUM = frozenset({"hd", "high", "premium"})


class _Invoked(msgspec.Struct):
    images: list[str] = msgspec.field(default_factory=list)
    error: str | None = None


_invoked = msgspec.json.Decoder(_Invoked)
_str = msgspec.json.Decoder(str | None)
_int = msgspec.json.Decoder(int | None)


def image_body(request: MediaRequest) -> bytes:
    """``InvokeModel``'s body; routing has checked the fields (``serves.IMAGE_FIELDS``)."""
    fields = request.fields or {}
    prompt = _str.decode(fields["prompt"]) if "prompt" in fields else None
    config = _config(_int.decode(fields["n"]) if "n" in fields else None,
                     _str.decode(fields["size"]) if "size" in fields else None,
                     _str.decode(fields["quality"]) if "quality" in fields else None)
    return msgspec.json.encode({"taskType": "TEXT_IMAGE", "textToImageParams": {"text": prompt},
                                "imageGenerationConfig": config})


def edit_body(request: MediaRequest) -> bytes:
    """``InvokeModel``'s body for an image edit: Nova Canvas's ``IMAGE_VARIATION`` of the
    uploaded images, guided by the prompt. Routing has checked the form (``serves``: no mask,
    1 to 5 PNG or JPEG images, no field Nova has no setting for); the images are read from
    the spool, so call it off the event loop. ``similarityStrength`` is not sent (OpenAI has
    no such field): Nova's default, 0.7."""
    form = request.form
    assert form is not None  # an upload endpoint always has its form
    images = [_base64(file.path) for file in form.files if file.name in EDIT_IMAGES]
    params: dict[str, object] = {"images": images}
    prompt = form.field("prompt")
    if prompt:  # Nova's text is optional but, when sent, 1 to 1024 characters
        params["text"] = prompt
    n = form.field("n")
    config = _config(int(n) if n and n.isdigit() else None, form.field("size"),
                     form.field("quality"))
    return msgspec.json.encode({"taskType": "IMAGE_VARIATION", "imageVariationParams": params,
                                "imageGenerationConfig": config})


def _config(n: int | None, size: str | None, quality: str | None) -> dict[str, object]:
    """``imageGenerationConfig``, which every Nova Canvas task shares."""
    config: dict[str, object] = {"numberOfImages": n or 1}
    width, sep, height = (size or "").partition("x")
    if sep and width.isdigit() and height.isdigit():
        config["width"], config["height"] = int(width), int(height)
    config["quality"] = "premium" if quality in _PREMIUM else "standard"
    return config


def _base64(path: str) -> str:
    with open(path, "rb") as image:
        return base64.b64encode(image.read()).decode()


def images_answer(body: bytes, deployment: str, created: int) -> tuple[bytes, int]:
    """OpenAI's ``ImagesResponse`` for the model's answer, and how many images it holds."""
    try:
        answer = _invoked.decode(body)
    except msgspec.DecodeError as exc:
        raise UpstreamProtocolError(f"unreadable Bedrock image answer: {exc}",
                                    deployment=deployment) from exc
    if answer.error or not answer.images:
        raise ContentFiltered(f"The model returned no image: {answer.error or 'none came back'}",
                              deployment=deployment)
    return images_response(created, answer.images), len(answer.images)


# -- rerank: bedrock-agent-runtime's Rerank API ---------------------------------------------

DOCUMENTS_PER_QUERY = 100
"""Bedrock bills a rerank by queries, one for every 100 documents."""


class _Reranked(msgspec.Struct):
    index: int
    relevanceScore: float


class _RerankAnswer(msgspec.Struct):
    results: list[_Reranked] = msgspec.field(default_factory=list)


class _Result(msgspec.Struct, omit_defaults=True):
    index: int
    relevance_score: float
    document: dict[str, str] | None = None


class _BilledUnits(msgspec.Struct):
    search_units: int


class _Meta(msgspec.Struct):
    billed_units: _BilledUnits


class _Ranking(msgspec.Struct):
    results: list[_Result]
    meta: _Meta


_rerank_answer = msgspec.json.Decoder(_RerankAnswer)
_documents = msgspec.json.Decoder(list[str | dict[str, object]])
_bool = msgspec.json.Decoder(bool | None)


def rerank_url(base_url: str) -> str:
    """The Rerank API is on bedrock-agent-runtime's host, beside the runtime's the provider
    names (``https://bedrock-runtime.<region>.amazonaws.com``); any other base (a proxy, a
    simulator, a VPC endpoint) serves ``/rerank`` itself."""
    return base_url.replace("//bedrock-runtime.", "//bedrock-agent-runtime.", 1) + "/rerank"


def model_arn(model: str, region: str) -> str:
    """A foundation model's ARN (the Rerank API takes ARNs only); an ARN as given."""
    if model.startswith("arn:"):
        return model
    return f"arn:aws:bedrock:{region}::foundation-model/{model}"


def rerank_body(request: MediaRequest, arn: str) -> tuple[bytes, int]:
    """The Rerank API's body for a Jina/Cohere-style request, and the searches it bills;
    routing has checked the fields (``serves``)."""
    fields = request.fields or {}
    documents = _documents.decode(fields["documents"])
    sources = [{"type": "INLINE", "inlineDocumentSource": (
        {"type": "TEXT", "textDocument": {"text": d}} if isinstance(d, str)
        else {"type": "JSON", "jsonDocument": d})} for d in documents]
    config: dict[str, object] = {"modelConfiguration": {"modelArn": arn}}
    top_n = _int.decode(fields["top_n"]) if "top_n" in fields else None
    if top_n is not None:
        config["numberOfResults"] = min(top_n, len(documents))
    body = {"queries": [{"type": "TEXT", "textQuery": {"text": _str.decode(fields["query"])}}],
            "sources": sources,
            "rerankingConfiguration": {"type": "BEDROCK_RERANKING_MODEL",
                                       "bedrockRerankingConfiguration": config}}
    searches = -(-len(documents) // DOCUMENTS_PER_QUERY)
    return msgspec.json.encode(body), searches


def rerank_answer(body: bytes, request: MediaRequest, searches: int, deployment: str) -> bytes:
    """Cohere's v2 shape (``results`` with ``relevance_score``, ``meta.billed_units``) for the
    Rerank API's answer; ``document`` only when the client asked (``return_documents``)."""
    try:
        answer = _rerank_answer.decode(body)
    except msgspec.DecodeError as exc:
        raise UpstreamProtocolError(f"unreadable Bedrock rerank answer: {exc}",
                                    deployment=deployment) from exc
    fields = request.fields or {}
    documents = _documents.decode(fields["documents"])
    wanted = "return_documents" in fields and _bool.decode(fields["return_documents"])
    results = []
    for r in answer.results:
        document = None
        if wanted and 0 <= r.index < len(documents) and isinstance(documents[r.index], str):
            document = {"text": str(documents[r.index])}
        results.append(_Result(r.index, r.relevanceScore, document))
    return msgspec.json.encode(_Ranking(results, _Meta(_BilledUnits(searches))))
