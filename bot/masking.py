"""Masking of secrets and personal data in untrusted text (DESIGN principle 4).

Logs, annotations, events, env values and Slack input are masked here before they reach an
LLM, Slack or the incident index. A secret is replaced by ``[REDACTED:<kind>]`` and the text
around it is kept, so a reader still sees *where* a credential was and what shape the line
had::

    postgres://app:[REDACTED:password]@db:5432/orders
    Authorization: Bearer [REDACTED:jwt]
    DB_PASSWORD=[REDACTED:password]
    [REDACTED:email]@example.com

Decisions (each one a trade-off between leaking and losing diagnostic value):

- **Emails** keep their domain (``[REDACTED:email]@example.com``): the person is hidden, the
  organisation / mail provider often matters for diagnosis. ``git@host`` is not an email.
- **Card numbers** are masked only when they look like one *and* pass the Luhn check: 15-16
  contiguous digits starting 2-6, or 4-4-4-4(-3) / 4-6-5 / 4-6-4 groups. 13-digit epoch
  milliseconds (they start with 1), 19-digit ids and numbers after ``trace``/``span``/
  ``bytes``/``offset``/``size`` are left alone.
- **Key-value pairs in text** (``password=…``, ``"api_key": "…"``) are masked when the *last*
  word of the key names a secret (``db_password``, ``clientSecret``, ``x-api-key``), so
  ``token_count=5`` or ``max_tokens=1024`` survive. A bare ``key=`` is an object/cache key
  in most logs, not a secret, and is kept.
- **Env names** (``mask_env``) are judged more strictly: any word of the name that names a
  secret (``key``, ``token``, ``secret``, ``password``, ``passwd``, ``pwd``, ``pass``,
  ``passphrase``, ``credential(s)``, ``creds``, ``auth``, ``apikey``, ``private``) masks the
  value — ``CACHE_KEY_PREFIX`` and ``AUTH_MODE`` included — unless the *last* word says the
  value is a locator (``_URL``, ``_HOST``, ``_PORT``, ``_PATH``, ``_FILE``, ``_DIR``,
  ``_NAME``, ``_ENDPOINT``, …). Locator values still go through :func:`mask`, so a password
  inside ``AUTH_URL`` is caught there. Words are whole: ``KEYCLOAK_URL``, ``MONKEY``,
  ``AUTHOR`` and ``TOKENIZER_PATH`` are not secrets; fused forms ending in a secret word
  (``PGPASSWORD``, ``GITHUBTOKEN``) are.
- **Placeholders and sentinels are kept**: an empty value, ``null``/``nil``/``<nil>``/
  ``none``/``undefined``, ``true``/``false``/``yes``/``no`` (MySQL's "using password:
  YES"), ``****`` and unexpanded references such as ``${DB_PASSWORD}`` or
  ``$(DB_PASSWORD)`` hold no secret, and "the password is empty / was
  never substituted" is exactly what an incident responder needs to see.
- Hex ids are never masked on their own: image digests, trace ids (32 hex), git SHAs,
  Kubernetes UIDs and container ids are not credentials, and a 32-hex API key cannot be
  told apart from a trace id without a key name next to it.

``mask`` is idempotent (no rule matches a marker) and fast: every pattern is precompiled,
runs only when one of its trigger words occurs, and then only on the lines holding one, so
the cost follows the number of suspicious lines, not the size of the text. No pattern nests
repetitions or rescans a token from every position: time stays linear in the input.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from itertools import accumulate

from bot.masking_names import _env_kind, _is_sentinel
from bot.masking_patterns import _RULES, _marker, _mask_cards, _mask_emails, _mask_key_values, _Rule

__all__ = ["mask", "mask_env", "mask_mapping", "is_secret_name"]


def _run(rule: _Rule) -> Callable[[str], str]:
    return lambda s: rule.regex.sub(rule.replacement, s)


# (triggers, exact, function). Whole-text steps may span lines (PEM blocks, YAML env
# entries) and run first; line steps then run only on the lines holding a trigger.
_Step = tuple[tuple[str, ...], bool, Callable[[str], str]]
_WHOLE_STEPS: tuple[_Step, ...] = tuple(
    (r.triggers, r.exact, _run(r)) for r in _RULES if not r.lines
)
_LINE_STEPS: tuple[_Step, ...] = (
    *((r.triggers, r.exact, _run(r)) for r in _RULES if r.lines),
    # the generic key-value pass: triggers are the lower-case roots of its secret words
    (("pass", "pwd", "secret", "token", "key", "cred", "sig", "sess"), False, _mask_key_values),
)


def _line_starts(text: str) -> list[int]:
    return list(accumulate((len(line) + 1 for line in text.split("\n")), initial=0))[:-1]


def _trigger_lines(hay: str, starts: list[int], triggers: tuple[str, ...]) -> set[int]:
    """Indices of the lines of ``hay`` (which begin at ``starts``) holding a trigger."""
    found: set[int] = set()
    for trigger in triggers:
        i = hay.find(trigger)
        while i != -1:
            n = bisect_right(starts, i) - 1
            found.add(n)
            i = hay.find(trigger, starts[n + 1] if n + 1 < len(starts) else len(hay))
    return found


def mask(text: str) -> str:
    """Replace secrets and personal data in free text with ``[REDACTED:<kind>]`` markers.

    Args:
        text: Untrusted text: log lines, annotations, event messages, env values, Slack input.

    Returns:
        The text with every recognised secret replaced and everything else unchanged.
        ``mask(mask(x)) == mask(x)`` for every ``x``: no rule matches a marker.
    """
    if not text:
        return text
    lowered = text.lower()
    for triggers, exact, fn in _WHOLE_STEPS:
        hay = text if exact else lowered
        if triggers and not any(t in hay for t in triggers):
            continue
        new = fn(text)
        if new != text:
            text, lowered = new, new.lower()
    # Line numbers agree between the text and its lower-cased copy (lower() never adds or
    # removes a newline), even where a few non-ASCII letters change length.
    lines = text.split("\n")
    starts = _line_starts(lowered)
    exact_starts = starts if len(lowered) == len(text) else _line_starts(text)
    for triggers, exact, fn in _LINE_STEPS:
        hay, at = (text, exact_starts) if exact else (lowered, starts)
        for n in _trigger_lines(hay, at, triggers):
            lines[n] = fn(lines[n])
    text = "\n".join(lines)
    if "@" in text:
        text = _mask_emails(text)
    return _mask_cards(text)


def mask_env(name: str, value: str) -> str:
    """Mask one environment variable's value.

    Args:
        name: The variable name (``DB_PASSWORD``, ``apiKey``, ``stripe-secret``...).
        value: Its value.

    Returns:
        ``[REDACTED:<kind>]`` when the name says the value is a secret (and the value is not
        empty, a placeholder such as ``${X}``, or already masked); otherwise ``mask(value)``.
    """
    kind = _env_kind(name)
    if kind is None or _is_sentinel(value):
        return mask(value)
    return _marker(kind)


def mask_mapping(m: Mapping[str, str]) -> dict[str, str]:
    """Mask every value of an env-like mapping (ConfigMap data, env lists, labels).

    Args:
        m: Names to values.

    Returns:
        A new dict with the same keys and values passed through :func:`mask_env`.
    """
    return {name: mask_env(name, value) for name, value in m.items()}


def is_secret_name(name: str) -> bool:
    """Whether an env var / config key named ``name`` holds a secret (see module docstring).

    Args:
        name: The variable name, in any of SNAKE_CASE, kebab-case, dotted or camelCase.

    Returns:
        True when values under this name are masked wholesale by :func:`mask_env`.
    """
    return _env_kind(name) is not None
