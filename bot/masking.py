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

import re
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import accumulate

__all__ = ["mask", "mask_env", "mask_mapping", "is_secret_name"]

_Replacement = str | Callable[[re.Match[str]], str]

# A value that is already masked (by us or by a previous pass) is never touched again.
_NOT_MASKED = r"(?!\[REDACTED:)"


def _marker(kind: str) -> str:
    return f"[REDACTED:{kind}]"


@dataclass(frozen=True)
class _Rule:
    """One masking pattern and where to run it.

    A rule runs only when one of its ``triggers`` occurs in the text (a C-speed substring
    test). Rules whose pattern never spans a line run only on the lines holding a trigger,
    so the cost of a rule follows the number of suspicious lines, not the size of the text.
    """

    name: str
    triggers: tuple[str, ...]  # lower-case substrings of the lower-cased text (see ``exact``)
    regex: re.Pattern[str]
    replacement: _Replacement
    exact: bool = False  # triggers are case-sensitive substrings of the original text
    lines: bool = True  # the pattern stays within one line


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


def is_secret_name(name: str) -> bool:
    """Whether an env var / config key named ``name`` holds a secret (see module docstring).

    Args:
        name: The variable name, in any of SNAKE_CASE, kebab-case, dotted or camelCase.

    Returns:
        True when values under this name are masked wholesale by :func:`mask_env`.
    """
    return _env_kind(name) is not None


# Values that carry no secret: empty, null-ish, booleans, asterisks, unexpanded references.
_SENTINEL = re.compile(
    r"""(?ix)
    (?: null | nil | <nil> | none | undefined | true | false | yes | no | \*+ | <redacted>
      | redacted | \$\{[^}]*\} | \$\([^)]*\) | \{\{[^}]*\}\} | \$[A-Z_][A-Z0-9_]* )?
    """
)


def _is_sentinel(value: str) -> bool:
    return _SENTINEL.fullmatch(value.strip()) is not None or "[REDACTED:" in value


# ---------------------------------------------------------------------------------------------
# Replacement callbacks
# ---------------------------------------------------------------------------------------------


# key=value / key: value / "key": "value" / key => value, in logs, query strings, JSON, Python
# reprs, YAML and Go %+v structs. Found from the secret word (so the regex engine skips ahead
# on a literal-ish prefix), then the key is walked back to its start and judged word by word.
_KV_WORD = re.compile(
    r"(?i)(?P<word>pass(?:word|wd|phrase)?|pwd|secret|token|key|credentials?|creds"
    r"|sig(?:nature)?|sess(?:ion)?id)(?P<q>\\?[\"']?)[ \t]*(?:=>|[:=])[ \t]*"
)
_KV_VALUE = re.compile(
    r"""\\"(?P<edq>(?:[^"\\\r\n]|\\[^"\r\n])*)\\"  # value in an escaped JSON string: \"x\"
    |"(?P<dq>(?:[^"\\\r\n]|\\.)*)"                # "double quoted"
    |'(?P<sq>[^'\r\n]*)'                             # 'single quoted'
    |(?P<ph>\$\{[^}\r\n]*\}|\$\([^)\r\n]*\)|\{\{[^}\r\n]*\}\})   # ${VAR}, $(VAR), {{ var }}
    |(?P<bare>(?!\[REDACTED:)[^\s&,;"'<>)}\]\\]+)    # bare, up to a delimiter
    """,
    re.VERBOSE,
)
_NEXT_PAIR = re.compile(r"[A-Za-z_][\w.-]*=[^=]")
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _mask_key_values(text: str) -> str:
    """Mask the value of every ``key<sep>value`` whose key names a secret."""
    out: list[str] = []
    last = 0
    pos = 0
    while True:
        m = _KV_WORD.search(text, pos)
        if m is None:
            break
        pos = m.end()
        start = m.start()
        while start > 0 and text[start - 1] in _KEY_CHARS:
            start -= 1
        quote = m.group("q")
        if quote and text[max(0, start - len(quote)) : start] != quote:
            continue  # password": without its opening quote: not a key
        kind = _key_kind(text[start : m.end("word")])
        value = _KV_VALUE.match(text, m.end())
        if kind is None or value is None:
            continue
        group = next(g for g in ("edq", "dq", "sq", "ph", "bare") if value.group(g) is not None)
        if (
            group == "ph"
            or _is_sentinel(value.group(group))
            # "password= next=1": an empty value followed by the next pair, not a value
            or (group == "bare" and m.group(0)[-1] in " \t" and _NEXT_PAIR.match(value["bare"]))
        ):
            pos = value.end()
            continue
        out.append(text[last : value.start(group)])
        out.append(_marker(kind))
        last = pos = value.end(group)
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _env_pair_replace(m: re.Match[str]) -> str:
    """A ``{"name": "X", "value": "…"}`` env entry (pod specs inside annotations/JSON)."""
    kind = _env_kind(m.group("name"))
    value = m.group("value")
    if kind is None or _is_sentinel(value):
        return m.group(0)
    return m.group("pre") + _marker(kind) + m.group("post")


