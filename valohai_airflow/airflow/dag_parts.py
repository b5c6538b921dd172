"""What each DAG of a plan is built from besides the plan: its Params (the trigger form) and its
docs (the DAG's and each task's), derived from the plan alone and kept beside it between parses.

Making them is as much work for a parse as unpickling the plan (the Params: each node's parameters,
inputs and variables with their types, bounds and sources; the docs: a sixth of building a large
DAG), and neither changes while the plan does not. A DAG processor parses in a fresh process: with
the plan from the on-disk cache, its parts come from the loader's folder index entry beside the
plan (`index`; one pickle per project, read with the index) or else from one `parts-*.pickle` file
beside it. They are keyed by what they follow from: the plan's content, this package's version,
Airflow's (the Params are its objects) and its `[operators] default_queue` (which the docs name).
A worker that builds only the DAG it runs makes only that DAG's parts, and such a partial set is
never cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from airflow.sdk import Param

from valohai_airflow import __version__
from valohai_airflow.airflow.docs import PipelineDocs, default_queue, param_defaults, pipeline_docs
from valohai_airflow.airflow.params import pipeline_params
from valohai_airflow.loading import pickle_cache
from valohai_airflow.loading.folder_index import FolderIndex
from valohai_airflow.plan.model import PipelinePlan, ProjectPlan

# Bump when the Params or the docs a plan gives change, so parts made by an older version are not read back.
# (docs-*.pickle before: 2: one file per project; 3: each node says its network; 4: keyed by title, steps too)
PARTS_FORMAT = 5  # 5: the Params beside the docs

#: (the DAG's Params, (the DAG's doc_md, each node's doc_md by node name))
DagParts = tuple[dict[str, Param], PipelineDocs]


def project_parts(
    project: ProjectPlan,
    plans: Sequence[PipelinePlan],
    cache_dir: Path | None = None,
    index: FolderIndex | None = None,
    queue: str | None = None,
) -> dict[str, DagParts]:
    """The parts of `plans` (DAG plans of `project`: all of them, or the one a worker runs), by
    title. `queue`: Airflow's default queue, when the caller has read it already."""
    from airflow import __version__ as airflow_version

    queue = default_queue() if queue is None else queue
    key = (
        str(PARTS_FORMAT),
        __version__,
        airflow_version,
        project.source,
        project.content_hash,
        project.name,
        queue,
    )
    attachment = "parts\0" + "\0".join(key)
    attached = index.attachment(project.source, attachment) if index is not None else None
    if attached is not None and isinstance(cached := pickle_cache.loads(attached), dict):
        return cached
    path = pickle_cache.cache_path(cache_dir, "parts", *key) if cache_dir is not None else None
    cached = pickle_cache.load(path) if path is not None else None
    if isinstance(cached, dict):
        parts, complete = cached, True
    else:
        parts = {p.title: _parts(project, p, queue) for p in plans}
        complete = len(plans) == len(project.dag_plans)
    if not complete:  # a partial set is never cached
        return parts
    if index is not None and index.attach(project.source, attachment, pickle_cache.dumps(parts)):
        return parts
    if path is not None and cached is None:
        pickle_cache.store(path, parts)
    return parts


def _parts(project: ProjectPlan, pipeline: PipelinePlan, queue: str) -> DagParts:
    params = pipeline_params(pipeline)
    return params, pipeline_docs(project, pipeline, param_defaults(params), queue)
