"""The loader file in a real dags folder, parsed by Airflow's own DagBag."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import AIRFLOW_HOME, REPO_ROOT
from tests.integration.conftest import BUSYBOX, add_project, dag_bag, pipeline_dag

GOOD = textwrap.dedent(
    f"""
    - step:
        name: hello
        image: {BUSYBOX}
        command: echo hello {{parameters}}
        parameters:
          - name: greeting
            default: hi
          - name: times
            type: integer
            default: 2
            min: 1
            max: 5
    - pipeline:
        name: Greet Twice
        nodes:
          - name: first one
            type: execution
            step: hello
          - name: second
            type: execution
            step: hello
        edges:
          - [first one.parameter.greeting, second.parameter.greeting]
    """
)

BROKEN = textwrap.dedent(
    """
    - step:
        name: hello
        image: busybox
        command: echo hi
    - pipeline:
        name: p
        nodes:
          - name: a
            type: execution
            step: helo
        edges: []
    """
)


def test_every_pipeline_becomes_a_dag_with_names_as_written(dags_folder: Path) -> None:
    add_project(dags_folder, "greeter", GOOD)
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    dag = pipeline_dag(bag, "greeter")
    dag_id = dag.dag_id
    assert set(bag.dags) == {dag_id, "greeter__step__hello"}  # the step runs on its own too
    assert dag_id.startswith("greeter__Greet_Twice_")
    assert dag.dag_display_name == "Greet Twice"
    assert {t.task_display_name for t in dag.tasks} == {"first one", "second"}
    first = next(t for t in dag.tasks if t.task_display_name == "first one")
    second = next(t for t in dag.tasks if t.task_display_name == "second")
    assert first.task_id != "first one" and " " not in first.task_id
    assert second.upstream_task_ids == {first.task_id}
    assert set(dag.tags) == {"valohai", "greeter"}
    assert "Greet Twice" in dag.doc_md and BUSYBOX in dag.doc_md
    params = dag.params
    assert params.get_param("first one.parameter.times").schema["maximum"] == 5
    assert "second.parameter.greeting" not in params  # filled by the edge


def test_a_broken_project_does_not_hide_the_others(dags_folder: Path) -> None:
    add_project(dags_folder, "greeter", GOOD)
    add_project(dags_folder, "broken", BROKEN)
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    error_dag = bag.dags.get("valohai_error__broken")
    assert error_dag is not None
    assert re.search(r"broken/valohai\.yaml:\d+:\d+: error: .*\"helo\"", error_dag.description)
    assert 'did you mean "hello"' in error_dag.doc_md
    assert any(d.startswith("greeter__") for d in bag.dags)


def test_strict_loading_turns_the_error_into_an_import_error(dags_folder: Path) -> None:
    add_project(dags_folder, "broken", BROKEN)
    os.environ["AIRFLOW__VALOHAI__STRICT_LOADING"] = "True"
    try:
        bag = dag_bag(dags_folder)
    finally:
        del os.environ["AIRFLOW__VALOHAI__STRICT_LOADING"]
    ((path, message),) = bag.import_errors.items()
    assert path.endswith("valohai_dags.py")
    assert re.search(r"broken/valohai\.yaml:\d+:\d+: error: .*\"helo\"", message)


def test_airflowignore_hides_a_project(dags_folder: Path) -> None:
    add_project(dags_folder, "greeter", GOOD)
    add_project(dags_folder, "vendored", GOOD)
    (dags_folder / ".airflowignore").write_text("vendored\n")
    bag = dag_bag(dags_folder)
    assert {d.split("__")[0] for d in bag.dags} == {"greeter"}


def test_the_plain_listing_finds_what_airflows_walk_finds(dags_folder: Path, tmp_path: Path) -> None:
    """Without an ignore file or a symlinked folder the loader lists the tree itself; with either,
    Airflow's walk decides. Both must name the same valohai.yaml files."""
    from airflow._shared.module_loading import find_path_from_directory

    from valohai_airflow.airflow.discovery import _plain_listing, find_valohai_yamls

    for name in ("a", "b/c", "b/d/e"):
        add_project(dags_folder, name, GOOD)
    (dags_folder / "b" / "notes.txt").write_text("not a project")
    (dags_folder / "b" / "valohai.yaml.bak").write_text("not a project either")
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(GOOD)
    (dags_folder / "b" / "d" / "linked").mkdir()
    (dags_folder / "b" / "d" / "linked" / "valohai.yaml").symlink_to(elsewhere)  # a symlinked file

    def airflows() -> list[Path]:
        return sorted(
            Path(p)
            for p in find_path_from_directory(str(dags_folder), ".airflowignore", "glob")
            if Path(p).name == "valohai.yaml"
        )

    assert _plain_listing(dags_folder) is not None
    assert find_valohai_yamls(dags_folder) == airflows()
    assert len(airflows()) == 4

    (dags_folder / "b" / "d" / "e" / ".airflowignore").write_text("nothing-matches\n")
    assert _plain_listing(dags_folder) is None
    assert find_valohai_yamls(dags_folder) == airflows()
    (dags_folder / "b" / "d" / "e" / ".airflowignore").unlink()

    outside = tmp_path / "outside-project"
    add_project(outside.parent, outside.name, GOOD)
    (dags_folder / "via-link").symlink_to(outside, target_is_directory=True)
    assert _plain_listing(dags_folder) is None
    assert find_valohai_yamls(dags_folder) == airflows()
    assert dags_folder / "via-link" / "valohai.yaml" in find_valohai_yamls(dags_folder)


