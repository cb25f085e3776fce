"""Log kinds, infrastructure side: config, environment, files, connections, DNS and TLS.

The kind tables for ``missing_env``, ``missing_file``, ``config_parse``,
``connection_refused``, ``timeout``, ``dns``, ``tls_expired`` and ``tls_invalid``; see
:mod:`bot.rca.logpatterns` for what each kind's details mean and how the tables are used.
"""

from __future__ import annotations

from bot.rca.logkinds import (
    _Q,
    _QV,
    _env_name_ok,
    _envalid_block,
    _find_addr,
    _find_host,
    _find_path,
    _find_url_host,
    _Kind,
    _libpq_host,
    _pydantic_field,
    _r,
)

# ---------------------------------------------------------------------------------------------
# The pattern library
# ---------------------------------------------------------------------------------------------

_ENV_WORDS = r"\b(?:environment variable|env(?:ironment)?[ _-]?var(?:iable)?|env)"
_IS_MISSING = (
    r"(?:is |was |has )?(?:not set|not defined|undefined|unset|missing|empty|required"
    r"|must be set|not found|not provided|not present)"
)
_UPPER_VAR = r"(?-i:(?P<variable>\b[A-Z][A-Z0-9_]{2,}))"

_MISSING_ENV = _Kind(
    "missing_env",
    (
        # kelseyhightower/envconfig: "required key DATABASE_URL missing value";
        # caarlos0/env: 'env: required environment variable "DATABASE_URL" is not set'
        _r(
            rf"required (?:key|{_ENV_WORDS})s? {_Q}?(?P<variable>[A-Za-z_][\w.]*){_Q}?:? "
            rf"{_IS_MISSING}",
            "required ",
        ),
        # environs / Go / shell: 'environment variable "X" not set', "env var X is required"
        _r(
            rf"{_ENV_WORDS}s?:?\s+{_Q}?\$?\{{?(?P<variable>[A-Za-z_]\w*)\}}?{_Q}?\s+{_IS_MISSING}",
            "env",
        ),
        # "missing required env var X", "Missing required environment variable: X"
        _r(
            rf"missing (?:required |mandatory )?{_ENV_WORDS}s?(?: named)?:?\s+{_Q}?\$?"
            r"(?P<variable>[A-Za-z_][\w.]*)",
            "missing ",
        ),
        # "DATABASE_URL environment variable is not set" (hand-written checks, any language)
        _r(rf"{_UPPER_VAR}{_Q}? {_ENV_WORDS}\s+{_IS_MISSING}", "env"),
        # Django ImproperlyConfigured: "Set the SECRET_KEY environment variable"
        _r(rf"Set the {_UPPER_VAR} environment variable", "set the "),
        # Python os.environ["X"]: "KeyError: 'DATABASE_URL'" (upper case: env var names)
        _r(r"KeyError: \\?['\"](?P<variable>[A-Z][A-Z0-9_]{2,})\\?['\"]", "keyerror: ", ci=False),
        # python-decouple: "UndefinedValueError: X not found. Declare it as envvar or ..."
        _r(r"(?<!\w)(?P<variable>\w+) not found\. Declare it as envvar", "declare it as envvar"),
        # Spring: "Could not resolve placeholder 'DB_URL' in value "${DB_URL}"";
        # Micronaut: "Could not resolve placeholder ${DB_URL}"
        _r(
            rf"Could not resolve placeholder (?:{_Q}(?P<variable>[^'\"\\]+){_Q}"
            r"|\$\{(?P<variable_2>[^}:]+))",
            "could not resolve placeholder",
        ),
        # Quarkus / SmallRye: "The config property quarkus.datasource.password is required
        # but it could not be found in any config source"
        _r(
            r"config property (?P<variable>[\w.\-\[\]\"]+) is required but it could not be found",
            "is required but it could not be found",
        ),
        # env-var (Node): 'env-var: "DATABASE_URL" is a required variable, but it was not set'
        _r(rf"{_Q}(?P<variable>\w+){_Q} is a required variable", "is a required variable"),
        # kubelet (events): "couldn't find key DB_URL in ConfigMap shop/cart-config";
        # 'configmap "cart-config" not found', 'secret "db-creds" not found'
        _r(
            r"couldn't find key (?P<variable>\S+) in (?P<source>(?:ConfigMap|Secret) \S+)",
            "couldn't find key",
        ),
        _r(rf"(?P<source>(?:configmap|secret) {_Q}[\w.-]+{_Q}) not found", "not found"),
        # bash set -u: "DATABASE_URL: unbound variable"; dash: "X: parameter not set"
        _r(
            r"(?<!\w)(?P<variable>[A-Za-z_]\w*): "
            r"(?:unbound variable|parameter (?:null or )?not set)",
            "unbound variable|parameter not set|parameter null",
        ),
        # Rust std::env::var: "environment variable not found" / VarError::NotPresent
        _r(
            r"environment variable not found|\bNotPresent\b",
            "environment variable not found|notpresent",
        ),
        # pydantic-settings: "<field>" then "  Field required [type=missing, ...]"
        _r(
            r"Field required \[type=missing",
            "field required [type=missing",
            context=_pydantic_field,
        ),
        # envalid: "Missing environment variables:" then "    API_KEY: undefined"
        _r(
            r"^\s+(?P<variable>[A-Z][A-Z0-9_]*): (?:undefined|\(required\)|required)",
            ": undefined|: (required)|: required",
            ci=False,
            context=_envalid_block,
        ),
        # Generic hand-written checks: "DATABASE_URL is not set", "JWT_SECRET must be set"
        # (Rust .expect("X must be set")), "PORT is required", "API_KEY is not defined"
        _r(
            rf"{_UPPER_VAR}{_Q}?\s+(?:is\s+)?(?:not set|not defined|undefined|unset|required"
            r"|missing|must be set)\b",
            "not set|not defined|undefined|unset|required|missing|must be set",
            context=_env_name_ok,
        ),
    ),
    ("variable", "source"),
)

