"""The collector's operations surface: what the pipeline did (``stats``), how healthy that is (``health``),
and the ``/healthz`` and ``/metrics`` endpoint that serves both (``http``)."""
