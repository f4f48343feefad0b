"""The cloud's interruption notices for this host (a spot reclaim, a scheduled reboot or
retirement), polled from the metadata service of the cloud DMI names, and reported to the controller
so the host gets no new task and its tasks end before the cloud ends them."""
