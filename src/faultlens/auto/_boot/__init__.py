"""The directory ``faultlens run`` puts first on PYTHONPATH; it holds only ``sitecustomize``.

It is a package so that it ships in the wheel without package-data rules; nothing imports it
as ``faultlens.auto._boot``.
"""
