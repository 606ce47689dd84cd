"""Stage functions of the example workflows in ``templates/`` (importable everywhere, workers too)."""
