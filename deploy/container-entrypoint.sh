#!/bin/sh
# The entrypoint of the sandbox image (Containerfile): prepare the container's cgroup, then
# run the command (`sandbox worker`, `sandbox daemon ...`).
#
# On cgroup v2 a container has a cgroup namespace of its own, and its processes sit in the
# root of it. A cgroup that holds processes cannot hand controllers down to child cgroups
# (the "no internal process" rule of Documentation/admin-guide/cgroup-v2.rst), so the engine
# could not give its sandboxes memory, pids and cpu limits. Move this container's processes
# to a leaf, /init, first. Only in a container (Docker's /.dockerenv, Podman's $container)
# at the root of its own cgroup namespace: never on a host, never in the host's cgroup tree.
set -eu
cg=/sys/fs/cgroup
if { [ -f /.dockerenv ] || [ -n "${container:-}" ]; } && [ -f "$cg/cgroup.controllers" ] \
        && [ "$(cat /proc/self/cgroup)" = "0::/" ] && [ -w "$cg/cgroup.subtree_control" ]; then
    mkdir -p "$cg/init"
    while read -r pid; do
        echo "$pid" > "$cg/init/cgroup.procs" 2>/dev/null || :
    done < "$cg/cgroup.procs"
fi
exec "$@"