_MISSING_FILE = _Kind(
    "missing_file",
    (
        # Node: "ENOENT: no such file or directory, open '/app/config/prod.json'"
        _r(rf"ENOENT: no such file or directory, \w+ {_Q}(?P<path>{_QV}+)", "enoent: no such file"),
        # Python: "FileNotFoundError: [Errno 2] No such file or directory: '/etc/app.yaml'"
        _r(rf"No such file or directory: {_Q}(?P<path>{_QV}+)", "no such file or directory: "),
        # Python: "python: can't open file '/app/main.py': [Errno 2] No such file or directory"
        _r(rf"can't open file {_Q}(?P<path>{_QV}+)", "can't open file"),
        # Go: "open /etc/app/config.yaml: no such file or directory", "exec /app/server: ..."
        _r(
            r"\b(?:open|stat|lstat|readlink|exec|mkdir|chdir|remove|rename|read|mount|chmod"
            r"|chown|chroot)\s+\\?\"?(?P<path>[^\s:\"\\]+)\\?\"?:\s*no such file or directory",
            "no such file or directory",
        ),
        # nginx: 'open() "/etc/nginx/conf.d/x.conf" failed (2: No such file or directory)'
        _r(
            rf"open\(\) {_Q}(?P<path>{_QV}+){_Q} failed \(2: No such file or directory",
            "failed (2: no such file",
        ),
        # Spring Boot: "class path resource [application.yml] cannot be opened because it
        # does not exist"; "Config data resource 'file [/config/x.yaml]' via location ..."
        _r(
            r"class path resource \[(?P<path>[^\]]+)\] cannot be opened because it does not exist",
            "cannot be opened because it does not exist",
        ),
        _r(
            r"Config data (?:resource|location) '(?:file \[|class path resource \[)?"
            r"(?P<path>[^\]']+)\]?'.*?(?:does not exist|cannot be found)",
            "config data ",
        ),
        # Java: "java.io.FileNotFoundException: /config/app.properties (No such file or
        # directory)", "java.nio.file.NoSuchFileException: /config/x"
        _r(
            r"(?:FileNotFoundException|NoSuchFileException): (?P<path>[^\s(]+)",
            "filenotfoundexception: |nosuchfileexception: ",
            unless=r"permission denied",
        ),
        # runc / Go os/exec: 'exec: "python": executable file not found in $PATH'
        _r(
            rf"exec: {_Q}(?P<path>{_QV}+){_Q}: executable file not found",
            "executable file not found",
        ),
        # viper: 'Config File "config" Not Found in "[/etc/app]"'
        _r(rf"Config File {_Q}(?P<path>{_QV}+){_Q} Not Found in", "not found in"),
        # Postgres / generic quoted: 'could not open file "x": No such file or directory'
        _r(
            rf"{_Q}(?P<path>{_QV}+){_Q}:? (?:\(\d+: )?No such file or directory",
            "no such file or directory",
        ),
        # shell: "/docker-entrypoint.sh: line 3: /config/run.sh: No such file or directory";
        # dash: "/bin/sh: 1: /app/start.sh: not found"
        _r(
            r"(?<![^\s:'\"])(?P<path>/[^\s:'\"]+): (?:No such file or directory|not found)",
            "no such file or directory|: not found",
        ),
        # Rust "No such file or directory (os error 2)"; anything else: path from the line
        _r(
            r"No such file or directory|\bENOENT\b|FileNotFoundError|NoSuchFileException",
            "no such file or directory|enoent|filenotfounderror|nosuchfileexception",
        ),
    ),
    ("path",),
    fallback=_find_path,
)

