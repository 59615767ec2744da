"""Sandboxes that outlive their client: one supervisor process per sandbox.

`sandbox run -d` (and `-t`: a terminal you can detach from) starts a
*supervisor* for the sandbox, a small process of its own in its own
session, as containerd's shim or conmon are for a container, rather than
handing it to a daemon: the CLI is embedded by default and needs no daemon
running, a daemon that restarts must not take its sandboxes with it, and a
daemon (or any threaded process) starts sandboxes through the same object.
The supervisor owns the sandbox: it runs it (again, on a restart policy),
keeps its terminal or stdin, its log and its writable layer, and serves a
unix socket in its state dir that clients attach to or ask to stop, kill,
wait or remove it.

Read in this order: ``options`` (restart policy, --rm, foreground),
``status`` (the state on disk, for `ps -a`, `start` and gc), ``protocol``
(frames on the socket), ``server`` (the Supervisor and its loop),
``connections`` (its clients), ``layer`` (a kept sandbox's writable
layer), ``launch`` (making a supervised sandbox, starting its process),
``client`` (requests and attachments) and ``lifecycle`` (the verbs: start,
stop, restart, kill, wait, remove, for supervised sandboxes and the others).

For a daemon: ``lifecycle.run_detached(spec, options)`` starts one and
returns its Launched (id, tty, attachment); ``client.attach(sdir)`` gives the
frames a WebSocket carries; the verbs work from any process.
"""
