"""``router train --from-ledger``: the ledger's labelled requests as the router's traffic JSONL
(``polyroute/autorouter/readers/traffic.py``), one line per labelled answer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from polyroute.storage.feedback import LabelledRow, labelled_rows


def export_labelled(config_path: str | None, out: Path) -> int:
    """Write every labelled request whose prompt was kept; returns how many. The model is
    the deployment that answered (so a configured deployment becomes a head of its own name:
    give it ``profile: <deployment name>``), the task its model group."""
    from polyroute.config import load_config
    from polyroute.wiring import open_database

    config = load_config(config_path)

    async def read() -> list[LabelledRow]:
        db = open_database(config)
        await db.start()
        try:
            return await labelled_rows(db)
        finally:
            await db.close()

    rows = asyncio.run(read())
    with out.open("w", encoding="utf-8") as handle:
        for row in rows:
            line: dict[str, object] = {"prompt": row.prompt, "model": row.deployment,
                                       "score": row.score, "task": row.model_group or "traffic"}
            if row.cost_usd is not None:
                line["cost"] = row.cost_usd
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    return len(rows)