_CONFIG_PARSE = _Kind(
    "config_parse",
    (
        # Spring Boot: "Failed to bind properties under 'spring.kafka.listener.poll-timeout'"
        _r(r"Failed to bind properties under '(?P<what>[^']+)'", "failed to bind properties"),
        # Spring: "Failed to convert property value of type 'x' ... for property 'y'"
        _r(
            r"Failed to convert property value of type .*? for property '(?P<what>[^']+)'",
            "failed to convert property value",
        ),
        # Go time.ParseDuration: 'time: invalid duration "5 seconds"'
        _r(r"(?P<what>invalid duration \\?\"[^\"\\]*\\?\")", "invalid duration"),
        # Spring / java.time: "'5 seconds' is not a valid duration"
        _r(r"(?P<what>'[^']*' is not a valid duration)", "is not a valid duration"),
        # Go flag: "flag provided but not defined: -foo"; pflag/cobra: "unknown flag: --foo",
        # "unknown shorthand flag: 'x' in -x", 'invalid argument "abc" for "--port" flag',
        # 'required flag(s) "config" not set', "bad flag syntax: ---x"
        _r(r"(?P<what>flag provided but not defined: \S+)", "flag provided but not defined"),
        _r(
            r"(?P<what>unknown (?:shorthand )?flag:? \S+(?: in \S+)?)",
            "unknown flag|unknown shorthand flag",
        ),
        _r(
            r"(?P<what>invalid argument \\?\"[^\"\\]*\\?\" for \\?\"[^\"\\]+\\?\" flag)",
            "invalid argument",
        ),
        _r(r"(?P<what>required flag\(s\) [^\n]*? not set)", "required flag(s)"),
        _r(r"(?P<what>bad flag syntax: \S+)", "bad flag syntax"),
        # argparse: "error: unrecognized arguments: --foo", "error: argument --port: invalid
        # int value: 'abc'"; clap: "error: unexpected argument '--foo' found", "error:
        # Found argument '--x' which wasn't expected"
        _r(r"(?P<what>unrecognized arguments?: .+)", "unrecognized argument"),
        _r(r"(?P<what>argument \S+: invalid \w+ value: '[^']*')", "argument "),
        _r(r"(?P<what>unexpected argument '[^']+' found)", "unexpected argument"),
        _r(r"(?P<what>Found argument '[^']+' which wasn't expected)", "found argument"),
        # Go flag 'invalid value "abc" for flag -port: parse error', clap "invalid value 'x'
        # for '--port <PORT>'", hand-written "invalid value for LOG_LEVEL"
        _r(
            r"(?P<what>invalid value (?:\\?[\"'`][^\"'`\\]*\\?[\"'`] |\S+ )?for (?:flag |key "
            r"|field |option |setting |parameter |argument |property )?\\?[\"'`]?[\w.<> -]+?"
            r"\\?[\"'`]?)(?=[:;,.)]|\s|$)",
            "invalid value",
        ),
        # JVM: "Unrecognized VM option 'UseFoo'", "Invalid maximum heap size: -Xmx4gb"
        _r(
            r"(?P<what>Unrecognized VM option '[^']+'|Invalid (?:initial|maximum) heap size: \S+)",
            "unrecognized vm option|heap size",
        ),
        # YAML: PyYAML "yaml.scanner.ScannerError: mapping values are not allowed here",
        # SnakeYAML "org.yaml.snakeyaml.scanner.ScannerException: ..."; Go yaml.v2/v3
        # "yaml: line 12: did not find expected key", "yaml: unmarshal errors:"
        _r(
            r"(?P<what>(?:org\.yaml\.snakeyaml\.|yaml\.)[\w.]*(?:Error|Exception): [^\"\\\n]+)",
            "yaml.",
        ),
        _r(r"(?P<what>\byaml: [^\"\\\n]+)", "yaml: "),
        # JSON: Go "json: cannot unmarshal string into Go struct field Config.port of type
        # int", 'json: unknown field "x"', "invalid character '}' looking for beginning of
        # object key string", "unexpected end of JSON input"
        _r(
            r"(?P<what>\b(?:json|toml): (?:cannot unmarshal|unknown field)[^\"\\\n]*"
            r"(?:\\?\"[^\"\\\n]*\\?\")?[^\"\\\n]*)",
            "json: |toml: ",
        ),
        _r(
            r"(?P<what>invalid character '.{1,4}' (?:looking for beginning of|after|in) [\w ]+)",
            "invalid character '",
        ),
        _r(r"(?P<what>unexpected end of JSON input)", "unexpected end of json input"),
        # Python json: "json.decoder.JSONDecodeError: Expecting value: line 1 column 1"
        _r(r"(?P<what>JSONDecodeError: [^\"\\\n]+)", "jsondecodeerror"),
        # Node: "SyntaxError: Unexpected token } in JSON at position 42", "... is not valid
        # JSON", "Expected property name or '}' in JSON at position 2"
        _r(
            r"SyntaxError: (?P<what>[^\n]*?(?:in JSON at position \d+|is not valid JSON"
            r"|Unexpected end of JSON input))",
            "syntaxerror: ",
        ),
        # Jackson: "com.fasterxml.jackson.core.JsonParseException: Unexpected character"
        _r(
            r"(?P<what>Json(?:Parse|Mapping)Exception: [^\"\\\n]+)",
            "jsonparseexception|jsonmappingexception",
        ),
        # TOML: BurntSushi "toml: line 3 (last key ...): ...", Python tomllib
        # "TOMLDecodeError: Invalid value (at line 3, column 8)", Rust "TOML parse error at
        # line 1, column 10"
        _r(
            r"(?P<what>\btoml: line \d+[^\"\\\n]*|TOMLDecodeError: [^\"\\\n]+"
            r"|TOML parse error at line \d+, column \d+)",
            "toml: line|tomldecodeerror|toml parse error",
        ),
        # Go strconv while reading config: 'strconv.Atoi: parsing "abc": invalid syntax'
        _r(
            r"(?P<what>strconv\.\w+: parsing \\?\"[^\"\\]*\\?\": "
            r"(?:invalid syntax|value out of range))",
            "strconv.",
        ),
        # pydantic v2: "Input should be a valid integer"; v1: "value is not a valid integer"
        _r(
            r"(?P<what>Input should be a valid \w+|value is not a valid \w+)",
            "input should be a valid|is not a valid",
        ),
        # nginx: '[emerg] 1#1: unknown directive "foo" in /etc/nginx/conf.d/default.conf:3'
        _r(
            r"\[emerg\] (?:\d+#\d+: )?(?P<what>(?:unknown directive|invalid|unexpected"
            r"|\"[^\"]+\" directive is (?:not allowed|duplicate))[^\n]*)",
            "[emerg]",
        ),
        # Envoy: "error initializing configuration '/etc/envoy/envoy.yaml': ..."
        _r(
            r"(?P<what>error initializing configuration '[^']+')",
            "error initializing configuration",
        ),
        # Generic Go/Java/Python: "failed to parse config: ...", "error loading config file
        # /etc/app.yaml: ...", "could not load configuration: ..."
        _r(
            r"(?P<what>(?:failed to|cannot|could not|unable to|error) (?:parse|parsing|load"
            r"|loading|read|reading|decode|decoding|unmarshal|unmarshaling) (?:the )?"
            r"config(?:uration)?(?: file)?[^\"\\\n]{0,120})",
            "config",
            unless=r"no such file|permission denied|not found",
        ),
    ),
    ("what",),
)

