"""A scoring pipeline, like the one faultlens's error tables come from.

Jobs name a workspace (a dataset, a model, parameters) and a container image; the pipeline
lists workspaces, loads and validates each job, pulls the image through a circuit breaker
with retries (falling back to a mirror when the registry is down), runs the container with a
time limit, scores the output and submits the result (spooling it locally when the results
API fails). Everything external is simulated and seeded, so a run is fast and reproducible:
the same seed yields the same errors, which is what the tests count on.

Run it: ``python examples/scoring_pipeline`` (or ``faultlens run -- python
examples/scoring_pipeline``, or ``make demo``).
"""
