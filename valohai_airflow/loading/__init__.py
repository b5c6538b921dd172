"""loading layer (see DESIGN.md §1): the projects of a dags folder → their plans, compiled once per
content and cached in-process and on disk, without Airflow."""
