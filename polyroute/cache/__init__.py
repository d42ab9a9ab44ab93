"""The response cache's parts: the store protocol the engine holds (``store.py``), its two
backends (``memory.py``, ``redis_store.py``: named only by the composition root), the key
(``key.py``), what is kept and how it replays (``answer.py``) and the client's
``Cache-Control`` (``control.py``)."""
