"""``python -m sandbox.supervisor ID FD``: a supervisor started by a multi-threaded process."""

import sys

from .launch import daemonize_and_serve

if __name__ == "__main__":
    daemonize_and_serve(sys.argv[1], int(sys.argv[2]))
