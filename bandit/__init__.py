"""The decision core: events, featurization, VW workspaces, sampling, snapshots, the learner."""
