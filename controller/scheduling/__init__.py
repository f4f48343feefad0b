"""Pure scheduling logic, no I/O: a stored task's configuration read back (taskspec), turned into
placement requirements (requirements), and the task lifecycle as (task, report, now) -> (task,
effects) (lifecycle). Used by the scheduler loop, the services and the provisioning reconciler."""
