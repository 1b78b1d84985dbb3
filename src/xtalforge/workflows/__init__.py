"""Workflows that string the library together end to end: the solve benchmark, solving one
file, the demo, the HTML run report, file descriptions, and how their results look on a
terminal (:mod:`xtalforge.workflows.render`)."""