def test_a_symlinked_project_is_named_by_its_link(dags_folder: Path, tmp_path: Path) -> None:
    """A project folder linked into the dags folder from elsewhere (a checkout beside Airflow's)."""
    checkout = tmp_path / "checkouts"
    add_project(checkout, "team-repo", GOOD)
    (dags_folder / "team").symlink_to(checkout / "team-repo", target_is_directory=True)
    bag = dag_bag(dags_folder)
    assert not bag.import_errors
    assert [d for d in bag.dags if d.startswith("team__")], sorted(bag.dags)


def test_warnings_are_logged_by_the_parse_that_compiles_and_the_collector_is_paused_meanwhile(
    dags_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DAG processor parses the folder every 30 s: a warning is logged once per edit. While the
    DAGs are built Python's cycle collector is off, and it is on again afterwards. (The loader's
    logger is watched directly: where Airflow's structured logging writes depends on what
    configured it first, so captured output differs between this test alone and the suite.)"""
    import gc

    from valohai_airflow.airflow import loader
    from valohai_airflow.loading.project import clear_cache

    add_project(dags_folder, "greeter", GOOD.replace("default: hi", "default: 5", 1))
    states: list[bool] = []
    logged: list[str] = []
    compile_project = loader.compile_project

    def watching(*args: object, **kwargs: object) -> object:
        states.append(gc.isenabled())
        return compile_project(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loader, "compile_project", watching)
    monkeypatch.setattr(loader.log, "warning", lambda message, *args: logged.append(message % args))
    clear_cache()
    assert gc.isenabled()
    loader.load_dags(dags_folder)
    assert gc.isenabled() and states == [False]
    warning = (
        "greeter/valohai.yaml:7:9: warning: step 'hello', parameter 'greeting': default 5 is not a string"
    )
    assert [line for line in logged if warning in line] == [f"{dags_folder}/{warning}"]
    clear_cache()  # the next parse, in a fresh process: only the on-disk plan cache is left
    loader.load_dags(dags_folder)
    assert len(logged) == 1 and states == [False, False]


def test_a_warm_parse_takes_params_and_docs_from_the_index_and_builds_the_same_dags(
    dags_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DAG processor's next parse reads each unchanged project's plan, Params and task docs from
    the folder index, makes no Params or docs itself, and gets the DAGs a cold parse built."""
    from valohai_airflow.airflow import dag_parts, loader
    from valohai_airflow.loading.project import clear_cache

    project = add_project(dags_folder, "greeter", GOOD)
    an_hour_ago = (
        os.path.getmtime(project / "valohai.yaml") - 3600
    )  # the index trusts no file of the last 2 s
    os.utime(project / "valohai.yaml", (an_hour_ago, an_hour_ago))
    clear_cache()
    cold = loader.load_dags(dags_folder)

    def not_again(*args: object) -> None:
        raise AssertionError("a warm parse made Params or docs")

    monkeypatch.setattr(dag_parts, "pipeline_params", not_again)
    monkeypatch.setattr(dag_parts, "pipeline_docs", not_again)
    clear_cache()  # a fresh process: only the on-disk caches are left
    warm = loader.load_dags(dags_folder)
    assert sorted(warm) == sorted(cold) and len(cold) == 2
    for dag_id, dag in warm.items():
        before = cold[dag_id]
        assert dag.doc_md == before.doc_md
        assert {t.task_id: t.doc_md for t in dag.tasks} == {t.task_id: t.doc_md for t in before.tasks}
        assert {k: (p.value, p.schema, p.description) for k, p in dag.params.items()} == {
            k: (p.value, p.schema, p.description) for k, p in before.params.items()
        }
        assert dag.params is not before.params