def _auth_header_replace(m: re.Match[str]) -> str:
    """``Authorization: <scheme> <credentials>`` keeps the scheme, masks the credentials."""
    scheme = m.group("scheme")
    cred = m.group("cred")
    if _is_sentinel(cred):
        return m.group(0)
    low = (scheme or "").lower()
    kind = "basic-auth" if low == "basic" else "bearer" if low == "bearer" else "credential"
    head = m.group("pre") + (scheme + m.group("ws") if scheme else "")
    return head + _marker(kind)


_COOKIE_PAIR = re.compile(r"(?<![^=;\s])([^=;\s]+)(=)(?!\[REDACTED:)([^;\s]*)")


def _cookie_replace(m: re.Match[str]) -> str:
    """Cookie values are session credentials; names and Set-Cookie attributes are kept."""
    body = m.group("body")
    if m.group("header").lower() == "set-cookie":
        # Only the first pair is the cookie; Path=/; Max-Age=… are attributes.
        first = _COOKIE_PAIR.match(body.lstrip())
        if first is None:
            return m.group(0)
        offset = len(body) - len(body.lstrip())
        body = body[: offset + first.start(3)] + _marker("cookie") + body[offset + first.end(3) :]
    else:
        body = _COOKIE_PAIR.sub(lambda p: p.group(1) + p.group(2) + _marker("cookie"), body)
    return m.group("pre") + body


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# Words right before a long number that say it is a counter or an id, not a card.
_NOT_CARD_CONTEXT = re.compile(
    r"(?i)(?<![a-z])(?:trace|span|request|req|offset|bytes|size|len|length|count|seq|id|ts"
    r"|time|nanos|epoch)[\w.-]*[\"']?\s*[:=]?\s*[\"']?$"
)


def _card_replace(m: re.Match[str]) -> str:
    raw = m.group(0)
    digits = raw.replace(" ", "").replace("-", "")
    first = digits[0]
    if not (first in "3456" or (first == "2" and 2221 <= int(digits[:4]) <= 2720)):
        return raw
    if not _luhn_ok(digits):
        return raw
    before = m.string[max(0, m.start() - 24) : m.start()]
    if _NOT_CARD_CONTEXT.search(before):
        return raw
    return _marker("card")


# ---------------------------------------------------------------------------------------------
# The rules, in order: the most specific formats first (their kind is the most informative),
# then structural patterns (URLs, headers, key-value pairs), then emails and card numbers.
# ---------------------------------------------------------------------------------------------

# Characters that may not touch a token on its left: keeps "disk-" + "sk-…" and the like out.
_TOK_L = r"(?<![A-Za-z0-9_-])"
_TOK_R = r"(?![A-Za-z0-9_-])"

_PEM_LABEL = r"[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?"

