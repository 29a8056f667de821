"""A small FastAPI shop API that fails the way real services do (see app.py)."""