def test_a_worker_builds_only_the_dag_it_runs(dags_folder: Path) -> None:
    """On a worker Airflow sets the parsing context: a broken sibling must not even be read."""
    add_project(dags_folder, "greeter", GOOD)
    add_project(dags_folder, "broken", BROKEN)
    code = textwrap.dedent(
        f"""
        import runpy
        namespace = runpy.run_path({str(dags_folder / "valohai_dags.py")!r})
        from airflow.sdk import DAG
        print(sorted(k for k, v in namespace.items() if isinstance(v, DAG)))
        """
    )
    bag = dag_bag(dags_folder)
    # not even its project's other DAGs: the pipeline, or the step's own DAG, alone
    for greeter_id in (pipeline_dag(bag, "greeter").dag_id, "greeter__step__hello"):
        env = {**os.environ, "_AIRFLOW_PARSING_CONTEXT_DAG_ID": greeter_id, "AIRFLOW_HOME": str(AIRFLOW_HOME)}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=REPO_ROOT
        )
        assert result.stdout.strip().splitlines()[-1] == repr([greeter_id])


@pytest.mark.usefixtures("airflow_db", "docker_engine")
def test_a_shell_pipeline_runs_in_docker(dags_folder: Path) -> None:
    add_project(dags_folder, "greeter", GOOD)
    bag = dag_bag(dags_folder)
    dag_id = pipeline_dag(bag, "greeter").dag_id
    hostile = "$(rm -rf /) {{ conn.aws_default.password }}"
    dag = bag.dags.get(dag_id)
    run = dag.test(run_conf={"first one.parameter.greeting": hostile})
    assert run.state == "success"
    first = next(ti for ti in run.get_task_instances() if ti.task_display_name == "first one")
    manifest = first.xcom_pull(task_ids=first.task_id)
    assert manifest["exit_code"] == 0
    assert manifest["parameters"] == {"greeting": hostile, "times": 2}
    assert "'--greeting=$(rm -rf /) {{ conn.aws_default.password }}'" in manifest["command"][0]


def test_two_folders_that_spell_one_project_name_are_both_errors(dags_folder: Path) -> None:
    """`team/churn` and `team__churn` are both project `team__churn`: neither takes the DAG ids (and
    run history) of the other, whichever came first; each error names the other folder."""
    add_project(dags_folder, "team__churn", GOOD)
    add_project(dags_folder, "team/churn", GOOD)
    add_project(dags_folder, "greeter", GOOD)
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    assert not [d for d in bag.dags if d.startswith("team__churn__")]
    error_dags = [dag for dag_id, dag in bag.dags.items() if dag_id.startswith("valohai_error__team__churn")]
    assert len(error_dags) == 2
    for dag in error_dags:
        assert "folders team/churn, team__churn are one project name, 'team__churn'" in dag.doc_md
        assert "rename one of the folders" in dag.doc_md
    assert any(d.startswith("greeter__") for d in bag.dags)


def test_two_projects_whose_dag_ids_collide(dags_folder: Path) -> None:
    """Project `a` with pipeline `b__c` and project `a__b` with pipeline `c` would both be `a__b__c`:
    both become errors naming the other, and their other pipelines are not half-loaded either."""
    add_project(dags_folder, "a", GOOD.replace("name: Greet Twice", "name: b__c"))
    add_project(dags_folder, "a__b", GOOD.replace("name: Greet Twice", "name: c"))
    bag = dag_bag(dags_folder)
    assert "a__b__c" not in bag.dags
    assert set(bag.dags) == {"valohai_error__a", "valohai_error__a__b"}
    first, second = bag.dags["valohai_error__a"], bag.dags["valohai_error__a__b"]
    assert "a__b__c (also " in first.doc_md and "a__b/valohai.yaml)" in first.doc_md
    assert "a__b__c (also " in second.doc_md and "a/valohai.yaml)" in second.doc_md


