"""Learning from traffic: a request through the openai SDK, a label for it through
``POST /v1/feedback`` (a key labels only its own requests), the label and — with the key's
consent (``retain_bodies``) — what the router read of the prompt in the ledger row, then
``polyroute router train --from-ledger`` training a head per deployment from those rows."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from polyroute.autorouter.artifact import RouterArtifact
from tests.conftest import SIM_KEY, sim_provider
from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, new_key
from tests.support.postgres import scratch_database
from tests.support.sim import SimServer

PRICE = {"input_per_1m": 1.0, "output_per_1m": 2.0}
PROMPTS = ["Add 2 and 3.", "Name a colour of the sky.", "Write a haiku about rain.",
           "Translate 'cat' into French.", "What is 7 times 6?", "Spell 'polyroute'."]
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def config(sim: SimServer, storage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "providers": {"sim": sim_provider(sim)},
        "model_groups": {"chat": {"routing": "priority", "deployments": [
            {"provider": "sim", "model": "echo-small", "name": "small", "price": PRICE}]},
            "big": {"deployments": [
                {"provider": "sim", "model": "big-model", "name": "large", "price": PRICE}]}},
        "auth": {"master_key": "${PR_MASTER}"},
        "storage": {"flush_interval_s": 0.05, **(storage or {})},
    }


@pytest.fixture(scope="module")
def gw(sim: SimServer) -> Iterator[GatewayProcess]:
    with GatewayProcess(config(sim), env={"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}) as g:
        yield g


def chat(gw: GatewayProcess, key: str, prompt: str, model: str = "chat") -> str:
    reply = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) \
        .chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": prompt}])
    return str(reply.headers["x-request-id"])


def feedback(gw: GatewayProcess, key: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        gw.base_url + "/feedback", method="POST", data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with _OPENER.open(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def row(gw: GatewayProcess, rid: str) -> tuple[Any, ...]:
    with sqlite3.connect(gw.db_path) as conn:
        found = conn.execute("SELECT feedback_score, feedback_kind, prompt FROM ledger "
                             "WHERE request_id = ?", (rid,)).fetchone()
    assert found is not None
    return tuple(found)


def test_a_key_labels_its_own_request(gw: GatewayProcess) -> None:
    consenting = new_key(gw, governance={"retain_bodies": True})
    rid = chat(gw, consenting, "Say hello.")
    assert feedback(gw, consenting, {"request_id": rid, "thumbs": "up"}) == (
        200, {"request_id": rid, "score": 1.0, "kind": "thumbs"})
    assert row(gw, rid) == (1.0, "thumbs", "Say hello.")
    assert feedback(gw, consenting, {"request_id": rid, "verdict": "fail"})[0] == 200
    assert row(gw, rid)[:2] == (0.0, "verdict")  # the newest label wins


def test_no_label_for_another_keys_request_and_no_prompt_without_consent(
        gw: GatewayProcess) -> None:
    owner, other = new_key(gw), new_key(gw)
    rid = chat(gw, owner, "Say hello.")
    status, body = feedback(gw, other, {"request_id": rid, "score": 0.5})
    assert status == 404 and body["error"]["param"] == "request_id"
    assert feedback(gw, owner, {"request_id": rid, "score": 0.5})[0] == 200
    assert row(gw, rid) == (0.5, "score", None)  # labelled, but its text was not kept


@pytest.mark.parametrize("body", [
    {"request_id": "x"}, {"request_id": "x", "score": 2}, {"request_id": "x", "thumbs": "meh"},
    {"request_id": "x", "score": 1, "thumbs": "up"}, {"score": 1}, [1]])
def test_bad_feedback_is_a_400_in_openai_shape(gw: GatewayProcess, body: Any) -> None:
    status, answer = feedback(gw, new_key(gw), body)
    assert status == 400 and answer["error"]["type"] == "invalid_request_error"


def test_unauthenticated_feedback_is_refused(gw: GatewayProcess) -> None:
    assert feedback(gw, "sk-not-a-key", {"request_id": "x", "score": 1})[0] == 401


def test_train_from_the_ledger(gw: GatewayProcess, tmp_path: Path) -> None:
    key = new_key(gw, governance={"retain_bodies": True})
    for i, prompt in enumerate(PROMPTS):  # the small model is good at arithmetic only
        for model, good in (("chat", "2" in prompt or "7" in prompt), ("big", True)):
            rid = chat(gw, key, prompt, model)
            assert feedback(gw, key, {"request_id": rid,
                                      "score": 1.0 if good else 0.0})[0] == 200, i
    out = tmp_path / "router.npz"
    done = subprocess.run(
        [sys.executable, "-m", "polyroute", "router", "train", "--from-ledger", "--config",
         str(gw.config_path), "--out", str(out), "--max-iterations", "50", "-q"],
        capture_output=True, text=True, timeout=120,
        env={"PR_MASTER": MASTER_KEY, "SIM_KEY": SIM_KEY, "PATH": "/usr/bin:/bin",
             "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr
    assert "ledger:" in done.stderr
    artifact = RouterArtifact.load(out)
    heads = {h.name: h for h in artifact.heads}
    assert set(heads) >= {"small", "large"}
    assert heads["large"].mean_quality == 1.0
    assert 0.0 < heads["small"].mean_quality < 1.0
    assert artifact.training["rows"] >= len(PROMPTS)


def test_labels_on_postgres(sim: SimServer) -> None:
    with scratch_database("feedback") as url, GatewayProcess(
            config(sim, {"postgres_url": url}),
            env={"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}) as gw:
        owner, other = new_key(gw, governance={"retain_bodies": True}), new_key(gw)
        rid = chat(gw, owner, "Say hello.")
        assert feedback(gw, other, {"request_id": rid, "thumbs": "up"})[0] == 404
        assert feedback(gw, owner, {"request_id": rid, "thumbs": "down"})[0] == 200
