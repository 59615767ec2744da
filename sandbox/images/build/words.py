"""Words and variables in instruction arguments, as the Dockerfile shell lexer reads them.

Quotes group words and are removed; the escape character (``\\`` unless the
file says ``# escape=```) takes the next character literally; ``$NAME``,
``${NAME}``, ``${NAME:-word}``, ``${NAME-word}``, ``${NAME:+word}``,
``${NAME+word}``, ``${NAME:?message}`` and ``${NAME?message}`` expand from
the build's variables (ARG and ENV), an unset name to the empty string.
Single quotes keep ``$`` literal. Errors are ValueError with one line; the
caller adds the instruction's location.
"""

from __future__ import annotations

from collections.abc import Mapping

_NAME_START = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
_NAME_CHARS = _NAME_START + "0123456789"


def expand(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word: quotes removed, variables expanded, whitespace kept."""
    return "".join(_Lexer(text, env, escape).words(split=False))


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Words split at unquoted whitespace, each with quotes removed and variables expanded."""
    return _Lexer(text, env, escape).words(split=True)


def split_raw(text: str, escape: str = "\\") -> list[str]:
    """Words split at unquoted whitespace, quotes and escapes left in (for KEY=VALUE lists)."""
    words, current, quote, braces, i = [], [], "", 0, 0
    while i < len(text):
        ch = text[i]
        if ch == escape and quote != "'" and i + 1 < len(text):
            current += [ch, text[i + 1]]
            i += 2
            continue
        if quote != "'" and text.startswith("${", i):
            braces += 1
        elif braces and ch == "}" and quote != "'":
            braces -= 1
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch.isspace() and not braces:
            if current:
                words.append("".join(current))
                current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    if quote:
        raise ValueError(f"unmatched {quote} quote")
    if current:
        words.append("".join(current))
    return words


class _Lexer:
    """One pass over ``text``: quotes, escapes and ``$`` expansions."""

    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text, self.env, self.escape, self.pos = text, env, escape, 0

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        self.pos += 1
        return ch

    def words(self, *, split: bool) -> list[str]:
        words: list[str] = []
        current: list[str] = []
        started = False
        while self.pos < len(self.text):
            ch = self._peek()
            if split and ch.isspace():
                self.pos += 1
                if started:
                    words.append("".join(current))
                    current, started = [], False
                continue
            if split and ch == "$":  # an unquoted variable's value is split into words too
                self.pos += 1
                value = self._dollar()
                pieces = value.split()
                if value[:1].isspace() and started:
                    words.append("".join(current))
                    current, started = [], False
                for i, piece in enumerate(pieces):
                    if i:
                        words.append("".join(current))
                        current = []
                    current.append(piece)
                    started = True
                if value[-1:].isspace() and started:
                    words.append("".join(current))
                    current, started = [], False
                continue
            started = True
            current.append(self._unquoted())
        if started:
            words.append("".join(current))
        return words

    def _unquoted(self) -> str:
        ch = self._next()
        if ch == self.escape:
            return self._next()  # a trailing escape stands for nothing
        if ch == "'":
            return self._single_quoted()
        if ch == '"':
            return self._double_quoted()
        if ch == "$":
            return self._dollar()
        return ch

    def _single_quoted(self) -> str:
        end = self.text.find("'", self.pos)
        if end < 0:
            raise ValueError("unmatched ' quote")
        value = self.text[self.pos:end]
        self.pos = end + 1
        return value

    def _double_quoted(self) -> str:
        out: list[str] = []
        while True:
            ch = self._next()
            if ch == "":
                raise ValueError('unmatched " quote')
            if ch == '"':
                return "".join(out)
            if ch == self.escape and self._peek() in ('"', "$", self.escape) and self._peek():
                out.append(self._next())
            elif ch == "$":
                out.append(self._dollar())
            else:
                out.append(ch)

    def _dollar(self) -> str:
        ch = self._peek()
        if ch == "{":
            self.pos += 1
            return self._braced()
        if ch and ch in _NAME_START:
            return self.env.get(self._name(), "")
        return "$"

    def _name(self) -> str:
        start = self.pos
        while self._peek() and self._peek() in _NAME_CHARS:
            self.pos += 1
        return self.text[start:self.pos]

    def _braced(self) -> str:
        name = self._name()
        if not name:
            raise ValueError("bad substitution: expected a name after ${")
        ch = self._next()
        if ch == "}":
            return self.env.get(name, "")
        if ch == "":
            raise ValueError("bad substitution: missing }")
        colon = ch == ":"
        op = self._next() if colon else ch
        if op not in ("-", "+", "?"):
            raise ValueError(f"bad substitution in ${{{name}...}}: expected }}, :-, -, :+, +, :? or ?")
        word = self._word_until_brace()
        value = self.env.get(name)
        set_value = value if value is not None and (value != "" or not colon) else None
        if op == "-":
            return set_value if set_value is not None else word
        if op == "+":
            return word if set_value is not None else ""
        if set_value is None:
            raise ValueError(f"{name}: {word or 'is not set'}")
        return set_value

    def _word_until_brace(self) -> str:
        out: list[str] = []
        while True:
            if self._peek() == "":
                raise ValueError("bad substitution: missing }")
            if self._peek() == "}":
                self.pos += 1
                return "".join(out)
            out.append(self._unquoted())
