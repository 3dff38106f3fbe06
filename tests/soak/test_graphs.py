"""The workflow kind's figures (graphs.py) on made-up rows: the plan read
from a graph's shape, and what each figure counts. No database."""

from tests.soak.analysis import Findings
from tests.soak.graphs import Graphs
from tests.soak.kinds import kind_of
from tests.soak.records import JobRecord, RunRecord

FLOWS = "tests.soak.flows."
CHAIN = ("300@30", "200@20", "100@10")


def step(id, name, state="done", *, started=None, finished=None, blocked_by=None,
         anyway=False, attempts=1, flow=1):  # fmt: skip
    """A STEPS row: id, task, state, workflow, attempts, started, finished,
    blocked_by, runs_anyway, return value."""
    return (id, FLOWS + name, state, flow, attempts, started, finished, blocked_by,
            anyway, None)  # fmt: skip


def record(row, runs=(), errors=()):
    id, task, state, _, attempts, *_ = row
    return JobRecord(id, task, kind_of(task), state, attempts, 20, 5, list(errors),
                     list(runs))  # fmt: skip


def run(job_id, start, attempt=1, done=None):
    return RunRecord(f"r{job_id}-{start}", job_id, attempt, *CHAIN, start,
                     done or start, done)  # fmt: skip


def graphs(flows, steps, edges, early=(), runs=None, errors=None):
    runs, errors = runs or {}, errors or {}
    jobs = {row[0]: record(row, runs.get(row[0], ()), errors.get(row[0], ()))
            for row in steps}  # fmt: skip
    return Graphs(flows, steps, edges, set(early), jobs)


def findings(g: Graphs) -> Findings:
    return Findings(list(g.jobs.values()), list(g.jobs), [], [], [], t0=0.0)


def broken_graph(reason="failed at step tests.soak.flows.broken (job 1): ValueError"):
    """broken(1), crawl(2) fanning out to page(7); match(3) after 1, 2, 7;
    analyze(4) after match; report(5) after 1, 2, 4, 7, anyway."""
    steps = [
        step(1, "broken", "buried", finished=10.0, attempts=3),
        step(2, "crawl", started=1.0, finished=2.0),
        step(3, "match", "buried", finished=10.0, blocked_by=1, attempts=0),
        step(4, "analyze", "buried", finished=10.0, blocked_by=1, attempts=0),
        step(5, "report", started=11.0, finished=12.0, anyway=True),
        step(7, "page", started=2.5, finished=3.0),
    ]
    edges = [(1, 3), (2, 3), (7, 3), (3, 4), (1, 5), (2, 5), (4, 5), (7, 5)]
    flows = [(1, "soak graph 1", "failed", reason)]
    blocked = {"traceback": "UpstreamFailed: job 1 (tests.soak.flows.broken) it "
               "waited for failed: ValueError; it was not run.\n"}  # fmt: skip
    errors = {3: [blocked], 4: [blocked]}
    return flows, steps, edges, errors


def test_the_plan_buries_the_broken_crawl_and_what_waits_for_it_but_anyway():
    flows, steps, edges, errors = broken_graph()
    g = graphs(flows, steps, edges, errors=errors)
    assert g.planned == {1: "buried", 2: "done", 3: "buried", 4: "buried",
                         5: "done", 7: "done"}  # fmt: skip
    assert g.planned_state(g.flows[1]) == "failed"
    assert not any(g.gate(findings(g)).values())


def test_a_workflow_running_or_failed_without_a_reason_has_not_ended():
    flows, steps, edges, errors = broken_graph(reason="")
    g = graphs(flows, steps, edges, errors=errors)
    assert [f.id for f in g.not_ended()] == [1]
    assert g.unnamed_failures()  # and it names no failed step
    running = graphs([(1, "soak graph 1", "running", "")], steps, edges)
    assert [f.id for f in running.not_ended()] == [1]
    assert [f.id for f in running.wrong_outcome()] == []  # judged once ended


