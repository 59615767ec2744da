"""How a command gets into its namespaces.

- ``spawner``: forks the container's first process safely, directly from a
  single-threaded caller or through a single-threaded zygote otherwise.
- ``child``: what that first process does: join the cgroup, unshare, walk the
  plan (``setup``), start the command (``execute``), then be its pid-1 init.
- ``handshake``: the messages that turn a failure in the child into a clear
  error in the parent, and carry the command's exit status back.

Import the modules themselves: this package loads nothing, so the zygote
(which every container is a fork of) loads only what it uses.
"""