_CONNECTION_REFUSED = _Kind(
    "connection_refused",
    (
        # Go net: "dial tcp 10.0.0.5:5432: connect: connection refused" (also inside gRPC
        # 'transport: Error while dialing: dial tcp ...'), unix sockets too
        _r(
            r"dial (?:tcp[46]?|udp[46]?|unix) (?P<addr>\S+?): connect: connection refused",
            "connect: connection refused",
        ),
        # Node: "connect ECONNREFUSED 10.96.0.12:6379" (ioredis, pg, mongodb, axios)
        _r(r"ECONNREFUSED (?P<addr>[^\s\"',)]+)", "econnrefused "),
        # libpq >= 14: 'connection to server at "postgres.payments" (10.0.0.5), port 5432
        # failed: Connection refused'; the unix socket variant
        _r(
            rf"connection to server (?:at {_Q}(?P<host>[^\"'\\]+){_Q} \([^)]*\), port "
            rf"(?P<port>\d+)|on socket {_Q}(?P<host_2>[^\"'\\]+){_Q}) failed: Connection refused",
            "connection to server ",
        ),
        # pgjdbc: "Connection to localhost:5432 refused. Check that the hostname and port..."
        _r(r"Connection to (?P<addr>\S+) refused", " refused"),
        # redis-py: "Error 111 connecting to redis:6379. Connection refused."
        _r(r"Error 111 connecting to (?P<addr>[\w.-]+:\d+)", "error 111 connecting to"),
        # urllib3/requests: "HTTPConnectionPool(host='api', port=8080): Max retries exceeded
        # ... [Errno 111] Connection refused"
        _r(
            r"host='(?P<host>[^']+)', port=(?P<port>\d+)\).*Connection refused",
            "connection refused",
        ),
        # Netty / Lettuce / Reactor: "AnnotatedConnectException: Connection refused:
        # redis/10.0.0.7:6379"; Java "Connection refused: localhost/127.0.0.1:9092"
        _r(
            r"Connection refused(?: \(Connection refused\))?: "
            r"(?P<addr>[\w.-]*/?[\w.:-]+:\d+)",
            "connection refused",
        ),
        # MySQL: "Can't connect to MySQL server on 'mysql:3306' (111)"
        _r(
            r"Can't connect to MySQL server on '(?P<addr>[^']+)' \((?:111|10061)",
            "can't connect to mysql server on",
        ),
        # nginx: 'connect() failed (111: Connection refused) while connecting to upstream,
        # ..., upstream: "http://10.0.0.9:8080/api"'
        _r(
            r"\(111: Connection refused\) while connecting to upstream.*?upstream: "
            r"\\?\"(?P<addr>[^\"\\]+)",
            "(111: connection refused) while connecting to upstream",
        ),
        # Kafka clients: "Connection to node -1 (kafka-0.kafka/10.1.2.3:9092) could not be
        # established. Broker may not be available."
        _r(
            r"Connection to node -?\d+ \((?P<addr>[^)]+)\) could not be established",
            "could not be established",
        ),
        # old libpq: "could not connect to server: Connection refused" + host on next lines
        _r(
            r"could not connect to server",
            "could not connect to server",
            context=_libpq_host,
            unless=r"timed out|timeout|name resolution|translate host|No such file",
        ),
        # Envoy: "upstream connect error ... reset reason: connection failure, transport
        # failure reason: delayed connect error: 111"
        _r(r"delayed connect error: 111", "delayed connect error: 111"),
        # Python "ConnectionRefusedError: [Errno 111] Connection refused", Java
        # "java.net.ConnectException: Connection refused", Rust "Connection refused (os
        # error 111)"; anything else: the address from the line
        _r(r"connection refused|\bECONNREFUSED\b", "connection refused|econnrefused"),
    ),
    ("host", "port"),
    fallback=_find_addr,
)