_RULES: tuple[_Rule, ...] = (
    # PEM private keys (openssl, ssh-keygen, GCP service-account JSON with literal "\n").
    _Rule(
        "pem",
        ("private key",),
        re.compile(
            rf"-----BEGIN (?P<label>{_PEM_LABEL})-----{_NOT_MASKED}.*?-----END (?P=label)-----",
            re.DOTALL,
        ),
        lambda m: f"-----BEGIN {m['label']}-----{_marker('private-key')}-----END {m['label']}-----",
        lines=False,
    ),
    # ...and a PEM block cut off by a log line limit (no END line survived).
    _Rule(
        "pem-truncated",
        ("private key",),
        re.compile(
            rf"-----BEGIN (?P<label>{_PEM_LABEL})-----{_NOT_MASKED}(?:[A-Za-z0-9+/=\s]|\\[nr])+"
        ),
        lambda m: f"-----BEGIN {m['label']}-----{_marker('private-key')}",
        lines=False,
    ),
    # JSON Web Tokens: base64url header (always '{"' -> eyJ), payload, optional signature.
    _Rule(
        "jwt",
        ("eyj",),
        re.compile(rf"{_TOK_L}eyJ[A-Za-z0-9_-]{{5,}}\.[A-Za-z0-9_-]{{5,}}\.[A-Za-z0-9_-]*"),
        _marker("jwt"),
    ),
    # AWS access key ids: long-term (AKIA), STS temporary (ASIA), and the rarer ABIA/ACCA.
    _Rule(
        "aws-key",
        ("AKIA", "ASIA", "ABIA", "ACCA"),
        re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        _marker("aws-key"),
        exact=True,
    ),
    # AWS secret access keys are 40 base64 chars with no prefix: recognised by their name
    # (~/.aws/credentials, env dumps, STS/IMDS JSON "SecretAccessKey").
    _Rule(
        "aws-secret",
        ("secret_access_key", "secretaccesskey", "secret-access-key"),
        re.compile(
            r"(?i)(?P<pre>secret[_-]?access[_-]?key[\"']?\s*[:=]\s*[\"']?)"
            rf"{_NOT_MASKED}[A-Za-z0-9/+=]{{40}}(?![A-Za-z0-9/+=])"
        ),
        lambda m: m["pre"] + _marker("aws-secret"),
    ),
    # Google API keys (Maps, Firebase, Gemini...).
    _Rule(
        "gcp-key",
        ("AIza",),
        re.compile(rf"{_TOK_L}AIza[0-9A-Za-z_-]{{35}}{_TOK_R}"),
        _marker("gcp-key"),
        exact=True,
    ),
    # Google OAuth2 access tokens (gcloud auth print-access-token, the metadata server).
    _Rule(
        "google-oauth",
        ("ya29.",),
        re.compile(rf"{_TOK_L}ya29\.[0-9A-Za-z_-]{{20,}}"),
        _marker("google-oauth"),
        exact=True,
    ),
    # Azure storage / Service Bus / Event Hubs connection strings and SAS tokens.
    _Rule(
        "azure-key",
        ("accountkey=", "sharedaccesskey=", "sharedaccesssignature="),
        re.compile(
            r"(?i)(?P<pre>\b(?:AccountKey|SharedAccessKey|SharedAccessSignature)=)"
            rf"{_NOT_MASKED}[^;\s\"']+"
        ),
        lambda m: m["pre"] + _marker("azure-key"),
    ),
    # GitHub tokens: classic PAT, OAuth, user-to-server, server-to-server, refresh, fine-grained.
    _Rule(
        "github-token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        re.compile(rf"{_TOK_L}(?:gh[pousr]_[A-Za-z0-9]{{30,}}|github_pat_[A-Za-z0-9_]{{30,}})"),
        _marker("github-token"),
        exact=True,
    ),
    # GitLab personal / deploy / runner / pipeline-trigger / service-account / CI-build tokens.
    _Rule(
        "gitlab-token",
        ("glpat-", "gldt-", "glrt-", "glptt-", "glsoat-", "glcbt-"),
        re.compile(rf"{_TOK_L}gl(?:pat|dt|rt|ptt|soat|cbt)-[A-Za-z0-9_-]{{20,}}"),
        _marker("gitlab-token"),
        exact=True,
    ),
    # Slack incoming-webhook / workflow URLs: the path *is* the credential.
    _Rule(
        "slack-webhook",
        ("hooks.slack.com/",),
        re.compile(
            r"(?P<pre>hooks\.slack\.com/(?:services|workflows|triggers)/)"
            rf"{_NOT_MASKED}[A-Za-z0-9/_-]+"
        ),
        lambda m: m["pre"] + _marker("slack-webhook"),
    ),
    # Slack bot/user/app/config tokens: xoxb-, xoxp-, xoxa-, xoxs-, xoxe.xoxp-, xapp-.
    _Rule(
        "slack-token",
        ("xox", "xapp-"),
        re.compile(
            rf"{_TOK_L}(?:xox[a-z](?:\.xox[a-z])?-[A-Za-z0-9-]{{10,}}|xapp-\d-[A-Za-z0-9-]{{10,}})"
        ),
        _marker("slack-token"),
        exact=True,
    ),
    # Stripe secret / restricted keys and webhook signing secrets.
    _Rule(
        "stripe-key",
        ("sk_live_", "rk_live_", "sk_test_", "rk_test_", "whsec_"),
        re.compile(
            rf"{_TOK_L}(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{{10,}}|whsec_[A-Za-z0-9+/=]{{20,}})"
        ),
        _marker("stripe-key"),
        exact=True,
    ),
    # SendGrid API keys: SG.<22>.<43>.
    _Rule(
        "sendgrid-key",
        ("SG.",),
        re.compile(rf"{_TOK_L}SG\.[A-Za-z0-9_-]{{16,32}}\.[A-Za-z0-9_-]{{16,64}}{_TOK_R}"),
        _marker("sendgrid-key"),
        exact=True,
    ),
    # Twilio account / API-key SIDs (AC…, SK… + 32 lower-case hex). Twilio auth tokens are
    # bare 32 hex and are caught only by their name (TWILIO_AUTH_TOKEN=, auth_token=): a bare
    # 32-hex string is far more often a trace id. The literal comes first (fast search); the
    # look-behind after it checks the left boundary.
    _Rule(
        "twilio-account",
        (),
        re.compile(r"AC(?<![A-Za-z0-9]AC)[0-9a-f]{32}(?![A-Za-z0-9])"),
        _marker("twilio-key"),
        lines=False,
    ),
    _Rule(
        "twilio-api-key",
        (),
        re.compile(r"SK(?<![A-Za-z0-9]SK)[0-9a-f]{32}(?![A-Za-z0-9])"),
        _marker("twilio-key"),
        lines=False,
    ),
    _Rule(
        "anthropic-key",
        ("sk-ant-",),
        re.compile(rf"{_TOK_L}sk-ant-[A-Za-z0-9_-]{{20,}}"),
        _marker("anthropic-key"),
        exact=True,
    ),
    # OpenAI keys (sk-…, sk-proj-…, sk-svcacct-…). Mixed case and a digit are required so a
    # lower-case DNS name such as "sk-worker-7d9f8b6c4-x2x9q" is not taken for a key.
    _Rule(
        "openai-key",
        ("sk-",),
        re.compile(
            rf"{_TOK_L}sk-(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{{20,}}"
        ),
        _marker("openai-key"),
        exact=True,
    ),
    # npm, Hugging Face, PyPI, DigitalOcean and Shopify tokens (all prefix-typed).
    _Rule(
        "vendor-token",
        ("npm_", "hf_", "pypi-", "dop_v1_", "shpat_", "shpss_", "shpca_", "shppa_"),
        re.compile(
            rf"{_TOK_L}(?:npm_[A-Za-z0-9]{{36}}|hf_[A-Za-z0-9]{{30,}}|pypi-AgE[A-Za-z0-9_-]{{20,}}"
            rf"|dop_v1_[a-f0-9]{{64}}|shp(?:at|ss|ca|pa)_[a-fA-F0-9]{{32}}){_TOK_R}"
        ),
        _marker("token"),
        exact=True,
    ),
    # Passwords in URLs / DSNs: scheme://user:password@host (postgres, mysql, redis, amqp,
    # mongodb+srv, https basic auth...). Greedy up to the *last* '@' of the authority, so a
    # password containing '@' is masked whole. Starts at "://" (a literal: fast search).
    _Rule(
        "url-password",
        ("://",),
        re.compile(
            r"(?P<pre>://[^\s:/?#@\[\]\"'<>]*:)"
            rf"{_NOT_MASKED}[^\s/?#\"'<>]{{1,256}}(?=@[\w\[.-])"
        ),
        lambda m: m["pre"] + _marker("password"),
    ),
    # Go MySQL driver DSNs without a scheme: user:password@tcp(host:3306)/db.
    _Rule(
        "mysql-dsn",
        ("@tcp(", "@unix(", "@udp("),
        re.compile(
            rf"(?P<pre>(?<![\w.\-/\[])[\w.-]+:){_NOT_MASKED}[^\s:@/\"']+(?=@(?:tcp|unix|udp)\()"
        ),
        lambda m: m["pre"] + _marker("password"),
    ),
    # Authorization / Proxy-Authorization headers: raw, JSON, Go http.Header maps.
    _Rule(
        "auth-header",
        ("authorization",),
        re.compile(
            r"(?i)(?P<pre>\b(?:proxy-)?authorization[\"']?[ \t]*[:=][ \t]*"
            r"(?:\[(?!REDACTED:)|[\"'])?[ \t]*)"
            r"(?:(?P<scheme>bearer|basic|token|bot|digest|negotiate|ntlm|apikey|sso-key"
            r"|aws4-hmac-sha256|hmac-sha256)(?P<ws>[ \t]+))?"
            rf"{_NOT_MASKED}(?!(?:bearer|basic|token|digest|negotiate)(?:[\s\"'\],]|$))"
            r"(?P<cred>[^\s\"'\[\],;]+)"
        ),
        _auth_header_replace,
    ),
    # A bearer token outside a header ("using Bearer 8f3…"). It must be long and contain a
    # digit, so prose such as "missing bearer authentication" is left alone.
    _Rule(
        "bearer",
        ("bearer",),
        re.compile(
            r"(?i)(?P<pre>(?<![\w-])bearer[ \t]+)"
            rf"{_NOT_MASKED}(?=[A-Za-z0-9._~+/-]*[0-9])[A-Za-z0-9._~+/-]{{16,}}=*"
        ),
        lambda m: m["pre"] + _marker("bearer"),
    ),
    # Cookie / Set-Cookie headers: every cookie value is a session credential.
    _Rule(
        "cookie",
        ("cookie",),
        re.compile(
            r"(?i)(?P<pre>\b(?P<header>set-cookie|cookie)[\"']?[ \t]*[:][ \t]*[\[\"']?)"
            r"(?P<body>[^\r\n\"'\]]*)"
        ),
        _cookie_replace,
    ),
    # Docker config.json / imagePullSecret: "auth": "<base64 user:password>".
    _Rule(
        "docker-auth",
        ('"auth"',),
        re.compile(rf"(?P<pre>\"auth\"\s*:\s*\"){_NOT_MASKED}[A-Za-z0-9+/]{{8,}}={{0,2}}(?=\")"),
        lambda m: m["pre"] + _marker("basic-auth"),
    ),
    # Env entries in JSON pod specs (last-applied-configuration, kubectl -o json, events).
    _Rule(
        "env-json",
        ('"value"',),
        re.compile(
            r"(?P<pre>\"name\"\s*:\s*\"(?P<name>[\w.-]+)\"\s*,\s*\"value\"\s*:\s*\")"
            r"(?P<value>(?:[^\"\\]|\\.)*)(?P<post>\")"
        ),
        _env_pair_replace,
    ),
    # Env entries in YAML pod specs: "- name: DB_PASSWORD" and "value: ..." on the next line.
    _Rule(
        "env-yaml",
        ("value:",),
        re.compile(
            r"(?m)(?P<pre>name:(?<![\w.-]name:)[ \t]*[\"']?(?P<name>[\w.-]+)[\"']?[ \t]*\r?\n"
            r"[ \t]*value:[ \t]*[\"']?)(?P<value>[^\r\n\"']*)(?P<post>[\"']?[ \t]*)$"
        ),
        _env_pair_replace,
        lines=False,
    ),
)

