"""Secret names: which keys in log text and which env var names hold secrets.

The word tables and judges behind :mod:`bot.masking`: a key in log text (``db_password=``)
is judged by its last word(s), an env var name (``mask_env``) more strictly by any of its
words unless the last one names a locator; see :mod:`bot.masking` for the decisions.
Also the sentinel values (empty, null-ish, placeholders) that carry no secret.
"""

from __future__ import annotations

import re

# ---------------------------------------------------------------------------------------------
# Names: which keys / env var names hold secrets
# ---------------------------------------------------------------------------------------------

# Splits SNAKE_CASE, kebab-case, dotted.names and camelCase/PascalCase into lower-case words.
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")

_PASSWORD_WORDS = frozenset({"password", "passwd", "pwd", "pass", "passphrase"})
_SECRET_WORDS = frozenset({"secret"})
_TOKEN_WORDS = frozenset({"token"})
_CREDENTIAL_WORDS = frozenset({"credential", "credentials", "creds"})
_SIGNATURE_WORDS = frozenset({"signature", "sig"})
_SESSION_WORDS = frozenset({"sessionid", "sessid", "jsessionid", "phpsessid"})
# A fused word ending like this is a secret too: PGPASSWORD, GITHUBTOKEN, APPSECRET.
_FUSED_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("password", "password"),
    ("passwd", "password"),
    ("passphrase", "password"),
    ("secret", "secret"),
    ("token", "token"),
    ("apikey", "api-key"),
    ("accesskey", "api-key"),
    ("secretkey", "api-key"),
    ("privatekey", "private-key"),
    ("accountkey", "api-key"),
    ("sessionid", "session"),
    ("sessid", "session"),
)
# "<word> key" pairs that name a secret when they end a key in log text (api_key, x-api-key).
_SECRET_KEY_QUALIFIERS = frozenset(
    {
        "api",
        "access",
        "secret",
        "private",
        "account",
        "signing",
        "encryption",
        "master",
        "subscription",
        "client",
        "license",
        "app",
        "auth",
        "shared",
        "session",
        "admin",
        "service",
        "webhook",
        "ingestion",
    }
)
# Env-name words that make the value a secret wherever they appear in the name.
_ENV_SECRET_WORDS = (
    _PASSWORD_WORDS
    | _SECRET_WORDS
    | _TOKEN_WORDS
    | _CREDENTIAL_WORDS
    | frozenset({"key", "keys", "apikey", "auth", "private", "privatekey", "secrets", "passwords"})
)
# ...unless the last word says the value locates something rather than being it.
_ENV_LOCATOR_SUFFIXES = frozenset(
    {
        "url",
        "uri",
        "urls",
        "endpoint",
        "host",
        "hostname",
        "port",
        "path",
        "file",
        "dir",
        "directory",
        "name",
        "ref",
        "region",
        "ttl",
        "timeout",
        "enabled",
        "disabled",
        "mode",
        "type",
        "header",
        "format",
        "algorithm",
        "length",
        "size",
        "issuer",
        "audience",
        "domain",
        "realm",
        "scope",
        "scopes",
    }
)


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORDS.findall(name)]


def _kind_of_word(word: str) -> str | None:
    """The marker kind a single secret word implies, or None."""
    if word in _PASSWORD_WORDS:
        return "password"
    if word in _SECRET_WORDS:
        return "secret"
    if word in _TOKEN_WORDS:
        return "token"
    if word in _CREDENTIAL_WORDS:
        return "credential"
    if word in _SIGNATURE_WORDS:
        return "signature"
    if word in _SESSION_WORDS:
        return "session"
    for suffix, kind in _FUSED_SUFFIXES:
        if word.endswith(suffix):
            return kind
    return None


def _key_kind(key: str) -> str | None:
    """Marker kind for a key in log text (``db_password=``), judged by its last word(s)."""
    words = _words(key)
    if not words:
        return None
    last = words[-1]
    if last in {"key", "keys"}:
        if len(words) >= 2 and words[-2] in _SECRET_KEY_QUALIFIERS:
            return "private-key" if words[-2] == "private" else "api-key"
        return None
    return _kind_of_word(last)


def _env_kind(name: str) -> str | None:
    """Marker kind for an env var name, or None when its value is not a secret by name."""
    words = _words(name)
    if not words or words[-1] in _ENV_LOCATOR_SUFFIXES:
        return None
    for word in words:  # the first secret word from the left names the kind: SECRET_KEY_BASE
        kind = _kind_of_word(word)
        if kind is not None:
            return kind
        if word in {"key", "keys", "apikey"}:
            return "api-key"
        if word in {"private", "privatekey"}:
            return "private-key"
        if word in _ENV_SECRET_WORDS:
            return "secret"
    return None


# Values that carry no secret: empty, null-ish, booleans, asterisks, unexpanded references.
_SENTINEL = re.compile(
    r"""(?ix)
    (?: null | nil | <nil> | none | undefined | true | false | yes | no | \*+ | <redacted>
      | redacted | \$\{[^}]*\} | \$\([^)]*\) | \{\{[^}]*\}\} | \$[A-Z_][A-Z0-9_]* )?
    """
)


def _is_sentinel(value: str) -> bool:
    return _SENTINEL.fullmatch(value.strip()) is not None or "[REDACTED:" in value
