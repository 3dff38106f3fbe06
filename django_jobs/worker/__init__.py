"""The ``runworker`` supervisor, its fork server and the child processes.

Three kinds of process cooperate:

- the **supervisor** (``supervisor.py``) owns the database connection. It
  claims jobs, hands them to children, records outcomes, enforces deadlines
  and runs the maintenance duties. It never runs a job.
- the **zygote** (``zygote.py``) is a fork server started before any
  database connection or thread exists. It forks children on request and
  reports their exit statuses.
- each **child** (``child.py``) runs the jobs it is given (one, by default)
  and reports outcomes over its pipe. It never writes job state.
"""
