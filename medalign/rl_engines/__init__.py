"""External RL engines medalign hands a job to (verl.py: `stage=rl rl.engine=verl`)."""
