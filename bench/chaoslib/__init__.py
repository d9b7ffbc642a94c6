"""The fault campaign (bench/chaos.py): a seeded schedule, the deployment, clients, recorders,
and the independent checker that judges what they recorded."""
