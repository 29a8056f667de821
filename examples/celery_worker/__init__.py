"""The scoring pipeline's jobs as Celery tasks on Redis, under ``faultlens run``.

``python examples/celery_worker`` starts a prefork worker with nothing but
``faultlens run -- celery -A celery_worker.tasks worker``, sends a batch of jobs (some retried
on a flaky registry, some failing validation, one crashing its pool process), waits for
them, stops the worker with SIGTERM (a warm shutdown) and prints what faultlens recorded.
"""
