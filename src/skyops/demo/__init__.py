"""`skyops demo`: the stories skyops tells about itself, played on a fresh throwaway project with real parts.

`gitops.py` is `skyops demo gitops` (docs/demo-gitops.md); `stage.py` runs and records each step (the command a
person would type, its outcome, its time) and stops what the demo started; `project.py` makes the throwaway
project; `scenes.py` makes the data the story needs (a new batch, drifted traffic).
"""
