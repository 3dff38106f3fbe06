"""The kinds of job in a failover run and how each ends when nothing fails over.

Kept free of Django, so that the evidence can be read anywhere. A kind is a
task of ``tests.failover.tasks`` of the same name.
"""

#: The state each kind of job ends in.
ENDS = {"quick": "done", "nap": "done", "flaky": "done", "doomed": "buried"}
#: The attempts (and runs) each kind takes.
ATTEMPTS = {"quick": 1, "nap": 1, "flaky": 2, "doomed": 1}
