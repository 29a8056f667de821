"""An order-processing app that knows nothing about faultlens.

It exists to show (and test) the zero-code start: ``faultlens run -- python
examples/plain_app/app.py`` gets its errors classified and journaled without a single
import of faultlens here.
"""
