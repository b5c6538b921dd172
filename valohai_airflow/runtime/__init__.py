"""What happens on the worker around one container, without Docker or Airflow: ids, work dir and
config files, input materialisation, output collection, metadata parsing, manifests."""
