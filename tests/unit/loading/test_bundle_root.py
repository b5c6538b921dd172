"""The folder a loader file builds the projects of: its DAG bundle's root."""

from __future__ import annotations

from pathlib import Path

from valohai_airflow.loading.bundle_root import bundle_root

DAGS = "/opt/airflow/dags"
CHECKOUT = "/tmp/airflow/dag_bundles/repo/versions/0123abcd"


def test_a_loader_file_in_the_dags_folder_builds_the_dags_folder() -> None:
    assert bundle_root(f"{DAGS}/valohai_dags.py", DAGS, ["/usr/lib/python3.11"]) == Path(DAGS)
    # in a subfolder of it too: projects anywhere in the dags folder, named as before
    assert bundle_root(f"{DAGS}/loaders/valohai_dags.py", DAGS, []) == Path(DAGS)


def test_a_loader_file_in_a_bundle_checkout_builds_that_checkout() -> None:
    """Airflow puts the bundle root on sys.path before it imports a bundle's file (BundleDagBag)."""
    roots = ["", "/usr/lib/python3.11", DAGS, "/tmp/airflow/dag_bundles/repo/tracking_repo", CHECKOUT]
    assert bundle_root(f"{CHECKOUT}/dags/valohai_dags.py", DAGS, roots) == Path(CHECKOUT)
    tracking = "/tmp/airflow/dag_bundles/repo/tracking_repo"
    assert bundle_root(f"{tracking}/valohai_dags.py", DAGS, roots) == Path(tracking)


def test_the_innermost_root_wins() -> None:
    """A bundle stored below the dags folder (or below another import root) is its own root."""
    storage = f"{DAGS}/.bundles/repo/versions/feed"
    assert bundle_root(f"{storage}/valohai_dags.py", DAGS, [f"{storage}/", "/"]) == Path(storage)


def test_no_root_holds_it_then_its_own_folder() -> None:
    """Relative entries ('' is the cwd) are no root; a path only sharing a prefix is not below."""
    assert bundle_root("/srv/checkout/valohai_dags.py", DAGS, ["", ".", "/srv/check"]) == Path(
        "/srv/checkout"
    )
