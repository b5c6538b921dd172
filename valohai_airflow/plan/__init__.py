"""plan layer (see DESIGN.md §1)."""
