"""Log kinds, application side: permissions, disk, databases, pools, memory, panics and HTTP.

The kind tables for ``permission_denied``, ``rbac_forbidden``, ``disk_full``, ``db_locked``,
``pool_exhausted``, ``oom_hint``, ``panic`` and ``http_5xx``; see :mod:`bot.rca.logpatterns`
for what each kind's details mean and how the tables are used.
"""

from __future__ import annotations

from bot.rca.logkinds import (
    _Q,
    _QV,
    _access_upstream,
    _find_host,
    _find_path,
    _Kind,
    _not_go_signal_line,
    _r,
    _rust_panic_message,
)

_DENIED = "permission denied|operation not permitted"

_PERMISSION_DENIED = _Kind(
    "permission_denied",
    (
        # Node: "EACCES: permission denied, mkdir '/app/cache'", "EPERM: operation not
        # permitted, chmod '/x'", "listen EACCES: permission denied 0.0.0.0:80"
        _r(
            rf"(?:EACCES|EPERM): (?:permission denied|operation not permitted), \w+ "
            rf"{_Q}(?P<path>{_QV}+)",
            "eacces: |eperm: ",
        ),
        _r(r"listen EACCES: permission denied (?P<path>\S+)", "listen eacces"),
        # Python: "PermissionError: [Errno 13] Permission denied: '/var/lib/app'"
        _r(
            rf"(?:Permission denied|Operation not permitted): {_Q}(?P<path>{_QV}+)",
            "permission denied: |operation not permitted: ",
        ),
        # Go: "open /var/lib/app/data.db: permission denied", "mkdir /data: operation not
        # permitted", "listen tcp :80: bind: permission denied"
        _r(
            r"\b(?:open|mkdir|mkdirall|stat|remove|unlinkat|rename|chmod|chown|create|write"
            r"|read|exec|symlink|lchown|chtimes)\s+(?P<path>[^\s:]+):\s*"
            r"(?:permission denied|operation not permitted)",
            _DENIED,
        ),
        _r(r"listen tcp (?P<path>\S*?): bind: permission denied", "bind: permission denied"),
        # Java: "java.nio.file.AccessDeniedException: /data/x", "FileNotFoundException:
        # /data/x (Permission denied)"
        _r(
            r"java\.nio\.file\.AccessDeniedException: (?P<path>\S+)",
            "java.nio.file.accessdeniedexception",
        ),
        _r(r"FileNotFoundException: (?P<path>\S+) \(Permission denied\)", "(permission denied)"),
        # nginx: 'mkdir() "/var/cache/nginx/client_temp" failed (13: Permission denied)'
        _r(
            rf"{_Q}(?P<path>{_QV}+){_Q} failed "
            r"\((?:13: Permission denied|1: Operation not permitted)",
            "failed (13: permission denied|failed (1: operation not permitted",
        ),
        # coreutils: "mkdir: cannot create directory '/data': Permission denied",
        # "chown: changing ownership of '/data': Operation not permitted"
        _r(
            rf"(?:cannot \w+(?: \w+)? |changing (?:permissions|ownership) of ){_Q}(?P<path>{_QV}+)"
            rf"{_Q}: (?:Permission denied|Operation not permitted)",
            _DENIED,
        ),
        # Postgres: 'could not open file "base/1/2": Permission denied'; SQL: "permission
        # denied for table orders"
        _r(
            rf"could not \w+(?: to)? (?:file|directory) {_Q}(?P<path>{_QV}+){_Q}: "
            r"Permission denied",
            "permission denied",
        ),
        _r(
            r"permission denied for (?P<object>(?:table|schema|relation|database|sequence"
            r"|function|view) \S+)",
            "permission denied for ",
        ),
        # Docker: "permission denied while trying to connect to the Docker daemon socket at
        # unix:///var/run/docker.sock"
        _r(
            r"permission denied while trying to connect to the Docker daemon socket at "
            r"(?P<path>\S+)",
            "permission denied while trying to connect",
        ),
        # shell: "/bin/sh: /entrypoint.sh: Permission denied"
        _r(
            r"(?<![^\s:'\"])(?P<path>/[^\s:'\"]+): (?:Permission denied|Operation not permitted)",
            _DENIED,
        ),
        # Rust "Permission denied (os error 13)", anything else
        _r(
            r"permission denied|\bEACCES\b|operation not permitted|\bEPERM\b",
            "permission denied|eacces|operation not permitted|eperm",
        ),
    ),
    ("path", "object"),
    fallback=_find_path,
    suppressed_by=("rbac_forbidden",),
)

