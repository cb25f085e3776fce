"""Shell-text checks and tokenizing for one command line, before kubectl's own rules apply.

A command is accepted only as one plain command: quote-aware scanning refuses anything the
shell would give meaning to (pipes, expansions, globs, redirections, more than one line), and
every token is checked for control, non-ASCII and metacharacters.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

MAX_COMMAND_LENGTH = 4096

# Refused outside quotes: the shell would give them meaning.
_UNQUOTED = {
    "|": "a pipe",
    ";": "a command separator",
    "&": "a background job or && list",
    ">": "a redirection",
    "<": "a redirection",
    "`": "command substitution",
    "$": "shell expansion",
    "\\": "a backslash escape or line continuation",
    "(": "a subshell",
    ")": "a subshell",
    "{": "brace expansion",
    "}": "brace expansion",
    "[": "a glob pattern",
    "]": "a glob pattern",
    "*": "a glob pattern",
    "?": "a glob pattern",
    "~": "tilde expansion",
    "#": "a shell comment",
}
# Refused in any token, quoted or not: never needed by an accepted command.
_TOKEN_FORBIDDEN = frozenset("|;&<>`$")


def _tokenize(command: object) -> tuple[str, list[str], str | None]:
    """Split the input into tokens, or say why it cannot be one plain command."""
    if isinstance(command, str):
        text = command
        if len(text) > MAX_COMMAND_LENGTH:
            return text, [], f"command longer than {MAX_COMMAND_LENGTH} characters"
        reason = _shell_syntax(text)
        if reason is not None:
            return text, [], reason
        try:
            tokens = shlex.split(text, posix=True)
        except ValueError as exc:
            return text, [], f"cannot split the command: {exc}"
    elif isinstance(command, Sequence) and all(isinstance(part, str) for part in command):
        tokens = list(command)
        text = shlex.join(tokens)
        if len(text) > MAX_COMMAND_LENGTH:
            return text, [], f"command longer than {MAX_COMMAND_LENGTH} characters"
    else:
        return repr(command)[:200], [], "a command must be a string or a list of strings"
    if not tokens:
        return text, [], "empty command"
    for token in tokens:
        reason = _token_problem(token)
        if reason is not None:
            return text, [], reason
    return text, tokens, None


def _shell_syntax(text: str) -> str | None:
    """Why the shell would read ``text`` as more than one plain command, if it would."""
    quote = ""
    index = 0
    while index < len(text):
        char = text[index]
        if char in "\n\r":
            return "more than one line: one command only"
        if quote == "'":
            if char == "'":
                quote = ""
        elif quote == '"':
            if char == '"':
                quote = ""
            elif char in "$`":
                return f"{_UNQUOTED[char]} ({char!r}) inside double quotes is not allowed"
            elif char == "\\":
                if text[index + 1 : index + 2] not in ('"', "\\"):
                    return "a backslash escape inside double quotes is not allowed"
                index += 1
        elif char in "'\"":
            quote = char
        elif char in _UNQUOTED:
            return f"shell syntax is not allowed: {_UNQUOTED[char]} ({char!r})"
        index += 1
    return None


def _token_problem(token: str) -> str | None:
    """Why one token is refused (non-printable, non-ASCII, shell metacharacters)."""
    for char in token:
        if not " " <= char <= "~" and char != "\t":
            if char in "\n\r":
                return "more than one line: one command only"
            if ord(char) > 127:
                return (
                    f"non-ASCII character U+{ord(char):04X} in {token[:40]!r} "
                    "(a look-alike dash or quote?)"
                )
            return f"control character U+{ord(char):04X} in the command"
        if char in _TOKEN_FORBIDDEN:
            return f"shell metacharacter {char!r} in {token[:40]!r}"
    return None
