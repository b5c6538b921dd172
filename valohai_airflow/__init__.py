"""valohai-airflow: the pipelines of a valohai.yaml as Airflow DAGs, each node a Docker container."""

__version__ = "0.1.0"
