"""How a command gets into its namespaces.

Read in this order:

- ``launcher``: the one interface every start route keeps
  (``Launcher.start(plan, fds, prepare) -> ContainerProcess``) and the one
  place that chooses a route (``launcher_for``). The routes:
  ``launch_direct`` (this process forks the init), ``launch_zygote`` (a small
  helper forks it, or made a *spare* ahead), ``launch_held`` (a spare holds
  the container and a Python target is forked into it).
- The processes, one module each: ``init`` (the container's pid 1, from its
  first step to its exit), ``spare`` (an init made ahead, waiting for its
  plan), ``target`` (a Python target's process), ``zygote`` (the helper that
  forks inits and spares), ``forkserver`` (a copy of the caller that forks
  its targets).
- Their building blocks: ``kernel`` (the one way to the kernel: every fork,
  mount, setns, netlink request and exec; a recorder stands in for it in
  unit tests), ``steps`` (the plan's steps, one function per kind),
  ``credentials`` (user, capabilities, rlimits), ``fds`` (which fd is what)
  and ``handshake`` (the status pipe's messages, which turn a failure in
  the child into a clear error in the parent).

Import the modules themselves: this package loads nothing, so the zygote
(which every container is a fork of) loads only what it uses.
"""
