"""Local deployment, blue/green: an environment's desired version live behind one stable address on this machine."""