_POOL_UNLESS = (
    r"HikariPool|Connection is not available|QueuePool limit|pool timeout|pool exhausted"
    r"|acquiring a connection|ResourceRequest timed out|Lock wait timeout|lock timeout"
)

_TIMEOUT = _Kind(
    "timeout",
    (
        # Go: "dial tcp 10.0.0.5:5432: i/o timeout", "read tcp 10.1.1.1:4321->10.0.0.5:5432:
        # i/o timeout" (the remote side is the one after ->)
        _r(
            r"(?:dial|read|write) (?:tcp[46]?|udp[46]?) (?:\S+->)?(?P<addr>\S+?): i/o timeout",
            "i/o timeout",
            unless=r"lookup \S+",
        ),
        # Node: "connect ETIMEDOUT 10.0.0.5:443"
        _r(r"connect ETIMEDOUT (?P<addr>[^\s\"',)]+)", "connect etimedout"),
        # urllib3/requests: "HTTPSConnectionPool(host='api', port=443): Read timed out."
        _r(
            r"host='(?P<host>[^']+)', port=(?P<port>\d+)\).*(?:timed out|Timeout)",
            "timed out|timeout",
        ),
        # fluent-bit: "connection #51 to fluentd.logging.svc:24224 timed out after 10 seconds"
        _r(r"connection #?\d* ?to (?P<addr>[\w.\[\]:-]+:\d+) timed out", "timed out"),
        # nginx: "upstream timed out (110: Connection timed out) while reading response
        # header from upstream, ... upstream: "http://10.0.0.9:8080/""
        _r(r"upstream timed out .*?upstream: \\?\"(?P<addr>[^\"\\]+)", "upstream timed out"),
        # Go net/http: 'Get "http://api:8080/x": context deadline exceeded (Client.Timeout
        # exceeded while awaiting headers)'
        _r(
            r"(?:Get|Post|Put|Patch|Delete|Head) \\?\"(?P<addr>[^\"\\]+)\\?\": "
            r".*(?:deadline exceeded|Timeout exceeded|timeout)",
            "deadline exceeded|timeout",
        ),
        # Go "i/o timeout" / "context deadline exceeded" / "TLS handshake timeout"; gRPC
        # "DeadlineExceeded"/"DEADLINE_EXCEEDED"; Node "ETIMEDOUT"/"ESOCKETTIMEDOUT";
        # Java "SocketTimeoutException: Read timed out", "connect timed out", Kafka
        # "TimeoutException: Timeout expired"; Python "ReadTimeout", "socket.timeout: timed
        # out", "[Errno 110] Connection timed out"; Rust "operation timed out", "deadline
        # has elapsed"; generic "timed out after 30s"
        _r(
            r"i/o timeout|context deadline exceeded|deadline ?exceeded|TLS handshake timeout"
            r"|\bE(?:SOCKET)?TIMEDOUT\b|socket\.timeout"
            # exception names are case-sensitive: "connectTimeout=10" is a setting
            r"|(?-i:\b\w*Timeout(?:Error|Exception)\b|\b(?:Connect|Read|Write|Pool)Timeout\b)"
            r"(?!\s*[=:]\s*\d)"
            r"|\b(?:read|connect|connection|request|operation|handshake) timed out"
            r"|timed out after|deadline has elapsed|Timeout expired|Client\.Timeout exceeded"
            r"|gateway time-?out|statement timeout",
            "timeout|timed out|deadline|etimedout|time-out",
            unless=_POOL_UNLESS,
        ),
    ),
    ("host", "port"),
    fallback=_find_addr,
    suppressed_by=("pool_exhausted", "db_locked", "dns"),
)

