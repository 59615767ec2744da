"""What a test's run tells pytest's reporting hooks, as lines that travel, and back.

Where a sandboxed test runs, everything its run hands to the hooks through
which pytest shows a test (``pytest_runtest_logstart``, every
``pytest_runtest_logreport``: the phases' reports, subtests', reruns', any
plugin's; ``pytest_warning_recorded``; ``pytest_runtest_logfinish``) is
written as one JSON line per call, in order, as soon as it happens
(``Recorder``): a sandbox that dies mid-test leaves what was said before.
The pytest process that shows the test reads the lines back as ``Event``
objects (``parse_events``) and ``replay`` calls the same hooks with them.

Reports go through pytest's own ``pytest_report_to_serializable`` /
``pytest_report_from_serializable`` hooks, as pytest-xdist sends them, so a
plugin's report class and fields survive; warnings as pytest-xdist sends
them too (the message's class by name, its arguments when they are JSON).
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from typing import Any, NamedTuple

#: The hooks whose calls are events, by the name of the event.
HOOKS = {
    "logstart": "pytest_runtest_logstart",
    "report": "pytest_runtest_logreport",
    "warning": "pytest_warning_recorded",
    "logfinish": "pytest_runtest_logfinish",
}
#: The file of events in a report directory.
EVENTS_FILE = "reports.jsonl"


class Event(NamedTuple):
    """One hook call: ``kind`` (a key of HOOKS) and the hook's keyword arguments."""

    kind: str
    kwargs: dict

    @property
    def report(self):
        """The report of a "report" event (None for the others)."""
        return self.kwargs.get("report")


class Recorder:
    """A pytest plugin: appends each reporting hook call of this process to ``directory``.

    It records only once started, in the process that runs the test: the
    pytest process that forks tests registers one early and never starts it
    (its forked copies start theirs), so no forked test pays for registering
    a plugin; and pluggy hands a plugin registered late every earlier call of
    a historic hook (``pytest_warning_recorded``), which are not the test's.
    """

    def __init__(self, config, directory: str) -> None:
        self.config = config
        self.path = os.path.join(directory, EVENTS_FILE)
        self._fd = -1
        self.started = False

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        if self.started:
            self._send("logstart", {"nodeid": nodeid, "location": location})

    def pytest_runtest_logreport(self, report) -> None:
        if self.started:
            data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
            self._send("report", {"report": data})

    def pytest_warning_recorded(self, warning_message, when: str, nodeid: str, location) -> None:
        if self.started:
            self._send("warning", {"warning_message": warning_to_json(warning_message),
                                   "when": when, "nodeid": nodeid, "location": location})

    def pytest_runtest_logfinish(self, nodeid: str, location) -> None:
        if self.started:
            self._send("logfinish", {"nodeid": nodeid, "location": location})

    def _send(self, kind: str, kwargs: dict) -> None:
        line = json.dumps({"event": kind, **kwargs}, default=repr) + "\n"
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        os.write(self._fd, line.encode())


def parse_events(config, data: bytes, *, moved: tuple[str, str] | None = None) -> list[Event]:
    """The events in an events file's contents; a line cut short by a crash ends them.

    ``moved``: (there, here) when the test ran with the rootdir elsewhere
    (a worker's workspace): the files its reports and warnings name are
    named where they are here.
    """
    events = []
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            fields = json.loads(line)
        except ValueError:
            break  # a line cut short by a crash: the events before it stand
        kind = fields.pop("event", None) if isinstance(fields, dict) else None
        if kind not in HOOKS:
            continue  # from a newer version of this plugin: what this one knows still shows
        if moved:
            fields = _moved(fields, *moved)
        events.append(Event(kind, _kwargs(config, kind, fields)))
    return events


#: The keys whose values name files, in serialized reports and warnings.
_PATH_KEYS = ("path", "filename")


def _moved(value, there: str, here: str, key: str = ""):
    """``value`` with the files under ``there`` named under ``here``."""
    if isinstance(value, dict):
        return {k: _moved(v, there, here, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [_moved(v, there, here) for v in value]
        if key == "longrepr" and items and isinstance(items[0], str):  # a skip's (path, line, reason)
            items[0] = _moved(items[0], there, here, "path")
        return items
    if key in _PATH_KEYS and isinstance(value, str) and value.startswith(there.rstrip("/") + "/"):
        return here.rstrip("/") + value[len(there.rstrip("/")):]
    return value


def _kwargs(config, kind: str, fields: dict) -> dict:
    if "location" in fields:
        fields["location"] = _tuple(fields["location"])
    if kind == "report":
        fields["report"] = report_from_json(config, fields["report"])
    elif kind == "warning":
        fields["warning_message"] = warning_from_json(fields["warning_message"])
    return fields


def report_from_json(config, data: dict):
    """A report as pytest's hooks (and plugins') rebuild it; what JSON made lists is tuples again."""
    if isinstance(data.get("longrepr"), list):  # a skip's (path, line, reason)
        data["longrepr"] = tuple(data["longrepr"])
    for name in ("sections", "user_properties"):
        if isinstance(data.get(name), list):
            data[name] = [_tuple(pair) for pair in data[name]]
    report = config.hook.pytest_report_from_serializable(config=config, data=data)
    if isinstance(getattr(report, "location", None), list):
        report.location = tuple(report.location)
    return report


def _tuple(value):
    return tuple(value) if isinstance(value, list) else value


# -- warnings -------------------------------------------------------------------

#: A WarningMessage's fields besides the message and its category.
_DETAILS = ("filename", "lineno", "line")


def warning_to_json(message: warnings.WarningMessage) -> dict[str, Any]:
    """A recorded warning as JSON: its class by name, its arguments if they are JSON."""
    warning = message.message
    data: dict[str, Any] = {
        "message": str(warning),
        "message_class": _class_name(type(warning)) if isinstance(warning, Warning) else None,
        "message_args": _json_or_none(warning.args) if isinstance(warning, Warning) else None,
        "category": _class_name(message.category) if message.category else None,
    }
    for name in _DETAILS:
        data[name] = _json_or_none(getattr(message, name, None))
    return data


def warning_from_json(data: dict[str, Any]) -> warnings.WarningMessage:
    """The warning again: of its class, made from its arguments, where this process can
    import the class; else a Warning that names it."""
    category = _load_class(data.get("category")) or UserWarning
    message: Any = data["message"]
    if data.get("message_class"):
        message = _warning(data)
    return warnings.WarningMessage(message, category, data.get("filename") or "", data.get("lineno") or 0,
                                   line=data.get("line"))


def _warning(data: dict[str, Any]) -> Warning:
    cls = _load_class(data["message_class"])
    if cls is not None:
        for args in (data.get("message_args"), [data["message"]]):
            if args is None:
                continue
            try:
                return cls(*args)
            except Exception:
                continue
    return Warning(f"{data['message_class']}: {data['message']}")


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _load_class(name: str | None) -> type | None:
    """The class ``module:qualname`` names, if this process can import it."""
    if not name:
        return None
    module, _, qualname = name.partition(":")
    try:
        value: Any = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
    except Exception:
        return None
    return value if isinstance(value, type) else None


def _json_or_none(value):
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value
