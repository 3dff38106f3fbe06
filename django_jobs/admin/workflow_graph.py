"""A workflow's graph on its page: the layout of ``graph``, with links.

Each box links to its job's page, or for a group of jobs to the job list
of the workflow's jobs of that task. Drawn by a template as inline SVG: no
JavaScript, nothing loaded from elsewhere, and it works under a strict
Content-Security-Policy.
"""

from __future__ import annotations

from typing import Any

from ..models import Workflow
from . import graph
from .workflow_display import job_pages, jobs_url
from .workflow_jobs import read


def graph_context(site: str, workflow: Workflow) -> dict[str, Any]:
    """What ``workflow/graph.html`` needs: the drawing, its links set."""
    jobs = read(workflow)
    drawing = graph.draw(jobs.nodes, jobs.edges)
    job_page = job_pages(site)
    for box in drawing.boxes:
        if box.size == 1:
            box.url = job_page(box.first)
        else:
            box.url = jobs_url(site, workflow.pk, task_path=box.task_path)
    return {"graph": drawing, "group_above": graph.GROUP_ABOVE}
