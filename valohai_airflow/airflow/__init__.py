"""airflow layer (see DESIGN.md §1)."""