_DNS = _Kind(
    "dns",
    (
        # Go: "dial tcp: lookup postgres.payments on 10.96.0.10:53: no such host",
        # "lookup redis: server misbehaving", "lookup x on y:53: read udp ...: i/o timeout"
        _r(
            r"lookup (?P<host>[^\s:]+)(?: on \S+)?: (?:no such host|server misbehaving"
            r"|i/o timeout|read udp|Temporary failure|dial udp)",
            "lookup ",
        ),
        # Node: "getaddrinfo ENOTFOUND redis.cache", "getaddrinfo EAI_AGAIN api.example.com",
        # "querySrv ENOTFOUND _mongodb._tcp.cluster0"
        _r(
            r"(?:getaddrinfo|querySrv|queryA{1,4}) (?:ENOTFOUND|EAI_AGAIN|EAI_NONAME|EAI_FAIL"
            r"|ESERVFAIL|ETIMEOUT) (?P<host>[^\s\"',)]+)",
            "getaddrinfo|querysrv|querya",
        ),
        # Java: "java.net.UnknownHostException: kafka-0.kafka-headless: Name or service not
        # known" / "UnknownHostException: redis"
        _r(r"UnknownHostException: (?P<host>[^\s:]+)", "unknownhostexception: "),
        # libpq: 'could not translate host name "db" to address: Name or service not known'
        _r(
            rf"could not translate host name {_Q}(?P<host>[^\"'\\]+){_Q}",
            "could not translate host name",
        ),
        # MySQL: "Unknown MySQL server host 'mysql' (-2)"
        _r(r"Unknown MySQL server host '(?P<host>[^']+)'", "unknown mysql server host"),
        # nginx: 'host not found in upstream "backend:8080" in /etc/nginx/conf.d/x.conf:12',
        # resolver: "backend.svc could not be resolved (3: Host not found)"
        _r(rf"host not found in upstream {_Q}(?P<addr>[^\"'\\]+)", "host not found in upstream"),
        _r(r"(?<![\w.-])(?P<host>[\w.-]+) could not be resolved \(\d+", "could not be resolved ("),
        # urllib3 2.x: "NameResolutionError: <...>: Failed to resolve 'api.example.com'"
        _r(r"Failed to resolve '(?P<host>[^']+)'", "failed to resolve '"),
        # curl: "Could not resolve host: api.example.com"
        _r(
            r"Couldn'?t resolve host:? '?(?P<host>[^\s';]+)"
            r"|Could not resolve host:? (?P<host_2>[^\s;]+)",
            "resolve host",
        ),
        # Kafka: "Couldn't resolve server kafka:9092 from bootstrap.servers as DNS
        # resolution failed for kafka"
        _r(
            r"Couldn't resolve server (?P<addr>\S+) from bootstrap\.servers",
            "couldn't resolve server",
        ),
        # .NET: "No such host is known. (api.example.com:443)"
        _r(r"No such host is known\.? \((?P<addr>[^)]+)\)", "no such host is known"),
        # Python socket.gaierror "[Errno -2] Name or service not known", "[Errno -3]
        # Temporary failure in name resolution", macOS "nodename nor servname provided",
        # Rust "failed to lookup address information", Go "no such host", "dns error"
        _r(
            r"no such host|Name or service not known|Temporary failure in name resolution"
            r"|nodename nor servname provided|No address associated with hostname"
            r"|failed to lookup address information|\bdns error\b|DNS resolution failed"
            r"|NXDOMAIN|SERVFAIL|\bENOTFOUND\b|\bEAI_AGAIN\b|server misbehaving",
            "no such host|name or service not known|temporary failure in name resolution"
            "|nodename nor servname provided|no address associated with hostname"
            "|failed to lookup address information|dns error|dns resolution failed"
            "|nxdomain|servfail|enotfound|eai_again|server misbehaving",
        ),
    ),
    ("host",),
    fallback=_find_host,
)

