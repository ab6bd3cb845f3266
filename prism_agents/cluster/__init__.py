"""The Ray backend (``cluster.backend: ray``): environment, engine and learner actors. Importing this package
does not import Ray; each module imports it when used."""
