"""Files and batches (issue 16, item 3): OpenAI's Files and Batch APIs passed through to an
OpenAI-protocol or Azure OpenAI deployment (or run on Anthropic's Message Batches, or as a
Bedrock batch inference job, :mod:`.batch_translation`), with polyroute keeping

- **ownership**: which key owns which file and batch; every read, list, download, cancel and
  delete names the owner, so another key's id is simply not found (404);
- **ids**: polyroute's own (``file-pr…``, ``batch_pr…``), mapped to the upstream's and to the
  deployment that holds the object (a file uploaded to one deployment can only be batched
  there); the output and error files a batch produces are adopted as the batch owner's files;
- **money**: a batch reserves its worst case when it is created (every line's prompt estimate
  and output limit, at the batch price: the catalog's ``batch`` fraction of the deployment's)
  and is settled when it ends — on the first retrieve or list that sees it in a final state,
  or by the poller (:meth:`Batches.poll`) — from the usage in its output file, at the batch
  price; the rest of the reservation is released.

A file is routed when it is uploaded: the model its lines name is a model group (or
``vendor/model``), and the first of the group's deployments, in the group's order, that
speaks a protocol with a Batch API takes it; its lines are rewritten to that deployment's
model."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from polyroute.adapters.anthropic_messages.batches import PROTOCOL as ANTHROPIC
from polyroute.adapters.anthropic_messages.batches import MessageBatchClient, results_usage
from polyroute.adapters.bedrock_converse.batch import PROTOCOL as BEDROCK
from polyroute.adapters.bedrock_converse.batch import (
    BedrockBatchClient,
    batch_options,
    outside_quotas,
)
from polyroute.adapters.bedrock_converse.families import ANTHROPIC as CLAUDE
from polyroute.adapters.bedrock_converse.families import (
    family_named,
    family_of,
    known_families,
)
from polyroute.adapters.openai_chat.files import PROTOCOLS, FilesClient
from polyroute.engine.batch_file import (
    CHAT_URLS,
    EMBEDDING_URLS,
    BatchInput,
    output_usage,
    read_input,
    rewrite,
)
from polyroute.engine.batch_translation import (
    bedrock_batch,
    bedrock_results,
    openai_batch,
    openai_results,
    to_anthropic,
    to_bedrock,
)
from polyroute.engine.observer import RequestObserver
from polyroute.engine.owned import OwnedObjects, first_that_takes, owner_of, text
from polyroute.engine.router import Router
from polyroute.errors import GatewayError, InvalidRequest
from polyroute.model.record import RequestRecord
from polyroute.model.upstream import Deployment
from polyroute.model.usage import Usage
from polyroute.policy.prices import Prices
from polyroute.policy.types import Policy, Principal
from polyroute.storage.objects import ObjectStore, Owned

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode
FINAL = frozenset({"completed", "failed", "expired", "cancelled"})
"""A batch in one of these states runs no more: it is settled."""
_LIST_MAX = 10_000
_WINDOWS = frozenset({"24h"})
_LOCAL = "local:"
"""The upstream id of a file polyroute keeps itself (an OpenAI batch run on Anthropic's
Message Batches: its input, output and error files)."""


class Batches(OwnedObjects):
    """OpenAI's Files and Batch APIs."""

    def __init__(self, router: Callable[[], Router], policy: Policy, files: FilesClient,
                 store: ObjectStore, prices: Prices, default_output: int,
                 clock: Callable[[], float] = time.time,
                 observers: Sequence[RequestObserver] = (),
                 messages: MessageBatchClient | None = None,
                 bedrock: BedrockBatchClient | None = None) -> None:
        super().__init__(router, policy, store, prices, clock, observers)
        self._messages = messages
        """Anthropic's Message Batches, for groups with no deployment that has a Batch API."""
        self._bedrock = bedrock
        """Bedrock batch inference, for groups whose batch-capable deployments are Bedrock
        providers with batch_s3_uri and batch_role_arn."""
        self._files = files
        self._default_output = default_output

    # -- files ----------------------------------------------------------------------------
    async def upload(self, principal: Principal, filename: str, purpose: str,
                     content: bytes) -> dict[str, Any]:
        if purpose != "batch":
            raise InvalidRequest("polyroute keeps files for batches only: purpose must be "
                                 "'batch'.", param="purpose")
        summary, items = read_input(content, self._default_output)
        group, deployments = self._route(principal, summary.model,
                                         PROTOCOLS | {ANTHROPIC, BEDROCK},
                                         "OpenAI, Azure OpenAI, Anthropic or Bedrock "
                                         "deployments (protocol openai, azure, "
                                         "openai_responses, anthropic or bedrock)")
        cap = self._policy.output_cap(principal)
        native = [d for d in deployments if d.endpoint.protocol in PROTOCOLS]
        if not native:  # the batch runs on Anthropic's Message Batches or Bedrock's jobs
            skipped = []
            for deployment in deployments:
                if deployment.endpoint.protocol == ANTHROPIC and self._messages is not None:
                    return await self._keep_locally(principal, filename, content, group,
                                                    summary, items, deployment, cap)
                if self._bedrock is not None and batch_options(deployment) is not None:
                    if family_of(deployment.model) is None:
                        skipped.append(f"'{deployment.name}' runs {deployment.model}, of no "
                                       "model family Bedrock batches are written for")
                        continue
                    return await self._keep_locally(principal, filename, content, group,
                                                    summary, items, deployment, cap,
                                                    via=BEDROCK)
            if skipped:
                raise InvalidRequest(
                    f"No deployment of model '{group}' can run this batch: "
                    f"{'; '.join(skipped)} (Bedrock batches run {known_families()}).",
                    param="model", code="unsupported_endpoint")
            raise InvalidRequest(f"No deployment of model '{group}' has a Batch API (a "
                                 "Bedrock provider runs batches with options.batch_s3_uri "
                                 "and options.batch_role_arn).", param="model",
                                 code="unsupported_endpoint")

        async def upload(deployment: Deployment) -> dict[str, Any]:
            endpoint = deployment.endpoint
            body = rewrite(items, deployment.model, cap,
                           endpoint.quirks.max_tokens_field or "max_completion_tokens",
                           azure=endpoint.protocol == "azure")
            return _decode(await self._files.upload(endpoint, deployment.name, filename,
                                                    purpose, body))

        deployment, upstream = await first_that_takes(native, upload)
        oid = f"file-pr{uuid.uuid4().hex[:24]}"
        shown = {**upstream, "id": oid, "filename": filename}
        detail = {"group": group, "model": summary.model, "url": summary.url,
                  "lines": summary.lines, "input_tokens": summary.input_tokens,
                  "output_tokens": summary.output_tokens}
        await self._store.add(Owned(oid, "file", owner_of(principal), str(upstream["id"]),
                                    deployment.name, self._clock(), text(shown),
                                    text(detail)))
        return shown

    async def files(self, principal: Principal, limit: int,
                    after: str | None) -> dict[str, Any]:
        rows = await self._store.owned_by(owner_of(principal), "file", _LIST_MAX)
        return _page([_decode(row.object) for row in rows], limit, after)

    async def file(self, principal: Principal, oid: str) -> dict[str, Any]:
        return _decode((await self._owned(principal, oid, "file")).object)

    async def content(self, principal: Principal, oid: str) -> bytes:
        owned = await self._owned(principal, oid, "file")
        if owned.upstream_id.startswith(_LOCAL):
            return str(_decode(owned.detail)["content"]).encode()
        deployment = self._deployment(owned.deployment)
        return await self._files.call(deployment.endpoint, deployment.name, "GET",
                                      f"/files/{owned.upstream_id}/content")

    async def delete_file(self, principal: Principal, oid: str) -> dict[str, Any]:
        owned = await self._owned(principal, oid, "file")
        if not owned.upstream_id.startswith(_LOCAL):
            deployment = self._deployment(owned.deployment)
            await self._files.call(deployment.endpoint, deployment.name, "DELETE",
                                   f"/files/{owned.upstream_id}")
        await self._store.delete(oid, owned.owner)
        return {"id": oid, "object": "file", "deleted": True}

    # -- batches --------------------------------------------------------------------------
    async def create(self, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        file_id, endpoint_path = body.get("input_file_id"), body.get("endpoint")
        window = body.get("completion_window", "24h")
        if not isinstance(file_id, str) or not file_id:
            raise InvalidRequest("'input_file_id' is required.", param="input_file_id")
        if endpoint_path not in CHAT_URLS | EMBEDDING_URLS:
            raise InvalidRequest("'endpoint' must be /v1/chat/completions or /v1/embeddings.",
                                 param="endpoint")
        if window not in _WINDOWS:
            raise InvalidRequest("'completion_window' must be 24h.", param="completion_window")
        source = await self._owned(principal, file_id, "file", param="input_file_id")
        detail = _decode(source.detail)
        if "lines" not in detail:
            raise InvalidRequest(f"The file {file_id} is not a batch input file.",
                                 param="input_file_id")
        if detail["url"].removeprefix("/v1") != str(endpoint_path).removeprefix("/v1"):
            raise InvalidRequest(f"The file's lines call {detail['url']}, not {endpoint_path}.",
                                 param="endpoint")
        deployment = self._deployment(source.deployment)
        ticket = await self._reserve(principal, detail["group"], [deployment],
                                     detail["input_tokens"], detail["output_tokens"])
        oid = f"batch_pr{uuid.uuid4().hex[:24]}"
        if detail.get("via") == BEDROCK:
            return await self._create_on_bedrock(principal, oid, source, detail, deployment,
                                                 ticket, body.get("metadata"))
        if detail.get("via") == ANTHROPIC:
            return await self._create_on_anthropic(principal, oid, source, detail, deployment,
                                                   ticket, body.get("metadata"))
        azure = deployment.endpoint.protocol == "azure"
        sent: dict[str, Any] = {
            "input_file_id": source.upstream_id, "completion_window": window,
            "endpoint": str(endpoint_path).removeprefix("/v1") if azure else endpoint_path}
        if body.get("metadata") is not None:
            sent["metadata"] = body["metadata"]
        record = self._record(oid, principal, detail, deployment)
        try:
            upstream = _decode(await self._files.call(
                deployment.endpoint, deployment.name, "POST", "/batches", _encode(sent)))
        except GatewayError as exc:
            self._refund(ticket, record, exc)
            raise
        self._tickets[oid] = ticket
        shown = await self._shown(oid, source.owner, upstream, deployment.name)
        shown["input_file_id"] = file_id
        keep = {**detail, "key_id": principal.key_id, "team": principal.team,
                "org": principal.org, "input_file_id": file_id}
        await self._store.add(Owned(oid, "batch", owner_of(principal), str(upstream["id"]),
                                    deployment.name, record.started_at, text(shown),
                                    text(keep)))
        return shown

    async def batch(self, principal: Principal, oid: str) -> dict[str, Any]:
        return await self._refresh(await self._owned(principal, oid, "batch"))

    async def batches(self, principal: Principal, limit: int,
                      after: str | None) -> dict[str, Any]:
        rows = await self._store.owned_by(owner_of(principal), "batch", _LIST_MAX)
        page = _page([_decode(row.object) for row in rows], limit, after)
        by_id = {row.id: row for row in rows}
        page["data"] = [await self._refresh(by_id[obj["id"]]) for obj in page["data"]]
        return page

    async def cancel(self, principal: Principal, oid: str) -> dict[str, Any]:
        owned = await self._owned(principal, oid, "batch")
        deployment = self._deployment(owned.deployment)
        if self._bedrock is not None and _decode(owned.detail).get("via") == BEDROCK:
            await self._bedrock.job(deployment, "POST",
                                    self._bedrock.job_path(owned.upstream_id) + "/stop")
            return await self._refresh(owned)
        if self._messages is not None and _decode(owned.detail).get("via") == ANTHROPIC:
            return await self._adopt_anthropic(owned, _decode(await self._messages.call(
                deployment.endpoint, deployment.name, "POST", f"/{owned.upstream_id}/cancel")),
                deployment)
        upstream = _decode(await self._files.call(
            deployment.endpoint, deployment.name, "POST", f"/batches/{owned.upstream_id}/cancel"))
        return await self._adopt(owned, upstream, deployment)

    async def poll(self) -> int:
        """Look at every unsettled batch once (the background poller); the number settled."""
        settled = 0
        for owned in await self._store.unsettled("batch", 1000):
            try:
                shown = await self._refresh(owned)
            except GatewayError:
                continue  # the upstream is down: the next round tries again
            settled += shown.get("status") in FINAL
        return settled

    # -- the parts ------------------------------------------------------------------------
    async def _refresh(self, owned: Owned) -> dict[str, Any]:
        """The batch as the upstream has it now (settled once it is final)."""
        if owned.settled:
            return _decode(owned.object)
        deployment = self._deployment(owned.deployment)
        if self._bedrock is not None and _decode(owned.detail).get("via") == BEDROCK:
            return await self._adopt_bedrock(owned, _decode(await self._bedrock.job(
                deployment, "GET", self._bedrock.job_path(owned.upstream_id))), deployment)
        if self._messages is not None and _decode(owned.detail).get("via") == ANTHROPIC:
            return await self._adopt_anthropic(owned, _decode(await self._messages.call(
                deployment.endpoint, deployment.name, "GET", f"/{owned.upstream_id}")),
                deployment)
        upstream = _decode(await self._files.call(
            deployment.endpoint, deployment.name, "GET", f"/batches/{owned.upstream_id}"))
        return await self._adopt(owned, upstream, deployment)

    async def _adopt(self, owned: Owned, upstream: dict[str, Any],
                     deployment: Deployment) -> dict[str, Any]:
        shown = await self._shown(owned.id, owned.owner, upstream, deployment.name)
        shown["input_file_id"] = _decode(owned.detail).get("input_file_id",
                                                            shown.get("input_file_id"))
        if upstream.get("status") not in FINAL:
            await self._store.update(owned.id, text(shown))
            return shown
        usage: Usage | None = None
        answered = 0
        output = upstream.get("output_file_id")
        if isinstance(output, str) and output:
            usage, answered = output_usage(await self._files.call(
                deployment.endpoint, deployment.name, "GET", f"/files/{output}/content"))
        failure = None
        if upstream.get("status") != "completed" and not answered:
            failure = f"batch_{upstream.get('status')}"
        await self._charge(owned, shown, deployment, usage, failure)
        return shown

    async def _shown(self, oid: str, owner: str, upstream: dict[str, Any],
                     deployment: str) -> dict[str, Any]:
        """The upstream's batch object with polyroute's ids in it; its output and error files
        become the owner's files."""
        shown = {**upstream, "id": oid}
        for name in ("output_file_id", "error_file_id"):
            upstream_file = upstream.get(name)
            if isinstance(upstream_file, str) and upstream_file:
                shown[name] = await self._file_of(owner, upstream_file, deployment, name)
        return shown

    async def _file_of(self, owner: str, upstream_id: str, deployment: str, name: str) -> str:
        known = await self._store.by_upstream(upstream_id, deployment, "file")
        if known is not None:
            return known.id
        oid = f"file-pr{uuid.uuid4().hex[:24]}"
        now = self._clock()
        shown = {"id": oid, "object": "file", "bytes": 0, "created_at": int(now),
                 "filename": "batch_output.jsonl" if name == "output_file_id"
                 else "batch_errors.jsonl", "purpose": "batch_output", "status": "processed"}
        kept = await self._store.adopt(Owned(oid, "file", owner, upstream_id, deployment, now,
                                             text(shown), "{}"))
        return kept.id

    # -- an OpenAI batch on Anthropic's Message Batches ----------------------------------------
    async def _keep_locally(self, principal: Principal, filename: str, content: bytes,
                            group: str, summary: BatchInput, items: list[dict[str, Any]],
                            deployment: Deployment, cap: int | None,
                            via: str = ANTHROPIC) -> dict[str, Any]:
        """Anthropic has no Files API (and Bedrock's input is an S3 object written when the
        batch is created): the file stays here, its lines already translated."""
        family = family_of(deployment.model) if via == BEDROCK else None
        if via == BEDROCK:
            assert family is not None  # the upload's routing skipped models of no family
            requests = to_bedrock(items, deployment, family, cap)
        else:
            requests = to_anthropic(items, deployment, cap)
        oid = f"file-pr{uuid.uuid4().hex[:24]}"
        now = self._clock()
        shown = _file_object(oid, filename, "batch", content, now)
        detail = {"group": group, "model": summary.model, "url": summary.url,
                  "lines": summary.lines, "input_tokens": summary.input_tokens,
                  "output_tokens": summary.output_tokens, "via": via,
                  "requests": requests, "content": content.decode("utf-8", "replace")}
        if family is not None:
            detail["custom_ids"] = [item["custom_id"] for item in items]
            detail["family"] = family.name
        await self._store.add(Owned(oid, "file", owner_of(principal), f"{_LOCAL}{oid}",
                                    deployment.name, now, text(shown), text(detail)))
        return shown

    async def _create_on_anthropic(self, principal: Principal, oid: str, source: Owned,
                                   detail: dict[str, Any], deployment: Deployment,
                                   ticket: object, metadata: Any) -> dict[str, Any]:
        assert self._messages is not None  # files are kept locally only with it
        record = self._record(oid, principal, detail, deployment)
        try:
            upstream = _decode(await self._messages.call(
                deployment.endpoint, deployment.name, "POST",
                body=_encode({"requests": detail["requests"]})))
        except GatewayError as exc:
            self._refund(ticket, record, exc)
            raise
        self._tickets[oid] = ticket
        shown = openai_batch(oid, upstream, source.id, metadata)
        await self._own(oid, principal, source, detail, deployment, record, str(upstream["id"]),
                        shown, metadata)
        return shown

    async def _adopt_anthropic(self, owned: Owned, upstream: dict[str, Any],
                               deployment: Deployment) -> dict[str, Any]:
        assert self._messages is not None
        detail = _decode(owned.detail)
        shown = openai_batch(owned.id, upstream, detail["input_file_id"], detail.get("metadata"))
        if upstream.get("processing_status") != "ended":
            await self._store.update(owned.id, text(shown))
            return shown
        results = await self._messages.call(deployment.endpoint, deployment.name, "GET",
                                            f"/{owned.upstream_id}/results")
        outputs, errors = openai_results(results, deployment.name)
        await self._keep_results(owned, shown, outputs, errors)
        usage, succeeded = results_usage(results)
        await self._charge(owned, shown, deployment, usage,
                           None if succeeded else f"batch_{shown['status']}")
        return shown

    async def _own(self, oid: str, principal: Principal, source: Owned,
                   detail: dict[str, Any], deployment: Deployment, record: RequestRecord,
                   upstream_id: str, shown: dict[str, Any], metadata: Any,
                   **extra: Any) -> None:
        """Keep a batch the gateway translated for another vendor: who owns it, what the
        vendor calls it, and what its settlement will need (not the lines themselves)."""
        keep = {key: value for key, value in detail.items()
                if key not in ("requests", "content")}
        keep.update(key_id=principal.key_id, team=principal.team, org=principal.org,
                    input_file_id=source.id, metadata=metadata, **extra)
        await self._store.add(Owned(oid, "batch", owner_of(principal), upstream_id,
                                    deployment.name, record.started_at, text(shown),
                                    text(keep)))

    async def _keep_results(self, owned: Owned, shown: dict[str, Any], outputs: list[bytes],
                            errors: list[bytes]) -> None:
        """A translated batch's answers as OpenAI's output and error files, kept here."""
        for name, lines, filename in (("output_file_id", outputs, "batch_output.jsonl"),
                                      ("error_file_id", errors, "batch_errors.jsonl")):
            if lines:
                shown[name] = await self._local_file(owned, name, filename,
                                                     b"\n".join(lines) + b"\n")

    # -- an OpenAI batch on Bedrock batch inference ---------------------------------------------
    async def _create_on_bedrock(self, principal: Principal, oid: str, source: Owned,
                                 detail: dict[str, Any], deployment: Deployment,
                                 ticket: object, metadata: Any) -> dict[str, Any]:
        """The records go to ``{batch_s3_uri}{batch id}/input.jsonl``, the job writes under
        ``{batch_s3_uri}{batch id}/output/``."""
        assert self._bedrock is not None  # files are kept for Bedrock only with it
        found = batch_options(deployment)
        if found is None:
            raise InvalidRequest(f"The deployment '{deployment.name}' that holds this file no "
                                 "longer runs batches.", param="input_file_id")
        folder = f"{str(found.batch_s3_uri).rstrip('/')}/{oid}/"
        record = self._record(oid, principal, detail, deployment)
        records = b"\n".join(_encode(r) for r in detail["requests"]) + b"\n"
        written_for = family_named(detail.get("family")) or CLAUDE  # older rows: Anthropic
        refusal = outside_quotas(len(detail["requests"]), len(records), found)
        if family_of(deployment.model) is not written_for:  # the config changed since
            refusal = InvalidRequest(
                f"The deployment '{deployment.name}' now runs {deployment.model}, not a "
                f"{written_for.name} model this file's records were written for: upload the "
                "file again.", param="input_file_id")
        if refusal is not None:  # Bedrock would refuse the job or its records: no upload
            self._refund(ticket, record, refusal)
            raise refusal
        job = {"jobName": oid.replace("_", "-"), "roleArn": found.batch_role_arn,
               "modelId": deployment.model,
               "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"{folder}input.jsonl",
                                                         "s3InputFormat": "JSONL"}},
               "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"{folder}output/"}}}
        try:
            await self._bedrock.put_object(deployment, f"{folder}input.jsonl", records)
            upstream = _decode(await self._bedrock.job(deployment, "POST", body=_encode(job)))
        except GatewayError as exc:
            self._refund(ticket, record, exc)
            raise
        self._tickets[oid] = ticket
        shown = bedrock_batch(oid, {"status": "Submitted"}, source.id, metadata,
                              detail["lines"])
        await self._own(oid, principal, source, detail, deployment, record,
                        str(upstream["jobArn"]), shown, metadata, output=f"{folder}output/")
        return shown

    async def _adopt_bedrock(self, owned: Owned, job: dict[str, Any],
                             deployment: Deployment) -> dict[str, Any]:
        assert self._bedrock is not None
        detail = _decode(owned.detail)
        shown = bedrock_batch(owned.id, job, detail["input_file_id"], detail.get("metadata"),
                              detail["lines"])
        if shown["status"] not in FINAL:
            await self._store.update(owned.id, text(shown))
            return shown
        # Bedrock writes {output}{job id}/input.jsonl.out, also for the records a stopped or
        # failed job ran (they are billed): none at all is S3's 404.
        job_id = owned.upstream_id.rpartition("/")[2]
        out = await self._bedrock.get_object(deployment,
                                             f"{detail['output']}{job_id}/input.jsonl.out")
        family = family_named(detail.get("family")) or CLAUDE  # older rows: Anthropic only
        outputs, errors, usage, succeeded = bedrock_results(
            out or b"", list(detail.get("custom_ids") or []), deployment, family)
        await self._keep_results(owned, shown, outputs, errors)
        await self._charge(owned, shown, deployment, usage if succeeded else None,
                           None if succeeded else f"batch_{shown['status']}")
        return shown

    async def _local_file(self, owned: Owned, name: str, filename: str,
                          content: bytes) -> str:
        oid = f"file-pr{uuid.uuid4().hex[:24]}"
        now = self._clock()
        shown = _file_object(oid, filename, "batch_output", content, now)
        kept = await self._store.adopt(Owned(
            oid, "file", owned.owner, f"{_LOCAL}{owned.id}:{name}", owned.deployment, now,
            text(shown), text({"content": content.decode("utf-8", "replace")})))
        return kept.id


def _file_object(oid: str, filename: str, purpose: str, content: bytes,
                 now: float) -> dict[str, Any]:
    return {"id": oid, "object": "file", "bytes": len(content), "created_at": int(now),
            "filename": filename, "purpose": purpose, "status": "processed"}


def _page(objects: list[dict[str, Any]], limit: int, after: str | None) -> dict[str, Any]:
    """OpenAI's cursor page over objects newest first: ``after`` is the last id seen."""
    if after is not None:
        ids = [obj["id"] for obj in objects]
        objects = objects[ids.index(after) + 1:] if after in ids else []
    data = objects[:limit]
    return {"object": "list", "data": data, "has_more": len(objects) > limit,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}