_TLS_EXPIRED = _Kind(
    "tls_expired",
    (
        # Go crypto/x509: "x509: certificate has expired or is not yet valid: current time
        # 2026-11-20T10:15:00Z is after 2026-11-19T23:59:59Z"; OpenSSL/Python "certificate
        # verify failed: certificate has expired (_ssl.c:1006)"; Node "CERT_HAS_EXPIRED";
        # Java "CertificateExpiredException: NotAfter: ...", "PKIX path validation failed:
        # ... validity check failed", "Received fatal alert: certificate_expired"; TLS
        # alerts "tls: expired certificate", "sslv3 alert certificate expired"; rustls
        # "invalid peer certificate: Expired"
        _r(
            r"certificate (?:has |is )?expired|expired certificate|CERT_HAS_EXPIRED"
            r"|CertificateExpiredException|invalid peer certificate: Expired"
            r"|certificate[ _]expired|PKIX path validation failed.*(?:expired|validity check)",
            "expired|validity check",
        ),
    ),
    ("host",),
    fallback=_find_url_host,
)

_TLS_INVALID = _Kind(
    "tls_invalid",
    (
        # Go: "x509: certificate is valid for a.example, b.example, not c.example"
        _r(
            r"x509: certificate is valid for .*?, not (?P<host>[^\s\"\\,]+)",
            "x509: certificate is valid for",
        ),
        _r(
            r"x509: certificate is not valid for any names, but wanted to match "
            r"(?P<host>[^\s\"\\,]+)",
            "x509: certificate is not valid for any names",
        ),
        _r(
            r"x509: cannot validate certificate for (?P<host>\S+) because",
            "x509: cannot validate certificate for",
        ),
        # Python: "Hostname mismatch, certificate is not valid for 'api.example.com'"
        _r(r"certificate is not valid for '(?P<host>[^']+)'", "certificate is not valid for '"),
        # Node: "Hostname/IP does not match certificate's altnames: Host: api.x. is not in
        # the cert's altnames: DNS:*.y"
        _r(
            r"does not match certificate's altnames: (?:Host|IP): (?P<host>[^\s]+?)\.? is not",
            "does not match certificate's altnames",
        ),
        # Java: "No subject alternative DNS name matching api.x found", "Hostname api.x not
        # verified"
        _r(
            r"No subject alternative (?:DNS )?names? matching (?:IP address )?(?P<host>\S+) found",
            "no subject alternative",
        ),
        _r(r"Hostname (?P<host>\S+) not verified", "not verified"),
        # Go "x509: certificate signed by unknown authority"; OpenSSL "unable to get local
        # issuer certificate", "self signed certificate in certificate chain"; Node
        # "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "SELF_SIGNED_CERT_IN_CHAIN",
        # "DEPTH_ZERO_SELF_SIGNED_CERT", "ERR_TLS_CERT_ALTNAME_INVALID"; Java "PKIX path
        # building failed ... unable to find valid certification path", "Received fatal
        # alert: bad_certificate"; rustls "invalid peer certificate: UnknownIssuer"; TLS
        # alerts "bad certificate", "unknown ca"
        _r(
            r"x509: certificate signed by unknown authority|x509: certificate relies on legacy"
            r"|unable to get local issuer certificate|self[- ]signed certificate"
            r"|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED"
            r"|UNABLE_TO_GET_ISSUER_CERT|ERR_TLS_CERT_ALTNAME_INVALID|PKIX path building failed"
            r"|unable to find valid certification path|invalid peer certificate: \w+"
            r"|SSLPeerUnverifiedException|Hostname mismatch|tls: bad certificate"
            r"|alert unknown ca|certificate verify failed|tls: failed to verify certificate"
            r"|fatal alert: (?:bad_certificate|unknown_ca|certificate_unknown)",
            "x509: certificate signed by unknown authority|x509: certificate relies on legacy"
            "|unable to get local issuer certificate|self signed certificate"
            "|self-signed certificate|unable_to_verify_leaf_signature|self_signed_cert_in_chain"
            "|depth_zero_self_signed|unable_to_get_issuer_cert|err_tls_cert_altname_invalid"
            "|pkix path building failed|unable to find valid certification path"
            "|invalid peer certificate: |sslpeerunverifiedexception|hostname mismatch"
            "|tls: bad certificate|alert unknown ca|certificate verify failed"
            "|tls: failed to verify certificate|fatal alert: ",
        ),
    ),
    ("host",),
    fallback=_find_url_host,
    suppressed_by=("tls_expired",),
)