# Emails: matched from the '@' (fast literal search), local part found by walking back.
_EMAIL_DOMAIN = re.compile(r"@(?P<domain>(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24})(?![\w-]|\.\w)")
_EMAIL_LOCAL_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-"
)

# Card numbers: 15-16 contiguous digits, or the printed groupings (4-4-4-4[-3], 4-6-5, 4-6-4).
_CARD = re.compile(
    r"(?<![\w.-])(?:\d{15,16}|\d{4}(?P<s1>[ -])\d{4}(?P=s1)\d{4}(?P=s1)\d{4}(?:(?P=s1)\d{3})?"
    r"|\d{4}(?P<s2>[ -])\d{6}(?P=s2)\d{4,5})(?![\w-]|\.\d)"
)
# Every digit becomes "0" (bytes.translate: a C table lookup, fast also for non-ASCII text,
# unlike str.translate): a card can only be on a line where one of these occurs.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_CARD_TRIGGERS = (b"0" * 15, b"0000 0000", b"0000-0000")


def _mask_emails(text: str) -> str:
    out: list[str] = []
    last = 0
    for m in _EMAIL_DOMAIN.finditer(text):
        at = m.start()
        start = at
        while start > last and at - start < 64 and text[start - 1] in _EMAIL_LOCAL_CHARS:
            start -= 1
        while start < at and not text[start].isalnum():  # a local part starts alphanumeric
            start += 1
        if start == at or text[start:at] == "git":
            continue
        out.append(text[last:start])
        out.append(_marker("email"))
        last = at
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _mask_cards(text: str) -> str:
    zeros = text.encode("utf-8", "surrogatepass").translate(_DIGITS_TO_ZERO)
    hits = sorted(i for trigger in _CARD_TRIGGERS for i in _find_all(zeros, trigger))
    if not hits:
        return text
    # byte offsets -> line numbers (the UTF-8 and str line numbering agree)
    wanted: set[int] = set()
    line, last = 0, 0
    for i in hits:
        line += zeros.count(b"\n", last, i)
        last = i
        wanted.add(line)
    lines = text.split("\n")
    for n in wanted:
        lines[n] = _CARD.sub(_card_replace, lines[n])
    return "\n".join(lines)


def _find_all(hay: bytes, needle: bytes) -> list[int]:
    """Offsets of ``needle`` in ``hay``, at most one per line."""
    out = []
    i = hay.find(needle)
    while i != -1:
        out.append(i)
        end = hay.find(b"\n", i)
        if end == -1:
            break
        i = hay.find(needle, end)
    return out


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
