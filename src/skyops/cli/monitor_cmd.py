"""`skyops monitor`: watch a served model and feed what it sees back into training.

A minimal group holding the loop's commands (monitor_loop_cmd.py: schedule, alert, retrain, label).
To be replaced at merge by the group of the drift check (`monitor run`), which registers the same way.
"""

from __future__ import annotations

from skyops.cli.monitor_loop_cmd import register
from skyops.cli.usage import SkyopsGroup

app = SkyopsGroup(
    "monitor",
    help="Watch a served model: alerts and events, the retraining policy, the labelling loop, the schedule.",
    no_args_is_help=True,
)
register(app)
