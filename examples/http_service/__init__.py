"""A small HTTP service on the standard library that answers failures with the API envelope.

``GET /score?workspace=ws-1&threshold=0.5`` scores a (simulated) workspace. Every failure is
recorded once, classified, and returned as ``faultlens.to_api_envelope(exc)`` with an HTTP
status chosen from the error's category, so a client gets the code, the hint and the trace
id to quote in a bug report.

Run it: ``python examples/http_service --port 8080`` (binds 127.0.0.1), or under
``faultlens run -- python examples/http_service``.
"""
