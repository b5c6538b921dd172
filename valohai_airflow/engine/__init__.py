"""Container engines: the interface (`base`) and Docker's implementation (`docker`)."""