_RBAC_FORBIDDEN = _Kind(
    "rbac_forbidden",
    (
        # Kubernetes API: 'pods is forbidden: User "system:serviceaccount:ops:reporter"
        # cannot list resource "pods" in API group "" in the namespace "shop"'
        _r(
            rf"forbidden: User {_Q}(?P<user>[^\"'\\]+){_Q} cannot (?P<verb>\w+) resource "
            rf"{_Q}(?P<resource>[^\"'\\]+){_Q}(?: in API group {_Q}(?P<group>[^\"'\\]*){_Q})?"
            rf"(?: in the namespace {_Q}(?P<namespace>[^\"'\\]+){_Q})?",
            "forbidden: user",
        ),
        # pre-1.11 wording: 'User "x" cannot list pods in the namespace "shop"'
        _r(
            rf"forbidden: User {_Q}(?P<user>[^\"'\\]+){_Q} cannot (?P<verb>\w+) "
            rf"(?P<resource>[\w./-]+)(?: in the namespace {_Q}(?P<namespace>[^\"'\\]+){_Q})?",
            "forbidden: user",
        ),
        # AWS IAM: "User: arn:aws:sts::1:assumed-role/app/i-0 is not authorized to perform:
        # s3:GetObject on resource: arn:aws:s3:::bucket/key"; STS "Not authorized to perform
        # sts:AssumeRoleWithWebIdentity"
        _r(
            r"(?:User: (?P<user>\S+) )?is not authorized to perform:? "
            r"(?P<action>(?P<service>[a-z0-9-]+):[\w*]+)",
            "is not authorized to perform",
        ),
        _r(
            r"not authorized to perform (?P<action>(?P<service>[a-z0-9-]+):[\w*]+)",
            "not authorized to perform ",
        ),
        # AWS SDK for Go v2: "operation error S3: GetObject, https response error
        # StatusCode: 403, RequestID: X, HostID: Y, api error AccessDenied: Access Denied"
        _r(
            r"operation error (?P<service>[\w ]+?): (?P<action>\w+), https response error "
            r"StatusCode: 403",
            "operation error ",
        ),
        # AWS SDK for Java v2: "S3Exception: Access Denied (Service: S3, Status Code: 403, ..."
        _r(
            r"Access ?Denied.*?\(Service: (?P<service>[^,]+), Status Code: 403",
            "status code: 403",
        ),
        # boto3: "ClientError: An error occurred (AccessDenied) when calling the GetObject
        # operation: Access Denied"
        _r(
            r"\((?:AccessDenied(?:Exception)?|UnauthorizedOperation|AuthorizationError)\) "
            r"when calling the (?P<action>\w+) operation",
            ") when calling the ",
        ),
        # GCP: "googleapi: Error 403: Permission 'storage.objects.get' denied on resource",
        # gRPC "code = PermissionDenied desc = Permission 'secretmanager.versions.access'
        # denied for resource ..."
        _r(r"Permission '(?P<action>(?P<service>\w+)\.[\w.]+)' denied", "permission '"),
        # GCS: "sa@p.iam.gserviceaccount.com does not have storage.objects.get access to ..."
        _r(
            r"(?<!\S)(?P<user>\S+) does not have (?P<action>(?P<service>[a-z]+)\.\w+\.\w+) access",
            " does not have ",
        ),
        # Azure: "AuthorizationFailed: The client 'x' with object id 'y' does not have
        # authorization to perform action 'Microsoft.Storage/storageAccounts/read' ..."
        _r(
            r"does not have authorization to perform action "
            r"'(?P<action>(?P<service>Microsoft\.\w+)/[^']+)'",
            "does not have authorization to perform action",
        ),
        _r(
            r"AuthorizationPermissionMismatch",
            "authorizationpermissionmismatch",
            service="storage",
        ),
        # GCP "PERMISSION_DENIED", gRPC "code = PermissionDenied", AWS "AccessDenied",
        # "UnauthorizedOperation"; the service from "<service>.googleapis.com" when present
        _r(
            r"(?:(?<![a-z])(?P<service>[a-z]+)\.googleapis\.com.*?)?(?:\bPERMISSION_DENIED\b"
            r"|code = PermissionDenied|\bAccessDenied(?:Exception)?\b|UnauthorizedOperation"
            r"|AuthorizationFailed|caller does not have permission)",
            "permission_denied|code = permissiondenied|accessdenied|unauthorizedoperation"
            "|authorizationfailed|caller does not have permission",
            ci=False,
            unless=r"java\.nio\.file\.AccessDenied",
        ),
    ),
    ("user", "verb", "resource", "service"),
)

