"""The ``runworker`` supervisor, its fork server and the child processes.

A map for maintainers.

Processes::

    runworker (the supervisor) ── the only one that talks to the database
      └─ zygote (the fork server: warm, no connection, no threads)
           ├─ child ── runs a job (or a portion of jobs) and reports back
           ├─ child
           └─ ...     (a lane child: many async jobs at once, lane.py)

    supervisor <─ socketpair (JSON lines, file descriptors) ─> each child
    supervisor <─ pipe (stdout and stderr; one per job in a portion) ─ child
    supervisor <─ SEQPACKET socket (Fork, Forked, Exited...) ─> zygote
    supervisor ── stop pipe (closed right before it signals the child) ─> child
    supervisor <─ board (shared memory: which job holds the loop) ─ lane child

Every message on those sockets is defined once, in protocol.py (who sends
which, its fields, checked where it arrives); framing.py carries them over
a stream socket.

SIGTERM and SIGINT are the supervisor's. A process manager may send them to
every process of the worker: the zygote ignores them, and a child obeys them
only once the supervisor has closed its stop pipe (process.py), so the
worker drains as if only the supervisor had been signalled.

Objects of the supervisor (one module each)::

    Supervisor (supervisor.py)   the select loop and the life cycle
      Children (children.py)     the pool: fork ahead, hand out, messages,
                                 deadlines
        Child (child_state.py)   a child's jobs, deadline and why it is
                                 stopped (Stop, failures.py); one writer each
        Outputs (output.py)      the pipes of what children and jobs print
        WarmDatabases            databases spare children connect to ahead
          (child_connections.py)
        Preloads (preload.py)    task modules the zygote imports once
        ResourceWatch            each running job's memory and CPU limits;
          (resources.py)         samples of the limited ones' process trees
                                 (procfs.py), stopped when over (Stop.LIMIT)
        LaneWatch (lanes.py)     a lane worker's jobs, many per child: each
                                 one's deadline (Cancel, then the child
                                 killed), the loop watchdog and the crash's
                                 culprit, read from each child's Board
                                 (board.py: shared memory)
      Claimer (claiming.py)      when and how many to claim; refill the pool;
                                 give back a claim whose reply was lost; where
                                 nothing wakes it (MariaDB, SQLite), the poll's
                                 backoff (and on MariaDB one SELECT first)
      ChildEvents (events.py)    a child spoke, started a job, or died
      Recorder (outcomes.py)     outcomes written through django_jobs.queue;
                                 what follows a failure: attempts.follows
                                 (import_grace.py: a task not deployed yet;
                                 an outcome in doubt is read back, queue.doubt)
        OutcomeHooks             the on_outcome hooks (django_jobs.hooks), in
          (outcome_hooks.py)     a thread of their own: the outcomes written,
                                 and those the rescuer and expiry decide
      Leases (leases.py)         touches, checkpoints, renewals of waiting jobs;
                                 kept while the database is away, written
                                 before the outcomes when it is back
      Shutdown (shutdown.py)     signals, the drain, the hard stop
      Listener (listener.py)     LISTEN on the worker's own channel (PostgreSQL)
      Registry (fleet.py)        the heartbeat, the worker's room, the lease
      fleet-wide duties          run only by the lease's holder (a Duty,
                                 duty.py): Rescuer, Scheduler, Pruner,
                                 History (moves done jobs to the history's
                                 day tables, PostgreSQL), StrayJobs (duties.py), DueLook
                                 (fleet.py: wakes for due jobs), Reindexer
                                 (upkeep.py: rebuilds the job table's bloated
                                 indexes); HistoryDrops and the rebuild each
                                 run in a thread of their own (upkeep.py)
      ClaimWatch (watch.py)      cancelled and lost claims of jobs in hand
      Scaler (scaling.py)        the worker's size under --concurrency MIN:MAX:
                                 grows with the backlog, shrinks when idle;
                                 the one writer of the size
        Budget (budget.py)       the fleet's connection budget, counted in
                                 the worker rows under a short lock (a named
                                 lock on MariaDB)
      DatabaseHealth (outage.py) one line when the database goes, one when back;
                                 a dropped connection is replaced at once;
                                 when to try again (the backoff)
      supervisor_connection.py   the supervisor's own connection: planner
                                 settings and a connect timeout while the
                                 worker runs; the checks before it starts
      host.py                    the signals and the alarm the worker takes
                                 over in the process that runs it, given back
                                 (as are the connection's settings) when it
                                 returns
      Portions (portions.py)     how many jobs a child gets at once

In the other processes: zygote.py (the fork server), child.py (a child's
loop: take jobs, run each through django_jobs.attempts, report), lane.py
(a lane child's event loop: many async jobs at once, each through
attempts.arun, their output routed by lane_output.py),
child_connections.py (a child's own database connections: opened while it
waits, checked before a job, closed at exit), usage.py (what an attempt
used: the child's getrusage, the zygote's wait4, the watch's samples),
span_export.py (OpenTelemetry spans across the fork: no batch thread in the
zygote, a child's spans exported after each job, a lane's in batches on its
loop).
django_jobs.attempts is the one way a job runs: a child and
django_jobs.testing both use it.

The path of one job::

    NOTIFY or poll ─> Claimer.claim() ─ queue.claim() ─> Children.dispatch()
      ─> Run ─> child: attempts.resolve(), Started ─> ChildEvents.on_started()
           (Leases: renew if it waited; its deadline starts)
      ─> child: attempts.run(), flush its output, Outcome
           ─> ChildEvents.on_outcome() (Outputs: its lines and tail;
           Recorder: queued, a failure as Failure.of(outcome))
      ─> next turn: Recorder.flush() ─ queue.complete_returning() / fail() / ...
    or, if the child dies first: zygote "exited" ─> ChildEvents.on_exit()
           ─> timed out, cancelled, crashed (recorded) or released (shutdown)

Each turn of ``Supervisor.turn()``: record outcomes, stop the late, run due
duties, refill the pool, claim. Only ``django_jobs.queue`` writes job state;
children never do.
"""