def test_a_workflow_that_ends_otherwise_than_planned():
    flows, steps, edges, errors = broken_graph()
    flows = [(1, "soak graph 1", "succeeded", "")]
    g = graphs(flows, steps, edges, errors=errors)
    assert [f.id for f in g.wrong_outcome()] == [1]


def test_a_job_waiting_for_ended_jobs_only_is_left_waiting():
    steps = [step(1, "crawl", finished=2.0), step(2, "crawl", "reserved"),
             step(3, "match", "waiting"), step(4, "analyze", "waiting")]  # fmt: skip
    g = graphs([(1, "g", "running", "")], steps, [(1, 3), (2, 3), (1, 4)])
    assert [s.id for s in g.left_waiting()] == [4]  # 3 still waits for job 2


def test_a_run_before_its_upstream_ended_counts_a_stamp_before_it_does_not():
    steps = [step(1, "crawl", started=1.0, finished=5.0),
             step(2, "match", started=4.999, finished=6.0),
             step(3, "analyze", started=6.5, finished=7.0),
             step(4, "report", started=6.9, finished=8.0)]  # fmt: skip
    runs = {2: [run(2, start=5.01)], 3: [run(3, start=6.8)], 4: [run(4, start=6.95)]}
    g = graphs([(1, "g", "succeeded", "")], steps, [(1, 2), (2, 3), (3, 4)], runs=runs)
    assert [(d.id, u.id) for d, u in g.started_early()] == [(4, 3)]
    assert len(g.stamped_early()) == 2  # job 2's claim stamp, and job 4's


def test_a_dependent_whose_upstream_never_ended_started_early():
    steps = [step(1, "crawl", "reserved", started=1.0),
             step(2, "match", started=3.0)]  # fmt: skip
    g = graphs([(1, "g", "running", "")], steps, [(1, 2)])
    assert [(d.id, u.id) for d, u in g.started_early()] == [(2, 1)]


def test_a_step_that_read_an_unended_upstream_is_counted():
    flows, steps, edges, errors = broken_graph()
    g = graphs(flows, steps, edges, early=[5], errors=errors)
    assert [s.id for s in g.read_early()] == [5]


def test_a_fan_in_run_past_its_attempts_counted():
    steps = [step(1, "crawl", started=1.0, finished=2.0),
             step(2, "match", started=3.0, finished=5.0, attempts=1)]  # fmt: skip
    runs = {2: [run(2, 3.1, attempt=1), run(2, 4.0, attempt=2, done=4.5)]}
    g = graphs([(1, "g", "succeeded", "")], steps, [(1, 2)], runs=runs)
    assert [job.id for job in g.fan_in_reruns(findings(g))] == [2]


def test_an_ended_job_whose_error_names_another_job_is_counted():
    flows, steps, edges, errors = broken_graph()
    errors[4] = [{"traceback": "UpstreamFailed: job 3 (tests.soak.flows.match)"}]
    g = graphs(flows, steps, edges, errors=errors)
    [(flow, why)] = g.unnamed_failures()
    assert flow.id == 1
    assert "job 4 (analyze) has an error that does not name job 1" in why


def test_each_failing_figure_shows_its_workflows_and_jobs():
    from tests.soak.evidence import Evidence

    steps = [step(1, "crawl", "reserved", started=1.0),
             step(2, "match", started=3.0), step(3, "analyze", "waiting")]  # fmt: skip
    g = graphs([(1, "soak graph 1", "running", "")], steps, [(1, 2), (2, 3)])
    f = findings(g)
    text = "\n".join(g.failures(f, Evidence(f)))
    assert "WORKFLOWS NOT ENDED: 1 workflow(s): [1]" in text
    assert "STARTED EARLY: 1 job(s): [2]" in text
    assert "upstream job 1 (crawl) reserved, ended -" in text
    assert "LEFT WAITING: 1 job(s): [3]" in text
    assert "job 3 analyze: waiting (planned done)" in text
