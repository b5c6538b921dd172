"""The DAG's doc_md: the web UI's explanation of the graph (nodes with step and image, edges, source)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from tests.support import corpus
from tests.support.cases import Files
from tests.support.markdown import table_rows
from valohai_airflow.airflow.factory import build_dag, build_dags
from valohai_airflow.loading.project import compile_project

YAML = textwrap.dedent(
    """
    - step:
        name: prepare data
        image: busybox:1.36
        command: echo prep
    - step:
        name: train
        image: python:3.11-slim
        command: python train.py {parameters}
        parameters:
          - name: epochs
            type: integer
            default: 3
        inputs:
          - name: data
    - endpoint:
        name: predict
        image: python:3.11
        server-command: python serve.py
        files:
          - name: model
            path: model.pkl
    - pipeline:
        name: Train | deploy
        parameters:
          - name: epochs
            targets: [train.parameter.epochs]
            default: 5
        nodes:
          - name: prep
            type: execution
            step: prepare data
          - name: train
            type: execution
            step: train
            override:
              image: python:3.12-slim
          - name: ship
            type: deployment
            deployment: prod
            endpoints: [predict]
        edges:
          - [prep.output.*.csv, train.input.data]
          - [train.output.model.pkl, ship.file.predict.model]
    """
)


def test_doc_md_shows_nodes_edges_parameters_and_source(tmp_path: Path) -> None:
    (tmp_path / "valohai.yaml").write_text(YAML)
    plan = compile_project(tmp_path / "valohai.yaml", project_name="shop")
    (pipeline,) = plan.pipelines
    doc = build_dag(plan, pipeline).doc_md
    assert doc.startswith("# Train \\| deploy\n")
    assert f"Valohai pipeline from `{tmp_path / 'valohai.yaml'}` (project `shop`)." in doc
    assert table_rows(doc, "node") == [
        ["prep", "execution", "prepare data", "busybox:1.36"],
        ["train", "execution", "train", "python:3.12-slim"],  # the override's image, as it runs
        ["ship", "deployment", "prod", ""],
    ]
    assert table_rows(doc, "edge from") == [
        ["`prep.output.*.csv`", "`train.input.data`"],
        ["`train.output.model.pkl`", "`ship.file.predict.model`"],
    ]
    assert table_rows(doc, "pipeline parameter") == [["epochs", "`5`", "train.parameter.epochs"]]


# per group: the shape fixtures and valohai-yaml's files; the optional corpus
DOCUMENTED_DAGS = {corpus.FIXTURES: 30, "corpus": 33}


@pytest.mark.parametrize("group", corpus.GROUPS)
def test_every_corpus_dag_documents_every_node_and_edge(files: Files, group: str) -> None:
    documented = 0
    for path, plan in corpus.compiled(corpus.group_paths(files, group)):
        dags = {dag.dag_display_name: dag for dag in build_dags(plan).values()}
        for pipeline in plan.pipelines:
            doc = dags[pipeline.name].doc_md
            # the path as given, not resolved: a project reached through a symlink is named by its link
            assert f"`{os.path.abspath(path)}`" in doc
            nodes = table_rows(doc, "node")
            assert [row[0] for row in nodes] == [n.name.replace("|", "\\|") for n in pipeline.nodes]
            for row, node in zip(nodes, pipeline.nodes, strict=True):
                if node.step is not None:
                    assert row[2:] == [node.step.name, node.step.image], (path.name, row)
            assert len(table_rows(doc, "edge from")) == len(pipeline.edges)
            documented += 1
    assert documented == DOCUMENTED_DAGS[group]
