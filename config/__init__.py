"""The files of config/, installed inside the core package as ``bridge.shipped``.

pyproject.toml maps this folder there, so that the demo config, the regency profiles and
the systemd units ship in the wheel and are read with importlib.resources
(:mod:`bridge.resources`) from wherever the bridge is installed.
"""
