"""Statements on demand: the PDF of the newest bill version, rendered once and cached.

A statement is keyed by (customer, year, bill version, language). It is looked up, in order:

1. in memory (a bounded LRU of PDF bytes);
2. the bill run's PDF of that version (``wattbill.statements.statement_path``:
   ``<out>/pdf/<year>/<shard>/<customer>_v<version>.pdf``) when the language asked is the customer's
   (the run's);
3. the service's own cache (``<out>/statements/<year>/<customer>-v<version>-<language>.pdf``);
4. otherwise it is rendered from the bill document (``bills.render_pdf``), written atomically to 3.

Concurrent first requests for one key render once: each key has a lock; the first holder renders,
the others wait and then find the bytes in memory. Rendering holds one process-wide lock as well
(WeasyPrint's renderer is not shared across threads). A recalculation creates a new version, hence
a new key: the new statement is served at once and the old one is never served for it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from wattbill.bills import BillDocument

Key = tuple[str, int, int, str]  # customer_id, year, version, language


class StatementCache:
    """PDF bytes per (customer, year, version); see the module docstring.

    Parameters
    ----------
    out_dir : Path
        The bill run's output folder.
    max_bytes : int
        Bytes of PDFs kept in memory [bytes].
    """

    def __init__(self, out_dir: Path, max_bytes: int = 256 * 2**20) -> None:
        self.out = out_dir
        self.max_bytes = max_bytes
        self._mem: OrderedDict[Key, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._key_locks: dict[Key, threading.Lock] = {}
        self._render_lock = threading.Lock()
        self.renders = 0

    def _remember(self, key: Key, data: bytes) -> None:
        with self._lock:
            if key in self._mem:
                return
            self._mem[key] = data
            self._size += len(data)
            while self._size > self.max_bytes and len(self._mem) > 1:
                _, old = self._mem.popitem(last=False)
                self._size -= len(old)

    def cached(self, key: Key) -> bytes | None:
        """The bytes of ``key`` if they are in memory (no I/O: safe on the event loop)."""
        with self._lock:
            data = self._mem.get(key)
            if data is not None:
                self._mem.move_to_end(key)
            return data

    def own_path(self, key: Key) -> Path:
        customer, year, version, language = key
        return self.out / "statements" / str(year) / f"{customer}-v{version}-{language}.pdf"

    def _run_pdf(self, key: Key) -> bytes | None:
        from wattbill.statements import statement_path

        customer, year, version, _language = key
        try:
            return statement_path(self.out, year, customer, version).read_bytes()
        except (OSError, ValueError):
            return None

    def get(self, key: Key, document: Callable[[], BillDocument], run_pdf_ok: bool = True) -> tuple[bytes, str]:
        """The PDF of ``key`` and where it came from (``memory``, ``run``, ``disk`` or ``rendered``).

        ``document`` builds the bill document when the statement must be rendered; ``run_pdf_ok``:
        the bill run's PDF may serve (it is in the customer's language). Blocking: call it from a
        worker thread.
        """
        data = self.cached(key)
        if data is not None:
            return data, "memory"
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            data = self.cached(key)
            if data is not None:
                return data, "memory"
            source = "run"
            data = self._run_pdf(key) if run_pdf_ok else None
            if data is None:
                path = self.own_path(key)
                source = "disk"
                try:
                    data = path.read_bytes()
                except OSError:
                    data = self._render(key, document())
                    source = "rendered"
            self._remember(key, data)
        with self._lock:
            self._key_locks.pop(key, None)
        return data, source

    def _render(self, key: Key, doc: BillDocument) -> bytes:
        from wattbill.bills import render_pdf

        with self._render_lock:
            data = render_pdf(doc)
            self.renders += 1
        path = self.own_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return data
