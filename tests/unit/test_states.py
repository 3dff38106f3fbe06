from django_jobs import states
from django_jobs.compat import TaskResultStatus
from django_jobs.states import State


def test_every_state_maps_to_a_task_status():
    assert states.task_status("ready") == TaskResultStatus.READY
    assert states.task_status("reserved") == TaskResultStatus.RUNNING
    assert states.task_status("done") == TaskResultStatus.SUCCESSFUL
    assert states.task_status("buried") == TaskResultStatus.FAILED
    assert set(states.TASK_STATUS) == set(State)


def test_transitions_only_name_real_states():
    for operation, (sources, target) in states.TRANSITIONS.items():
        assert sources, operation
        assert sources <= set(State)
        assert target is None or target in State


def test_done_is_final_except_for_deletion():
    leaving_done = [
        op for op, (sources, _) in states.TRANSITIONS.items() if State.DONE in sources
    ]
    assert leaving_done == ["delete"]


def test_only_a_claim_enters_reserved():
    entering = [
        op
        for op, (sources, target) in states.TRANSITIONS.items()
        if target == State.RESERVED and State.RESERVED not in sources
    ]
    assert entering == ["claim"]


def test_allowed():
    assert states.allowed("kick", "buried")
    assert not states.allowed("kick", "done")
    assert not states.allowed("complete", "ready")
