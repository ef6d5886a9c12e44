"""The group level, as workflows/ is the participant level: collect, run, write."""
