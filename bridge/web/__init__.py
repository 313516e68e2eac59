"""The staff page: LAPOR! tickets in the local queue, and the SOP actions on them.

Server-rendered (Starlette + Jinja2), no external resources, no build step. Every write
goes through :mod:`bridge.services` exactly as the CLI does.
"""
