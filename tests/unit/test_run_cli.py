"""`valohai-airflow run` before anything is triggered: the DAG, the names and the values are checked
against the compiled plan of the example project (no Airflow, no network); the client's settings
and the output download against a real local store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from valohai_airflow import cli
from valohai_airflow.client import ClientError, ClientSettings, NodeState, download_outputs
from valohai_airflow.plan.model import DagKind
from valohai_airflow.run_cli import Progress
from valohai_airflow.run_conf import RunArgumentError, build_conf, resolve_target
from valohai_airflow.runtime.manifest import Manifest, ManifestFile
from valohai_airflow.store import open_store
from valohai_airflow.store.resolver import StoreResolver

EXAMPLE = REPO_ROOT / "dags" / "example"


def test_a_step_resolves_to_its_dag_and_plain_names_to_form_keys() -> None:
    target = resolve_target(EXAMPLE, "train", DagKind.STEP)
    assert target.dag_id == "example__step__train"
    conf = build_conf(
        target.plan,
        parameters=["epochs=3", "learning_rate=0.5"],
        inputs=["dataset=s3://bucket/a.npz", "dataset=s3://bucket/b.npz"],
    )
    assert conf == {
        "train.parameter.epochs": 3,
        "train.parameter.learning_rate": 0.5,
        "train.input.dataset": ["s3://bucket/a.npz", "s3://bucket/b.npz"],
    }


def test_a_pipeline_takes_node_dot_name_and_the_form_keys() -> None:
    target = resolve_target(EXAMPLE / "valohai.yaml", "three-trainings", DagKind.PIPELINE)
    assert target.dag_id == "example__three-trainings"
    conf = build_conf(
        target.plan, parameters=["train-fast.epochs=7", "preprocess.parameter.test_fraction=0.3"]
    )
    assert conf == {"train-fast.parameter.epochs": 7, "preprocess.parameter.test_fraction": 0.3}
    assert resolve_target(EXAMPLE, "learning-rates", DagKind.TASK).dag_id == "example__task__learning-rates"


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("trian", DagKind.STEP, "example has no step 'trian' (did you mean \"train\"?)"),
        (
            "three-training",
            DagKind.PIPELINE,
            "no pipeline 'three-training' (did you mean \"three-trainings\"?)",
        ),
        (
            "learning-rate",
            DagKind.TASK,
            "no task blueprint 'learning-rate' (did you mean \"learning-rates\"?)",
        ),
    ],
)
def test_an_unknown_dag_gets_a_did_you_mean(name: str, kind: DagKind, expected: str) -> None:
    with pytest.raises(RunArgumentError) as raised:
        resolve_target(EXAMPLE, name, kind)
    assert expected in str(raised.value)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"parameters": ["epoch=3"]}, "has no parameter 'epoch' (did you mean \"epochs\"?)"),
        ({"inputs": ["datset=x"]}, "has no input 'datset' (did you mean \"dataset\"?)"),
        ({"parameters": ["epochs=abc"]}, "'train.parameter.epochs': 'abc' is not an integer"),
        (
            {"parameters": ["learning_rate=fast"]},
            "'fast' is not a number (train.parameter.learning_rate takes type number)",
        ),
        ({"parameters": ["epochs=0"]}, "'train.parameter.epochs': 0 is less than the minimum of 1"),
        ({"parameters": ["epochs"]}, "--param 'epochs': expected NAME=VALUE"),
        ({"parameters": ["epochs=1", "epochs=2"]}, "parameter 'epochs' given twice"),
    ],
)
def test_bad_arguments_name_the_parameter_and_what_was_expected(
    arguments: dict[str, list[str]], expected: str
) -> None:
    plan = resolve_target(EXAMPLE, "train", DagKind.STEP).plan
    with pytest.raises(RunArgumentError) as raised:
        build_conf(plan, **arguments)
    assert expected in str(raised.value)


def test_a_node_parameter_an_edge_fills_is_not_offered() -> None:
    """train-fast's `features` comes from preprocess's metadata in the example pipeline."""
    plan = resolve_target(EXAMPLE, "three-trainings", DagKind.PIPELINE).plan
    with pytest.raises(RunArgumentError, match=r"has no parameter 'train-fast\.features'"):
        build_conf(plan, parameters=["train-fast.features=3"])


def test_the_cli_refuses_before_contacting_airflow(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable URL is configured: a bad name must fail first (exit 2), with one line."""
    monkeypatch.setenv("AIRFLOW_URL", "http://airflow.invalid:8080")
    assert cli.main(["run", str(EXAMPLE), "trian", "--param", "epochs=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "valohai-airflow run: example has no step 'trian' (did you mean \"train\"?)"


def test_settings_come_from_the_environment_before_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "client.toml"
    config.write_text('url = "http://file:8080/"\ntoken = "from-file"\nusername = "admin"\n')
    settings = ClientSettings.load({"AIRFLOW_URL": "http://env:8080"}, config)
    assert settings == ClientSettings("http://env:8080", "from-file", "admin", None)
    assert (
        ClientSettings.load({"VALOHAI_AIRFLOW_URL": "http://a", "AIRFLOW_URL": "http://b"}, config).url
        == "http://a"
    )
    with pytest.raises(ClientError, match=r"no Airflow URL configured.*AIRFLOW_URL"):
        ClientSettings.load({}, tmp_path / "missing.toml")


def test_download_puts_each_node_in_its_folder_and_refuses_paths_that_climb_out(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    uri = store.put_bytes(b"weights", "run/train/-1/1/outputs/model.npz").uri
    one = Manifest(
        execution_id="e1",
        node="train",
        step="train",
        image="i",
        outputs=[ManifestFile(path="m/model.npz", uri=uri)],
    )
    other = Manifest(
        execution_id="e2",
        node="sweep",
        map_index=2,
        step="train",
        image="i",
        outputs=[ManifestFile(path="model.npz", uri=uri)],
    )
    stores = StoreResolver()
    assert download_outputs(stores, [one], tmp_path / "a") == [tmp_path / "a" / "m" / "model.npz"]
    both = download_outputs(stores, [one, other], tmp_path / "b")
    assert both == [
        tmp_path / "b" / "train" / "m" / "model.npz",
        tmp_path / "b" / "sweep" / "2" / "model.npz",
    ]
    assert both[1].read_bytes() == b"weights"
    evil = Manifest(
        execution_id="e3", node="x", step="x", image="i", outputs=[ManifestFile(path="../../escape", uri=uri)]
    )
    with pytest.raises(ClientError, match="leaves"):
        download_outputs(stores, [evil], tmp_path / "c")
    assert not (tmp_path / "escape").exists()


class _ServedLogs:
    """Stands in for the API server's log endpoint only (the e2e tests use the real one): the lines a
    try has written so far."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def log_lines(self, dag_id: str, run_id: str, node: NodeState) -> list[str]:
        return list(self.lines)


def test_watch_prints_the_log_of_a_node_that_ended_between_two_polls(
    capsys: pytest.CaptureFixture[str],
) -> None:
    served = _ServedLogs(["epoch 1", "epoch 2"])
    progress = Progress(served, "d", "r", watch=True)  # type: ignore[arg-type]
    progress([NodeState("train", -1, "queued", 1)])
    progress([NodeState("train", -1, "success", 1)])  # never seen running
    progress([NodeState("train", -1, "success", 1)])  # printed once, not again
    assert capsys.readouterr().out.splitlines() == [
        "  train: queued",
        "  train | epoch 1",
        "  train | epoch 2",
        "  train: success",
    ]


class _Runs:
    """Stands in for the REST client (no network in unit tests; the e2e test uses the real one):
    two runs' manifests, and the calls the command made."""

    def __init__(self, *_: object) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.stores = StoreResolver()
        self.by_run = {
            "r1": [Manifest(execution_id="aaa", node="train", step="train", image="i", status="completed")],
            "r2": [Manifest(execution_id="bbb", node="train", step="train", image="i", status="completed")],
        }
        _Runs.last = self

    last: _Runs

    def __enter__(self) -> _Runs:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def manifests(self, dag_id: str, run_id: str) -> list[Manifest]:
        self.calls.append(("manifests", dag_id, run_id))
        return self.by_run[run_id]

    def find_execution(self, dag_id: str, execution_id: str) -> Manifest:
        self.calls.append(("find_execution", dag_id, execution_id))
        found = [m for ms in self.by_run.values() for m in ms if m.execution_id == execution_id]
        if not found:
            raise ClientError(f"no execution {execution_id} in the last 100 runs of {dag_id}")
        return found[0]


def test_outputs_by_execution_id_in_a_dag_or_one_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("valohai_airflow.run_cli.AirflowClient", _Runs)
    assert cli.main(["outputs", "d", "--execution", "bbb"]) == 0
    assert "train (execution bbb): completed" in capsys.readouterr().out
    assert _Runs.last.calls == [("find_execution", "d", "bbb")]
    assert cli.main(["outputs", "d/r1", "--execution", "aaa"]) == 0
    assert _Runs.last.calls == [("manifests", "d", "r1")]
    assert cli.main(["outputs", "d/r1", "--execution", "bbb"]) == 2
    assert "run r1 of d has no execution bbb" in capsys.readouterr().err
    assert cli.main(["outputs", "d", "--execution", "ccc"]) == 2
    assert "no execution ccc" in capsys.readouterr().err
    assert cli.main(["outputs", "d"]) == 2  # no run and no execution: nothing to list
    assert "'d' is not DAG_ID/RUN_ID" in capsys.readouterr().err


def test_reuse_flags_become_the_reuse_conf_checked_before_contacting_airflow(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad node name or source run is refused (exit 2) before any call: the URL is unreachable."""
    monkeypatch.setenv("AIRFLOW_URL", "http://airflow.invalid:8080")
    pipeline = ["run", str(EXAMPLE), "--pipeline", "three-trainings", "--reuse-from", "r1"]
    assert cli.main([*pipeline, "--reuse", "train-fats"]) == 2
    err = capsys.readouterr().err
    assert "has no node 'train-fats' to reuse (did you mean \"train-fast\"?)" in err, err
    assert cli.main([*pipeline]) == 2
    assert "no node to reuse" in capsys.readouterr().err
    assert cli.main(["run", str(EXAMPLE), "train", "--reuse", "train"]) == 2
    assert "--reuse-from names no run" in capsys.readouterr().err
    assert cli.main(["run", str(EXAMPLE), "train", "--reuse-from", "other__dag/r1", "--reuse", "train"]) == 2
    assert "a run of other__dag, not of example__step__train" in capsys.readouterr().err


def test_the_client_builds_the_reuse_conf_in_one_place() -> None:
    from valohai_airflow.runtime.reuse_nodes import (
        NODES_KEY,
        RUN_KEY,
        UPSTREAM_OF_KEY,
        ReuseNodesError,
        ReuseRequest,
    )

    plan = resolve_target(EXAMPLE, "three-trainings", DagKind.PIPELINE).plan
    request = ReuseRequest("manual__1", upstream_of=("pick-best",))
    assert request.conf(plan) == {RUN_KEY: "manual__1", NODES_KEY: [], UPSTREAM_OF_KEY: ["pick-best"]}
    assert request.conf() == request.conf(plan)  # without the plan: the form's Params check the names
    with pytest.raises(ReuseNodesError, match="no node 'nope'"):
        ReuseRequest("manual__1", nodes=("nope",)).conf(plan)
    with pytest.raises(ReuseNodesError, match="at least one node"):
        ReuseRequest("manual__1").conf()


def test_project_names_the_deployed_project_of_a_working_tree_named_otherwise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkout at ~/code/churn-work runs as the DAGs of the project deployed as `team/churn`."""
    tree = tmp_path / "churn-work"
    shutil.copytree(EXAMPLE, tree)
    assert resolve_target(tree, "train", DagKind.STEP).dag_id == "churn-work__step__train"
    assert resolve_target(tree, "train", DagKind.STEP, "team__churn").dag_id == "team__churn__step__train"
    assert cli.main(["run", str(tree), "train", "--project", "team__churn", "--local"]) == 2
    assert "--project names a project deployed in Airflow; --local runs" in capsys.readouterr().err