_DISK_FULL = _Kind(
    "disk_full",
    (
        # Go: "write /data/wal/000123.log: no space left on device"
        _r(
            r"\b(?:write|open|create|mkdir|sync|close|copy|rename)\s+(?P<path>[^\s:]+):\s*"
            r"(?:no space left on device|disk quota exceeded)",
            "no space left on device|disk quota exceeded",
        ),
        # Node: "ENOSPC: no space left on device, write '/tmp/x'"
        _r(rf"ENOSPC: no space left on device, \w+ {_Q}(?P<path>{_QV}+)", "enospc: "),
        # Python: "OSError: [Errno 28] No space left on device: '/data/x'"
        _r(rf"No space left on device: {_Q}(?P<path>{_QV}+)", "no space left on device: "),
        # Postgres: 'could not extend file "base/16384/2619": No space left on device',
        # 'PANIC: could not write to file "pg_wal/xlogtemp.32": No space left on device'
        _r(
            rf"could not (?:extend|write to|create) file {_Q}(?P<path>{_QV}+){_Q}"
            r"(?:: No space left|: wrote only|.*?No space left)",
            "no space left|wrote only",
        ),
        _r(rf"could not extend file {_Q}(?P<path>{_QV}+){_Q}", "could not extend file"),
        # MySQL: "Disk is full writing './binlog.000012' (OS errno 28 - No space left on
        # device)", "The table 'orders' is full"
        _r(r"Disk is full writing '(?P<path>[^']+)'", "disk is full writing"),
        _r(r"The table '(?P<path>[^']+)' is full", "' is full"),
        # Elasticsearch: "flood stage disk watermark [95%] exceeded on [node][path]"
        _r(r"flood[ -]stage disk watermark \[[^\]]+\] exceeded", "disk watermark"),
        # Java "IOException: No space left on device", Rust "(os error 28)", generic
        _r(
            r"no space left on device|\bENOSPC\b|disk quota exceeded|\[Errno 28\]",
            "no space left on device|enospc|disk quota exceeded|[errno 28]",
        ),
    ),
    ("path",),
    fallback=_find_path,
)

_DB_LOCKED = _Kind(
    "db_locked",
    (
        # SQLite: "database is locked" (sqlite3.OperationalError), SQLITE_BUSY/SQLITE_LOCKED
        _r(
            r"database (?:table )?is locked|SQLITE_BUSY|SQLITE_LOCKED",
            "database is locked|database table is locked|sqlite_busy|sqlite_locked",
            what="database is locked",
        ),
        # MySQL ER_LOCK_WAIT_TIMEOUT (1205)
        _r(
            r"Lock wait timeout exceeded",
            "lock wait timeout exceeded",
            what="lock wait timeout exceeded",
        ),
        # MySQL 1213 "Deadlock found when trying to get lock"; Postgres / Oracle
        # "deadlock detected"
        _r(
            r"Deadlock found when trying to get lock|deadlock detected",
            "deadlock found when trying to get lock|deadlock detected",
            what="deadlock",
        ),
        # Postgres: "canceling statement due to lock timeout", 'could not obtain lock on
        # relation "orders"'
        _r(
            r"canceling statement due to lock timeout|could not obtain lock on",
            "canceling statement due to lock timeout|could not obtain lock on",
            what="lock timeout",
        ),
        # Liquibase: "Could not acquire change log lock. Currently locked by pod-x"
        _r(
            r"Could not acquire change ?log lock|Waiting for change ?log lock",
            "change log lock|changelog lock",
            what="changelog lock",
        ),
        # Hibernate / Spring: PessimisticLockException, CannotAcquireLockException,
        # LockAcquisitionException
        _r(
            r"PessimisticLockException|CannotAcquireLockException|LockAcquisitionException",
            "pessimisticlockexception|cannotacquirelockexception|lockacquisitionexception",
            what="lock acquisition failed",
        ),
    ),
    ("what",),
)

