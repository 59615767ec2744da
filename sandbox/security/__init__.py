"""What a sandbox is kept from: its seccomp filter, its user namespace's ids.

- ``profile``: seccomp profiles in Docker's JSON format (``default.json`` is
  moby's default profile, vendored unmodified: see NOTICE), checked and
  resolved for one sandbox's capabilities, architecture and kernel; and the
  built-in ``nested`` profile (the default plus ``sandbox.fork_nested``'s clone
  and mounts).
- ``filters``: a resolved profile compiled to a BPF program once per profile and
  capability set (cached in memory and on disk): assembled by ``assembler`` (a short
  program, which every sandbox's start loads), else by libseccomp.
- ``subids``: per-sandbox ranges of host uids and gids for ``--userns=auto``,
  from the ``sandbox`` entries of /etc/subuid and /etc/subgid.

The container's side (entering the user namespace, loading the filter last
before exec) is ``sandbox.process.confine``.
"""
