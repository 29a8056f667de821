"""A small Flask shop app served by gunicorn with prefork workers (see app.py)."""