_POOL_EXHAUSTED = _Kind(
    "pool_exhausted",
    (
        # HikariCP: "HikariPool-1 - Connection is not available, request timed out after
        # 30000ms (total=10, active=10, idle=0, waiting=12)"
        _r(
            r"(?<![\w-])(?P<pool>[\w-]+) - Connection is not available, request timed out",
            "connection is not available, request timed out",
            what="connection pool timeout",
        ),
        # Postgres: "FATAL: sorry, too many clients already", "remaining connection slots
        # are reserved for non-replication superuser connections"
        _r(
            r"sorry, too many clients already|remaining connection slots are reserved",
            "sorry, too many clients already|remaining connection slots are reserved",
            what="too many connections",
        ),
        # MySQL 1040 "Too many connections", Postgres 'too many connections for role "app"'
        _r(
            r"too many connections|ER_CON_COUNT_ERROR",
            "too many connections|er_con_count_error",
            what="too many connections",
        ),
        # Redis: "ERR max number of clients reached"; pgbouncer: "no more connections
        # allowed (max_client_conn)"
        _r(
            r"max number of clients reached|no more connections allowed \(max_client_conn\)",
            "max number of clients reached|no more connections allowed",
            what="too many connections",
        ),
        # SQLAlchemy: "QueuePool limit of size 5 overflow 10 reached, connection timed out"
        _r(
            r"(?P<pool>QueuePool) limit of size \d+ overflow \d+ reached",
            "queuepool limit of size",
            what="connection pool timeout",
        ),
        # Knex / generic-pool / Sequelize / go-redis / Apache DBCP
        _r(
            r"Timeout acquiring a connection\. The pool is probably full"
            r"|ResourceRequest timed out|ConnectionAcquireTimeoutError"
            r"|redis: connection pool timeout|Cannot get a connection, pool error",
            "timeout acquiring a connection|resourcerequest timed out"
            "|connectionacquiretimeouterror|redis: connection pool timeout"
            "|cannot get a connection, pool error",
            what="connection pool timeout",
        ),
        # psycopg2 "PoolError: connection pool exhausted", generic "pool exhausted"
        _r(
            r"(?:connection )?pool (?:is )?exhausted",
            "pool exhausted|pool is exhausted",
            what="connection pool exhausted",
        ),
    ),
    ("what",),
)

_OOM_HINT = _Kind(
    "oom_hint",
    (
        # Java: "java.lang.OutOfMemoryError: Java heap space" (also "GC overhead limit
        # exceeded", "Metaspace"); .NET OutOfMemoryException. Not the JVM flag
        # "-XX:+ExitOnOutOfMemoryError".
        _r(
            r"(?<![A-Za-z])(?:java\.lang\.)?OutOfMemory(?:Error|Exception)"
            r"(?::\s*(?P<message>[^\"\\\n]+))?",
            "outofmemoryerror|outofmemoryexception",
            ci=False,
        ),
        # Go: "fatal error: runtime: out of memory"
        _r(r"runtime: out of memory", "runtime: out of memory", message="runtime: out of memory"),
        # Node/V8: "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out
        # of memory"
        _r(
            r"JavaScript heap out of memory",
            "javascript heap out of memory",
            message="JavaScript heap out of memory",
        ),
        # Python MemoryError (\b: not the tail of OutOfMemoryError)
        _r(r"\bMemoryError\b(?::\s*(?P<message>[^\"\\\n]+))?", "memoryerror", ci=False),
        # Kernel OOM killer as seen from inside the container / dmesg
        _r(
            r"Out of memory: Kill(?:ed)? process \d+|invoked oom-killer|oom-kill:",
            "out of memory: kill|invoked oom-killer|oom-kill:",
            message="kernel OOM killer",
        ),
        # Rust "memory allocation of 1048576 bytes failed"; C++ std::bad_alloc; PHP "Allowed
        # memory size of 134217728 bytes exhausted"; ENOMEM "Cannot allocate memory"
        _r(
            r"(?P<message>memory allocation of \d+ bytes failed|std::bad_alloc"
            r"|Allowed memory size of \d+ bytes exhausted|Cannot allocate memory)",
            "memory allocation of|std::bad_alloc|allowed memory size of|cannot allocate memory",
        ),
        # A shell reporting that its child was SIGKILLed: a line that is just "Killed"
        _r(r"^\s*Killed\s*$", "killed", ci=False),
    ),
    ("message",),
)

