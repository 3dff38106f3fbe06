"""A fault-injection soak: real workers drain mixed jobs while chaos strikes.

``python -m tests.soak`` starts a PostgreSQL instance of its own (so that
restarting it disturbs nothing else), several ``runworker`` processes, a feed
of misbehaving jobs and a chaos loop that kills, stops, disconnects and
restarts things. Every run of a job writes rows to a table of the soak's own,
so the report counts from data, not from logs: jobs lost or stuck, duplicate
completions and whether each one falls in the window the contract allows
(DESIGN.md, guarantee 2), and runs of one job that overlapped.

Modules: ``instance`` (the private PostgreSQL), ``procs`` (process
identities), ``kinds`` and ``tasks`` (the jobs), ``flows`` (the workflow
kind's graphs and their tasks), ``workers`` (the worker processes),
``chaos`` (the faults), ``driver`` (one soak, start to end), ``timing`` (the
workers' intervals), ``records`` (what the rows say), ``window`` (the
duplicates and overlaps the contract allows), ``drains`` (runs a graceful
stop must not cut short), ``touches`` (attempts a database blip must not
cost a job that touches and checkpoints), ``analysis`` (the figures),
``graphs`` (the workflows' figures), ``report`` and ``evidence`` (the table,
and what to look at).
"""
