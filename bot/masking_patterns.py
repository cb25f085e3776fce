"""Masking patterns: the compiled rule table and replacement callbacks behind :mod:`bot.masking`.

``_Rule`` (one pattern, its trigger words and replacement), the callbacks that decide what
part of a match is a secret, the ordered ``_RULES`` table, and the email and card-number
passes. :func:`bot.masking.mask` runs them; see :mod:`bot.masking` for the decisions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bot.masking_names import _env_kind, _is_sentinel, _key_kind

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