def test_entries_that_cannot_be_read_are_errors_beside_a_good_project(dags_folder: Path) -> None:
    """A FIFO and a link to /dev/zero named valohai.yaml, a FIFO sidecar, a sparse 4 GiB file: each
    is its project's error DAG, refused without reading it, and the good project still loads (the
    FIFO used to block the loader until the import timeout, hiding every DAG). A hang would be caught
    by the DagBag's own import timeout, and show as an import error."""
    add_project(dags_folder, "greeter", GOOD)
    (dags_folder / "fifo").mkdir()
    os.mkfifo(dags_folder / "fifo" / "valohai.yaml")
    (dags_folder / "zero").mkdir()
    (dags_folder / "zero" / "valohai.yaml").symlink_to("/dev/zero")
    add_project(dags_folder, "fifo-sidecar", GOOD)
    os.mkfifo(dags_folder / "fifo-sidecar" / "valohai-airflow.yaml")
    (dags_folder / "sparse").mkdir()
    with open(dags_folder / "sparse" / "valohai.yaml", "wb") as handle:
        handle.truncate(4 * 1024**3)
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    assert any(d.startswith("greeter__") for d in bag.dags)
    described = {
        name: bag.dags[f"valohai_error__{name}"].doc_md for name in ("fifo", "zero", "fifo-sidecar", "sparse")
    }
    assert "fifo/valohai.yaml: error: is a FIFO (named pipe), not a regular file" in described["fifo"]
    assert "zero/valohai.yaml: error: is a character device, not a regular file" in described["zero"]
    assert "fifo-sidecar/valohai-airflow.yaml: error: is a FIFO" in described["fifo-sidecar"]
    assert (
        "sparse/valohai.yaml: error: file is 4,294,967,296 bytes; valohai-airflow reads at most"
        in described["sparse"]
    )


def test_a_step_with_20000_parameters_loads_beside_a_good_project(dags_folder: Path) -> None:
    """A valid 1 MB file: `{parameters}` over 20,000 parameters used to take 28 s (a scan of the
    step's parameters per name) and time the whole import out."""
    wide = [
        "- step:",
        "    name: wide",
        f"    image: {BUSYBOX}",
        "    command: echo {parameters}",
        "    parameters:",
        *(f"      - {{name: p{i}, type: integer, default: {i}}}" for i in range(20_000)),
        "- pipeline:",
        "    name: wide",
        "    nodes:",
        "      - {name: a, type: execution, step: wide}",
        "    edges: []",
    ]
    add_project(dags_folder, "greeter", GOOD)
    add_project(dags_folder, "wide", "\n".join(wide) + "\n")
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    assert any(d.startswith("greeter__") for d in bag.dags)
    dag = bag.dags["wide__wide"]
    assert len(dag.params) == 20_000 and dag.params["a.parameter.p19999"] == 19_999


def test_hostile_files_each_get_an_error_dag_and_hide_nothing(dags_folder: Path) -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)
    )
    hostile = {
        "empty": "",
        "not-yaml": "- step: [unclosed\n  name: x: y: z\n\t- ",
        "not-a-list": "step:\n  name: x\n",
        "deep": "- " + "[" * 5000 + "]" * 5000 + "\n",
        "laughs": laughs,
        "compose": "services:\n  web:\n    image: nginx\n",
        "huge": "- step: {name: s, image: x, command: echo}\n" + "# padding\n" * 5_500_000,
    }
    add_project(dags_folder, "greeter", GOOD)
    for name, text in hostile.items():
        add_project(dags_folder, name, text)
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    assert any(d.startswith("greeter__") for d in bag.dags)
    for name in hostile:
        dag = bag.dags[f"valohai_error__{name}"]
        assert f"{name}/valohai.yaml" in dag.description, (name, dag.description)
