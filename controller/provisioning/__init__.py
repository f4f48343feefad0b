"""Cloud bursting: launch an instance when no registered host fits a pending task, place the task
when that instance's agent registers, and terminate instances that stay idle.

A reconciler, like Karpenter's, that sees the controller only through `port.ControllerPort` and
persists only through the store. It never imports `controller.server`: the server builds it
(server/app.py) and its services call it.

    reconciler.py  Burster: the loop, one pass at a time, and what the services call
    context.py     what every part shares: port, store, config, backends, clock, blocked offerings
    planning.py    which fleets may provision for a task (or for their own nodes) and the ranked offers of each
    nodes.py       a fleet's `nodes` against its instances: launches up to min, idle terminations above max
    launches.py    launching for pending tasks and for fleets' nodes minimum, and the task's provisioning reason
    instances.py   the launched instances against the clouds' inventories: adopt, expire, idle, terminate
    claims.py      a launch's join token presented by a registering host
    volumes.py     creating and attaching cloud volumes, and recording where they are attached
"""
