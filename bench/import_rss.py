"""Private memory (RssAnon) that importing the gateway costs, and which heavy optional
libraries came with it: ``python bench/import_rss.py`` (PYTHONPATH picks the tree)."""

from __future__ import annotations

import sys
from pathlib import Path

HEAVY = {"redis", "numpy", "botocore", "opentelemetry"}


def rss_anon_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    before = rss_anon_mb()
    import polyroute.app
    import polyroute.cli

    polyroute.cli._parser()  # what 'polyroute serve' builds before it reads the config
    assert polyroute.app.build_app is not None
    loaded = sorted({name.split(".")[0] for name in sys.modules} & HEAVY)
    print(f"{rss_anon_mb() - before:.1f} MB RssAnon for polyroute.app + polyroute.cli + parser; "
          f"heavy libraries imported: {', '.join(loaded) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
