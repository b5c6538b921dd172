# Copy this file into your Airflow dags folder. It turns every valohai.yaml below that folder
# into Airflow DAGs, one per pipeline, step and task blueprint (the words "airflow" and "dag" in
# this comment let Airflow's safe-mode discovery pick the file up).
from valohai_airflow.airflow.loader import load_dags

globals().update(load_dags())
