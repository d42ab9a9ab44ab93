"""Reading a batch file the way budgets need it (engine/batch_file.py): pure functions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from polyroute.engine.batch_file import output_usage, read_input, rewrite
from polyroute.errors import InvalidRequest


def line(custom_id: str, **body: Any) -> bytes:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": "chat", "messages": [{"role": "user", "content": "hi"}],
                                **body}}, separators=(",", ":")).encode()


def test_the_worst_case_counts_each_lines_limit_times_n_or_the_default() -> None:
    content = b"\n".join([line("a", max_tokens=10, n=3), line("b"),
                          line("c", max_completion_tokens=7), b""])
    summary, items = read_input(content, default_output=100)
    assert (summary.model, summary.url, summary.lines) == ("chat", "/v1/chat/completions", 3)
    assert summary.output_tokens == 10 * 3 + 100 + 7
    bodies = [json.dumps(i["body"], separators=(",", ":")) for i in items]
    assert summary.input_tokens == sum(len(b) // 4 + 1 for b in bodies)


@pytest.mark.parametrize("content", [
    b"{not json}",
    line("a") + b"\n" + line("a"),                                   # custom_id twice
    line("a") + b"\n" + line("b").replace(b'"chat"', b'"other"'),    # two models
    line("a", max_tokens=0),
    line("a", n=True),
    line("a").replace(b'"POST"', b'"GET"'),
    b"\n\n",
])
def test_bad_files_are_refused_naming_the_file(content: bytes) -> None:
    with pytest.raises(InvalidRequest) as refused:
        read_input(content, default_output=100)
    assert refused.value.param == "file"


def test_rewrite_names_the_deployments_model_and_caps_only_lines_without_a_limit() -> None:
    _, items = read_input(line("a", max_tokens=5) + b"\n" + line("b"), default_output=100)
    out = [json.loads(x) for x in rewrite(items, "gpt-4o-mini", 100, "max_completion_tokens",
                                          azure=True).splitlines()]
    assert [o["body"]["model"] for o in out] == ["gpt-4o-mini"] * 2
    assert out[0]["body"]["max_tokens"] == 5 and "max_completion_tokens" not in out[0]["body"]
    assert out[1]["body"]["max_completion_tokens"] == 100
    assert {o["url"] for o in out} == {"/chat/completions"}  # Azure's, without /v1
    plain = [json.loads(x) for x in rewrite(items, "m", None, "max_tokens",
                                            azure=False).splitlines()]
    assert "max_tokens" not in plain[1]["body"] and plain[1]["url"] == "/v1/chat/completions"


def test_output_usage_sums_answered_lines_only() -> None:
    def out(usage: Any, status: int = 200) -> bytes:
        return json.dumps({"custom_id": "x", "response": {"status_code": status, "body": {
            "usage": usage} if usage else {"error": {}}}, "error": None}).encode()

    content = b"\n".join([
        out({"prompt_tokens": 10, "completion_tokens": 3,
             "prompt_tokens_details": {"cached_tokens": 4},
             "completion_tokens_details": {"reasoning_tokens": 2}}),
        out({"prompt_tokens": 5, "completion_tokens": 1}),
        out(None, 500), b"garbage", b""])
    usage, answered = output_usage(content)
    assert answered == 2
    assert (usage.prompt_tokens, usage.completion_tokens) == (15, 4)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (4, 2)
