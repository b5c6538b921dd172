"""Stable identities for one try of one node, so a retry or a re-read finds the same names.

The execution id is a UUID5 of (dag_id, run_id, node, map_index, try_number): the same inputs
always give the same id, which makes store prefixes and `VH_EXECUTION_ID` reproducible.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass

#: Fixed namespace for valohai-airflow execution ids (never change it: ids would change).
NAMESPACE = uuid.UUID("5d0c6a62-3f1e-5b7a-9a43-8c1f2f0b7d21")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def execution_id(dag_id: str, run_id: str, node: str, map_index: int = -1, try_number: int = 1) -> str:
    """A UUID string; unmapped tasks use map_index -1 like Airflow does."""
    name = json.dumps([dag_id, run_id, node, int(map_index), int(try_number)], separators=(",", ":"))
    return str(uuid.uuid5(NAMESPACE, name))


def job_id(exec_id: str) -> str:
    """`VH_JOB_ID`: Valohai's "exec-" + execution id."""
    return f"exec-{exec_id}"


def safe_segment(text: str) -> str:
    """A store-key/directory segment: unsafe characters become `_`, and a short hash keeps two
    different names that sanitise alike apart (`a:b` and `a_b`)."""
    cleaned = _UNSAFE.sub("_", text)
    if cleaned in ("", ".", ".."):
        cleaned = "_" + cleaned
    if cleaned != text:
        cleaned += "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return cleaned


@dataclass(frozen=True, slots=True)
class ExecutionKey:
    """Who this try is: everything that makes its work dir and store prefix unique."""

    dag_id: str
    run_id: str
    node: str
    map_index: int = -1
    try_number: int = 1

    @property
    def execution_id(self) -> str:
        return execution_id(self.dag_id, self.run_id, self.node, self.map_index, self.try_number)

    @property
    def job_id(self) -> str:
        return job_id(self.execution_id)

    @property
    def prefix(self) -> str:
        """Store key prefix `<dag>/<run>/<node>/<map index>/<try>`."""
        return "/".join(
            (
                safe_segment(self.dag_id),
                safe_segment(self.run_id),
                safe_segment(self.node),
                str(self.map_index),
                str(self.try_number),
            )
        )
