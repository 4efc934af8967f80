"""How a cache client is addressed and configured: redis-py's Redis() arguments and from_url.

Owns: the (host, port, db) or "host:port" target, redis:// and memsim:// URLs (redis-py's
`from_url` and its URL_QUERY_ARGUMENT_PARSERS), and which of redis-py's constructor arguments are
accepted and ignored, and which are refused by name because the cache cannot honour them.
Touches: the typed errors only.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

from memsim.client.errors import InvalidArgument


def resolve_target(host: str, port: int, db: int, target: str | None) -> str:
    """redis-py's (host, port, db) or memsim's "host:port" (as the first argument, or target=)."""
    if db != 0:
        raise InvalidArgument(f"db {db}: the machine's cache has one database, db 0")
    if target is not None:
        return target
    if ":" in host and not host.startswith("["):
        return host  # Cache("127.0.0.1:50051")
    return f"{host}:{port}"


def _url_bool(v: str) -> bool:
    return v.lower() not in ("", "0", "false", "f", "no", "n")


# redis-py's URL_QUERY_ARGUMENT_PARSERS, for the arguments Cache takes; any other name is passed on as
# text, and refused by name by the constructor
_URL_QUERY: dict[str, Callable[[str], Any]] = {
    "decode_responses": _url_bool, "socket_timeout": float, "socket_connect_timeout": float,
    "socket_keepalive": _url_bool, "health_check_interval": int, "max_connections": int,
    "single_connection_client": _url_bool, "retry_on_timeout": _url_bool, "protocol": int}


def parse_url(url: str) -> dict[str, Any]:
    """redis://[[user]:password@]host:port/0?arg=value or memsim://host:port: redis-py's from_url.
    A password or an argument the cache cannot honour is refused by the constructor, by name."""
    u = urlparse(url)
    if u.scheme not in ("redis", "memsim"):
        raise InvalidArgument(f"url {url!r}: the schemes are redis:// and memsim:// (no TLS, no unix sockets)")
    try:
        port = u.port
    except ValueError:
        raise InvalidArgument(f"url {url!r}: the port must be a number from 0 to 65535") from None
    path = u.path.lstrip("/")
    if path and not path.isdigit():
        raise InvalidArgument(f"url {url!r}: the path is the database number; the cache has one database, db 0")
    out: dict[str, Any] = {"host": u.hostname or "127.0.0.1", "port": port or 50051, "db": int(path or 0)}
    if u.username:
        out["username"] = unquote(u.username)
    if u.password:
        out["password"] = unquote(u.password)
    for name, value in parse_qsl(u.query, keep_blank_values=True):
        try:
            out[name] = _URL_QUERY.get(name, str)(value)
        except ValueError:
            raise InvalidArgument(f"url {url!r}: {name}={value!r} is not a valid value") from None
    return out


# redis-py's Redis() arguments. These change nothing here and are accepted and ignored, whatever
# their value: gRPC connects, keeps alive and multiplexes its own channel, and there is no CLIENT command.
HARMLESS_REDIS_ARGS = frozenset({"socket_connect_timeout", "socket_keepalive", "socket_keepalive_options",
                                 "health_check_interval", "max_connections", "single_connection_client",
                                 "client_name", "lib_name", "lib_version"})
# These are accepted only unset (None, False, "", or as _DEFAULT_OK says): anything else asks for a
# feature the cache does not have, and silently ignoring it would hide that.
_NO_AUTH = "the cache has no authentication (AUTH, ACL users)"
_NO_TLS = "memsim serves plaintext gRPC only (no TLS)"
_NO_RETRY = "calls are not retried; catch memsim.client.Unavailable / DeadlineExceeded to retry"
UNSUPPORTED_REDIS_ARGS: dict[str, str] = {
    "password": _NO_AUTH, "username": _NO_AUTH, "credential_provider": _NO_AUTH,
    "unix_socket_path": "memsim serves gRPC over TCP: give host and port, or 'host:port'",
    "connection_pool": "there is no connection pool: each client has its own gRPC channel",
    "ssl": _NO_TLS, "ssl_keyfile": _NO_TLS, "ssl_certfile": _NO_TLS, "ssl_cert_reqs": _NO_TLS,
    "ssl_ca_certs": _NO_TLS, "ssl_ca_path": _NO_TLS, "ssl_ca_data": _NO_TLS, "ssl_check_hostname": _NO_TLS,
    "ssl_password": _NO_TLS, "ssl_validate_ocsp": _NO_TLS, "ssl_min_version": _NO_TLS, "ssl_ciphers": _NO_TLS,
    "retry_on_timeout": _NO_RETRY, "retry_on_error": _NO_RETRY, "retry": _NO_RETRY,
    "redis_connect_func": "there is no connection callback",
    "protocol": "replies are RESP2-shaped (protocol=2); RESP3 is not supported",
    "cache": "there is no client-side caching", "cache_config": "there is no client-side caching",
    "charset": "use encoding= (redis-py's name since 4.0)",
    "errors": "use encoding_errors= (redis-py's name since 4.0)",
}
_DEFAULT_OK = {"protocol": (2, "2")}


def check_redis_args(cls: str, kw: dict[str, Any], encoding: str, encoding_errors: str) -> None:
    """Refuse, by name, a redis-py argument that would be silently ignored; TypeError for a name
    redis-py does not have either (a typo must not pass)."""
    for name, value in kw.items():
        if name in HARMLESS_REDIS_ARGS:
            continue
        if name not in UNSUPPORTED_REDIS_ARGS:
            raise TypeError(f"{cls}() got an unexpected keyword argument {name!r}")
        if value and value not in _DEFAULT_OK.get(name, ()):  # redis-py too treats password="" as none
            raise InvalidArgument(f"{cls}({name}=...): not supported: {UNSUPPORTED_REDIS_ARGS[name]}")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InvalidArgument(f"{cls}(encoding={encoding!r}): unknown encoding") from None
    try:
        codecs.lookup_error(encoding_errors)
    except LookupError:
        raise InvalidArgument(f"{cls}(encoding_errors={encoding_errors!r}): unknown error handler; the choices "
                              f"include 'strict', 'replace', 'ignore', 'backslashreplace'") from None
