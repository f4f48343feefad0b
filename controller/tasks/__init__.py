"""A stored task's configuration read back (taskspec) and turned into placement requirements
(requirements): pure functions, shared by the scheduler, the services and the burst reconciler."""
