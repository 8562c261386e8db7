"""skyops: MLOps for YOLO11 object detection on drone imagery."""

import os as _os

__version__ = "0.1.0"

# torch's CPU threads wait for work by spinning (OpenMP's ACTIVE wait policy). skyops runs torch on every
# core (skyops.training.threads); on a machine where anything else runs too, spinning threads steal the
# cores their own team waits for. Measured here at load average 6 on 2 cores, a conv stack's forward and
# backward on 2 threads: ACTIVE 4.6 s wall / 2.3 s CPU, PASSIVE 1.8 s / 0.8 s (1 thread: 2.2-2.7 s). The price on an
# idle machine: ACTIVE 0.53-0.58 s, PASSIVE 0.63-0.69 s (1 thread 0.8-1.1 s). OMP_WAIT_POLICY=ACTIVE opts out.
# OpenMP reads the policy once, when torch loads it: so here, before any skyops code imports torch, for
# this process and every step it starts (their environment is this one's). A value the user set wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
