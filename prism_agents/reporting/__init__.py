"""Tables and reports built from a run folder."""
