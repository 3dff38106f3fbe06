"""PostgreSQL failover with real workers: a primary, a streaming standby, a switch.

``python -m tests.failover`` runs one scenario and prints what happened;
``test_failover.py`` runs it (only with ``JOBS_FAILOVER=1``) and checks it.
"""