_PANIC = _Kind(
    "panic",
    (
        # Go: "panic: runtime error: invalid memory address or nil pointer dereference"
        _r(r"^panic: (?P<message>.+?)(?: \[recovered\])?$", "panic: ", ci=False),
        # Go runtime: "fatal error: concurrent map writes", "fatal error: all goroutines are
        # asleep - deadlock!"
        _r(r"^fatal error: (?P<message>.+)", "fatal error: ", ci=False),
        # Rust: "thread 'main' panicked at 'msg', src/main.rs:10:5" (< 1.73) or
        # "thread 'main' panicked at src/main.rs:10:5:" + the message on the next line
        _r(
            r"thread '[^']*' panicked at (?:'(?P<message>.*)', \S+|[^\s']+:\d+:\d+:?\s*$)",
            "' panicked at ",
            ci=False,
            context=_rust_panic_message,
        ),
        # zap / logrus / klog fatal and panic levels (the process exits right after)
        _r(
            r"\"level\":\"(?:fatal|panic|dpanic)\".*?\"msg\":\"(?P<message>(?:[^\"\\]|\\.)*)\"",
            '"level":"fatal|"level":"panic|"level":"dpanic',
        ),
        _r(
            r"\blevel=(?:fatal|panic)\b.*?\bmsg=(?:\"(?P<message>(?:[^\"\\]|\\.)*)\""
            r"|(?P<message_2>\S+))",
            "level=fatal|level=panic",
        ),
        _r(r"^F\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\] (?P<message>.+)$", "\nf0|\nf1", ci=False),
        # CPython "Fatal Python error: Segmentation fault"; JVM hs_err "# A fatal error has
        # been detected by the Java Runtime Environment"; C++ "terminate called after
        # throwing an instance of 'std::runtime_error'"
        _r(r"Fatal Python error: (?P<message>.+)", "fatal python error: ", ci=False),
        _r(
            r"A fatal error has been detected by the Java Runtime Environment",
            "a fatal error has been detected by the java runtime environment",
            message="JVM fatal error",
        ),
        _r(
            r"terminate called after throwing an instance of '(?P<message>[^']+)'",
            "terminate called after throwing an instance of",
        ),
        # Segfaults / aborts: shell "Segmentation fault (core dumped)", kernel "segfault at",
        # "Aborted (core dumped)", SIGSEGV/SIGABRT (not Go's "[signal SIGSEGV" line under its
        # own panic)
        _r(
            r"Segmentation fault|segfault at [0-9a-f]+|\bSIGSEGV\b",
            "segmentation fault|segfault at|sigsegv",
            message="segmentation fault",
            context=_not_go_signal_line,
        ),
        _r(
            r"Aborted \(core dumped\)|\bSIGABRT\b",
            "aborted (core dumped)|sigabrt",
            message="aborted",
            context=_not_go_signal_line,
        ),
    ),
    ("message",),
)

_HTTP_5XX = _Kind(
    "http_5xx",
    (
        # nginx / envoy / uvicorn / Apache access logs: '"GET /api HTTP/1.1" 502 157 ...';
        # the upstream comes from the ingress-nginx / envoy fields (see _access_upstream)
        _r(
            r"\"(?:GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS|CONNECT|TRACE) [^\"]*\" "
            r"(?P<status>50[234]) ",
            '" 502 |" 503 |" 504 ',
            context=_access_upstream,
            fallback=False,
        ),
        # nginx error log: "no live upstreams while connecting to upstream", "upstream
        # prematurely closed connection while reading response header from upstream"
        _r(
            r"(?:no live upstreams|upstream prematurely closed connection).*?upstream: "
            r"\\?\"(?P<addr>[^\"\\]+)",
            "no live upstreams|upstream prematurely closed connection",
            status="502",
        ),
        _r(
            r"no live upstreams|upstream prematurely closed connection",
            "no live upstreams|upstream prematurely closed connection",
            status="502",
        ),
        # Envoy: "upstream connect error or disconnect/reset before headers", "no healthy
        # upstream"
        _r(
            r"upstream connect error or disconnect/reset before headers|no healthy upstream",
            "upstream connect error|no healthy upstream",
            status="503",
        ),
        # JSON access logs: "status":503, "response_code":502, "upstream_status":"504"
        _r(
            r"\"(?:status|status_code|statusCode|response_code|upstream_status|code)\"\s*:\s*"
            r"\"?(?P<status>50[234])\b",
            "502|503|504",
        ),
        # HTTP clients: "unexpected status 503 Service Unavailable", "HTTP/1.1 502 Bad Gateway"
        _r(
            r"(?P<status>50[234]) (?:Bad Gateway|Service (?:Temporarily )?Unavailable"
            r"|Gateway Time-?out)",
            "502 bad gateway|503 service|504 gateway time",
        ),
    ),
    ("host", "status"),
    fallback=_find_host,
)
