"""Monitoring: drift of captured traffic against the training baseline, alert events, retraining and the labelling loop."""
