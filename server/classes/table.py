"""Every class the daemon holds: make one, reset a student, extend, end; the TTL's reaper.

Making a class starts one sandbox per student at once (a few threads: the
engine's setup is mostly the kernel's work), each with its own token;
if any fails, everything made so far is removed and the error is the one
line the engine gave. Ending a class (its TTL, `sandbox class rm`, the
daemon's SIGTERM) removes its sandboxes, tokens, network and directory;
the recordings stay only with ``keep_recordings``.

The students' sandboxes are held in the daemon's SandboxTable like any
other, owned by the teacher's token (so `sandbox ps` through the daemon
shows them to the teacher, and to no student: a student token has no scope).
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox import StateError, create_network, lib_dir, owner_gone, remove_network, write_owner

from ..held import SandboxTable
from ..terminal import Terminal
from ..tty import needs_stdin_pipe, terminal_spec
from .recording import Recorder
from .room import Classroom, Seat, digest, new_secret
from .spec import USERNS_AVAILABLE, ClassSpec, student_spec

log = logging.getLogger("sandbox.daemon")
#: Sandboxes made at once when a class starts.
STARTERS = 8
#: How often the reaper looks for classes past their TTL (seconds).
REAP_EVERY = 0.5


def classes_dir() -> Path:
    return lib_dir() / "classes"


class ClassTable:
    """The classes of one daemon, by name; a thread ends each at its TTL."""

    def __init__(self, sandboxes: SandboxTable, root: Path | None = None) -> None:
        self.sandboxes = sandboxes
        self.root = root or classes_dir()
        self._rooms: dict[str, Classroom] = {}
        self._by_token: dict[str, tuple[str, str]] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="class-reaper", daemon=True)
        self._reaper.start()

    def create(self, spec: ClassSpec, owner: str) -> tuple[Classroom, dict[str, str]]:
        """Make the class and start every student's sandbox; (the class, student -> token)."""
        if spec.userns and not USERNS_AVAILABLE:
            raise StateError("user namespaces for class sandboxes need the engine's support, "
                             "which this daemon lacks", hint="make the class without --userns")
        with self._lock:
            if spec.name in self._rooms:
                raise StateError(f"a class named {spec.name!r} exists",
                                 hint=f"end it first with `sandbox class rm {spec.name}`")
            stamp = time.strftime("%Y%m%d-%H%M%S")
            room = Classroom(spec, owner, self.root / f"{spec.name}.{stamp}")
            room.expires = room.created + spec.ttl
            self._rooms[spec.name] = room
        try:
            tokens = self._open(room)
        except BaseException:
            self._close(room)
            raise
        return room, tokens

    def _open(self, room: Classroom) -> dict[str, str]:
        spec = room.spec
        room.recordings.mkdir(parents=True, mode=0o700)
        write_owner(room.directory)
        (room.directory / "class.json").write_text(json.dumps(spec.to_dict()))
        if spec.network == "class":
            create_network(spec.network_name(), isolated=True)  # no student reaches another
            room.network = spec.network_name()
        tokens = {}
        for name in spec.student_names():
            secret, sha = new_secret()
            tokens[name] = secret
            home = room.homes / name if spec.home_volume else None
            if home is not None:
                home.mkdir(parents=True, mode=0o700)
            room.seats[name] = Seat(name, sha, home=home)
        with ThreadPoolExecutor(STARTERS, thread_name_prefix=f"class-{spec.name}") as pool:
            for future in [pool.submit(self._start_seat, room, seat) for seat in room.seats.values()]:
                future.result()
        with self._lock:
            self._by_token.update({seat.token_sha256: (room.name, seat.name)
                                   for seat in room.seats.values()})
        return tokens

    def _start_seat(self, room: Classroom, seat: Seat) -> None:
        """A new sandbox for the seat, recorded; the seat's old one (if any) is gone by now."""
        seat.generation += 1
        sandbox_spec = terminal_spec(student_spec(room.spec, seat.name,
                                                  str(seat.home) if seat.home else None))
        recorder = Recorder(room.recordings / f"{seat.name}.{seat.generation}.cast",
                            title=f"{room.name}/{seat.name} #{seat.generation}")
        try:
            held = self.sandboxes.create(sandbox_spec, room.owner, stdin=needs_stdin_pipe(),
                                         sinks=(recorder,))
        except BaseException:
            recorder.close()
            raise
        seat.held, seat.terminal, seat.cpu_sample = held, Terminal(held, recorder), None
        held.terminal = seat.terminal
        self.sandboxes.start(held)

    def get(self, name: str) -> Classroom:
        with self._lock:
            room = self._rooms.get(name)
        if room is None or room.ended:  # an ending class is listed, but takes no more changes
            raise StateError(f"no such class: {name}", hint="`sandbox class ls` lists them")
        return room

    def all(self) -> list[Classroom]:
        with self._lock:
            return sorted(self._rooms.values(), key=lambda r: r.created)

    def student(self, secret: str) -> tuple[Classroom, Seat] | None:
        """The class and seat a student token opens, or None."""
        with self._lock:
            where = self._by_token.get(digest(secret))
            room = self._rooms.get(where[0]) if where else None
        return (room, room.seats[where[1]]) if room and where else None

    def reset(self, room: Classroom, student: str) -> Seat:
        """Throw the student's sandbox away and start a fresh one from the image (the home
        stays with ``home_volume``); their page reconnects to it by itself."""
        seat = room.seats.get(student)
        if seat is None:
            raise StateError(f"no such student in class {room.name}: {student}")
        old, terminal = seat.held, seat.terminal
        if terminal is not None:
            terminal.replaced = True
        if old is not None:
            self.sandboxes.remove(old, force=True)
        self._start_seat(room, seat)
        return seat

    def extend(self, room: Classroom, seconds: float) -> float:
        room.expires = max(room.expires, time.time()) + seconds
        return room.expires

    def end(self, name: str) -> Classroom:
        """End the class now: sandboxes, tokens, network and files (recordings unless kept)."""
        room = self.get(name)
        self._close(room)
        return room

    def _close(self, room: Classroom) -> None:
        with self._lock:
            if room.ended:
                return
            room.ended = True
            for seat in room.seats.values():
                self._by_token.pop(seat.token_sha256, None)
        try:
            for seat in room.seats.values():
                if seat.held is not None:
                    try:
                        self.sandboxes.remove(seat.held, force=True)
                    except Exception as exc:
                        log.warning("class %s: removing %s's sandbox: %s", room.name, seat.name, exc)
            if room.network:
                try:
                    remove_network(room.network)
                except Exception as exc:
                    log.warning("class %s: removing its network: %s", room.name, exc)
            remove_files(room.directory, keep_recordings=room.spec.keep_recordings)
        finally:
            with self._lock:  # listed until everything of it is gone
                self._rooms.pop(room.name, None)

    def _reap(self) -> None:
        while not self._stop.wait(REAP_EVERY):
            now = time.time()
            for room in [r for r in self.all() if r.expires <= now]:
                log.warning("class %s: its time is up; ending it", room.name)
                try:
                    self._close(room)
                except Exception as exc:
                    log.warning("class %s: ending it: %s", room.name, exc)

    def shutdown(self) -> None:
        """The daemon stops: every class ends (as at its TTL)."""
        self._stop.set()
        for room in self.all():
            self._close(room)


def remove_files(directory: Path, *, keep_recordings: bool) -> None:
    """A class's directory, or with ``keep_recordings`` all of it but its recordings."""
    if not keep_recordings:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for child in directory.iterdir() if directory.exists() else ():
        if child.name != "recordings":
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()


def collect_one(directory: Path) -> None:
    """What a dead daemon left of one class: its network, its files (kept recordings stay)."""
    try:
        spec = json.loads((directory / "class.json").read_text())
    except (OSError, ValueError):
        spec = {}
    if spec.get("network") == "class":
        try:
            remove_network(f"class-{spec['name']}")
        except Exception:
            pass
    remove_files(directory, keep_recordings=bool(spec.get("keep_recordings")))


def collect(root: Path | None = None) -> list[str]:
    """Classes whose daemon died (gc at the daemon's start): their names."""
    root = root or classes_dir()
    gone = []
    for directory in sorted(root.iterdir()) if root.exists() else ():
        if (directory / "owner").exists() and owner_gone(directory):
            collect_one(directory)
            gone.append(directory.name)
    return gone
