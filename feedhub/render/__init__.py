"""Rendering: pure renderers of one document each (:mod:`~feedhub.render.feeds`,
:mod:`~feedhub.render.pages`) and the site built from the store
(:mod:`~feedhub.render.site`).

Worker processes import :mod:`feedhub.render.feeds` alone, so this package
imports nothing itself.
"""
